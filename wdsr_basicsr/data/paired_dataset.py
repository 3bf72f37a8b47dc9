"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""
from os import path as osp

import cv2
import numpy as np

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.registry import DATASET_REGISTRY

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5


def read_meta_info(lmdb_path):
    """Keys and (h, w, c) shapes of an LMDB's meta_info.txt, in file order.

    basicsr takes the key as the image name up to the first dot.
    """
    entries = {}
    with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
        for line in f:
            if line.strip():
                name, shape = line.split()[:2]
                entries[name.split('.')[0]] = tuple(int(v) for v in shape.strip('()').split(','))
    return entries


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """basicsr's ``PairedImageDataset`` that names the option, LMDB and key at fault.

    It reads exactly what ``PairedImageDataset`` reads (same options, same
    crops and augmentation). On top, before any sample is read:

    * ``dataroot_gt`` / ``dataroot_lq`` must exist, and with the ``lmdb``
      backend hold a ``meta_info.txt``;
    * with ``lmdb``, LQ and GT must list the same keys: the error gives a few
      keys found on one side only;
    * with ``lmdb``, every LQ shape must be the GT shape divided by ``scale``
      (rounded down), so a scale that differs between the options and the
      data is caught with one key as example.

    And while reading, a record that is missing or cannot be decoded raises an
    error naming the LMDB and the key (basicsr fails later with
    ``'NoneType' object has no attribute ...``).

    Args:
        opt (dict): ``PairedImageDataset``'s options.
    """

    def __init__(self, opt):
        name = opt.get('name', opt.get('phase', 'dataset'))
        for key in ('dataroot_gt', 'dataroot_lq'):
            if not opt.get(key):
                raise ValueError(f'datasets:{name}: option {key} is missing.')
            if not osp.exists(opt[key]):
                raise FileNotFoundError(f'datasets:{name}: {key} {opt[key]} does not exist.')
        if opt['phase'] == 'train' and opt['gt_size'] % opt['scale']:
            raise ValueError(f"datasets:{name}: gt_size {opt['gt_size']} is not a multiple of scale {opt['scale']}.")
        if opt['io_backend']['type'] == 'lmdb':
            self._check_lmdb_pair(opt, name)
        super().__init__(opt)

    @staticmethod
    def _check_lmdb_pair(opt, name):
        metas = {}
        for key in ('dataroot_gt', 'dataroot_lq'):
            meta = osp.join(opt[key], 'meta_info.txt')
            if not osp.isfile(meta):
                raise FileNotFoundError(f'datasets:{name}: {key} {opt[key]} has no meta_info.txt; is it an LMDB '
                                        'made by scripts/prepare_div2k.py or basicsr?')
            metas[key] = read_meta_info(opt[key])
        gt, lq = metas['dataroot_gt'], metas['dataroot_lq']
        if gt.keys() != lq.keys():
            only_gt = sorted(gt.keys() - lq.keys())[:NUM_EXAMPLE_KEYS]
            only_lq = sorted(lq.keys() - gt.keys())[:NUM_EXAMPLE_KEYS]
            raise ValueError(f'datasets:{name}: the LMDBs list different keys: {len(gt.keys() - lq.keys())} only in '
                             f'dataroot_gt {opt["dataroot_gt"]} (e.g. {only_gt}), {len(lq.keys() - gt.keys())} only '
                             f'in dataroot_lq {opt["dataroot_lq"]} (e.g. {only_lq}).')
        scale = opt['scale']
        for key, (h, w, _) in gt.items():
            lq_h, lq_w = lq[key][:2]
            if (lq_h, lq_w) != (h // scale, w // scale):
                raise ValueError(f'datasets:{name}: scale {scale} does not match the data: key {key} is {w}x{h} in '
                                 f'dataroot_gt {opt["dataroot_gt"]} and {lq_w}x{lq_h} in dataroot_lq '
                                 f'{opt["dataroot_lq"]} (expected {w // scale}x{h // scale}).')

    def __getitem__(self, index):
        try:
            return super().__getitem__(index)
        except Exception as error:
            self._raise_if_bad_record(index, error)
            raise

    def _raise_if_bad_record(self, index, error):
        """After a failed read, find a missing or undecodable record and raise an error naming it."""
        if self.file_client is None:
            return
        for client_key, folder in (('gt', self.gt_folder), ('lq', self.lq_folder)):
            key = self.paths[index][f'{client_key}_path']
            try:
                content = self.file_client.get(key, client_key)
            except Exception as read_error:  # noqa: BLE001  (any failure of the backend is reported the same way)
                raise OSError(f'Cannot read key {key!r} from {folder}: {read_error}') from error
            if content is None:
                raise LookupError(f'Key {key!r} is listed in {folder}/meta_info.txt but missing from the LMDB.')
            if cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR) is None:
                raise ValueError(f'Record {key!r} in {folder} is not a decodable image (corrupt LMDB?).') from error
