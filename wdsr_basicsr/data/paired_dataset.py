"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""
from __future__ import annotations

from os import path as osp

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils import get_root_logger
from basicsr.utils.registry import DATASET_REGISTRY

from .lmdb_util import check_lmdb_complete, read_meta_info, record_shape

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5


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
      data is caught with one key as example. Shapes are taken from
      ``meta_info.txt``; where its two shapes disagree, the records themselves
      are decoded: when they agree, a warning names the meta_info line that is
      wrong and training goes on, otherwise the error gives the records' sizes.

    * with ``lmdb``, each ``data.mdb`` must hold all its pages
      (:func:`check_lmdb_complete`).

    While reading, a record that is missing or cannot be decoded raises an
    error naming the LMDB and the key (:func:`raise_if_bad_record`, which
    :mod:`wdsr_basicsr.compat` gives basicsr's ``PairedImageDataset`` too).

    Args:
        opt (dict): ``PairedImageDataset``'s options.
    """

    def __init__(self, opt: dict):
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
        for key, (gt_meta, gt_line) in gt.items():
            lq_meta, lq_line = lq[key]
            if tuple(lq_meta[:2]) == (gt_meta[0] // scale, gt_meta[1] // scale):
                continue
            (h, w), (lq_h, lq_w) = (record_shape(opt[root], key)[:2] for root in ('dataroot_gt', 'dataroot_lq'))
            if (lq_h, lq_w) != (h // scale, w // scale):
                raise ValueError(f'datasets:{name}: scale {scale} does not match the data: record {key} is {w}x{h} '
                                 f'in dataroot_gt {opt["dataroot_gt"]} and {lq_w}x{lq_h} in dataroot_lq '
                                 f'{opt["dataroot_lq"]} (expected {w // scale}x{h // scale}).')
            for root, meta, line, real in (('dataroot_gt', gt_meta, gt_line, (h, w)),
                                           ('dataroot_lq', lq_meta, lq_line, (lq_h, lq_w))):
                if tuple(meta[:2]) != real:
                    get_root_logger().warning(
                        f'datasets:{name}: {osp.join(opt[root], "meta_info.txt")}, line {line}: records {key} as '
                        f'{meta[1]}x{meta[0]}, but the image stored is {real[1]}x{real[0]}; the record is used.')
