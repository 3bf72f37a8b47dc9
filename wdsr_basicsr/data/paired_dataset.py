"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""
from os import path as osp

import cv2
import lmdb
import numpy as np

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.file_client import LmdbBackend
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


def check_lmdb_complete(path):
    """Refuse an LMDB whose ``data.mdb`` is shorter than its last page (an interrupted copy).

    Reading such a file through its memory map kills the process with SIGBUS
    (a DataLoader worker "exited unexpectedly"); this check reads only the
    environment's meta pages.

    Args:
        path (str): The LMDB folder.

    Raises:
        OSError: Naming the LMDB, its size and the size its pages need.
    """
    data = osp.join(path, 'data.mdb')
    if not osp.isfile(data):
        raise FileNotFoundError(f'{path} is not an LMDB: it has no data.mdb.')
    with lmdb.open(path, readonly=True, lock=False, readahead=False, subdir=True) as env:
        needed = (env.info()['last_pgno'] + 1) * env.stat()['psize']
    size = osp.getsize(data)
    if size < needed:
        raise OSError(f'LMDB {path} is cut short: data.mdb has {size} bytes, its pages need {needed} '
                      '(an interrupted copy?); copy or prepare it again.')


def raise_if_bad_record(dataset, index, error):
    """After a paired dataset failed to read sample ``index``, raise an error naming the LMDB and key at fault.

    Used for basicsr's ``PairedImageDataset`` and every subclass (see
    :mod:`wdsr_basicsr.compat`): basicsr itself fails later with ``'NoneType'
    object has no attribute ...``. Returns when no record is at fault.

    Args:
        dataset (PairedImageDataset): The dataset.
        index (int): The sample that failed.
        error (Exception): Its error, chained to the one raised.
    """
    if dataset.file_client is None or not isinstance(dataset.file_client.client, LmdbBackend):
        return
    for client_key, folder in (('gt', dataset.gt_folder), ('lq', dataset.lq_folder)):
        key = dataset.paths[index][f'{client_key}_path']
        try:
            content = dataset.file_client.get(key, client_key)
        except Exception as read_error:  # noqa: BLE001  (any failure of the backend is reported the same way)
            raise OSError(f'Cannot read key {key!r} from LMDB {folder}: {read_error}') from error
        if content is None:
            raise LookupError(f'Key {key!r} is listed in {folder}/meta_info.txt but missing from the LMDB.') from error
        if cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR) is None:
            raise ValueError(f'Record {key!r} in LMDB {folder} is not a decodable image (corrupt LMDB?).') from error


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

    * with ``lmdb``, each ``data.mdb`` must hold all its pages
      (:func:`check_lmdb_complete`).

    While reading, a record that is missing or cannot be decoded raises an
    error naming the LMDB and the key (:func:`raise_if_bad_record`, which
    :mod:`wdsr_basicsr.compat` gives basicsr's ``PairedImageDataset`` too).

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
            check_lmdb_complete(opt[key])
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
