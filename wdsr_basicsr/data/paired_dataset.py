"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault; LMDB helpers."""
import os
from os import path as osp

import cv2
import lmdb
import numpy as np

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils import get_root_logger
from basicsr.utils.file_client import LmdbBackend
from basicsr.utils.registry import DATASET_REGISTRY

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5


#: The LMDB environments open in this process (and inherited by its forked DataLoader workers), by data file:
#: (st_dev, st_ino) -> ((st_mtime_ns, st_size), environment).
_ENVIRONMENTS = {}


def shared_lmdb(path, readonly=True, lock=False, readahead=False, **kwargs):
    """The process's environment of the LMDB at ``path``, opened on first use and shared after.

    py-lmdb refuses to open one environment twice in a process (a train and a
    validation set over one LMDB, or a DataLoader worker forked from a process
    that has it open). Every opener of the same data file gets the same
    environment; the options of the first opener hold. An environment that was
    closed, or whose file changed since, is opened again.

    Args:
        path (str): The LMDB folder.
        readonly, lock, readahead: ``lmdb.open``'s, defaults as basicsr's ``LmdbBackend``.
        **kwargs: Other ``lmdb.open`` arguments (basicsr's ``io_backend`` passes them through).

    Returns:
        lmdb.Environment: The environment.
    """
    stat = os.stat(osp.join(path, 'data.mdb'))
    identity, version = (stat.st_dev, stat.st_ino), (stat.st_mtime_ns, stat.st_size)
    if identity in _ENVIRONMENTS:
        known_version, env = _ENVIRONMENTS.pop(identity)
        try:
            env.info()
        except lmdb.Error:  # closed by its user
            pass
        else:
            if known_version == version:
                _ENVIRONMENTS[identity] = (version, env)
                return env
            env.close()
    env = lmdb.open(path, readonly=readonly, lock=lock, readahead=readahead, **kwargs)
    _ENVIRONMENTS[identity] = (version, env)
    return env


def read_meta_info(lmdb_path):
    """Keys, (h, w, c) shapes and line numbers of an LMDB's meta_info.txt, in file order.

    basicsr takes the key as the image name up to the first dot.

    Returns:
        dict[str, tuple[tuple[int, int, int], int]]: key -> (shape, line number).
    """
    entries = {}
    with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                name, shape = line.split()[:2]
                entries[name.split('.')[0]] = (tuple(int(v) for v in shape.strip('()').split(',')), number)
    return entries


def record_shape(lmdb_path, key):
    """The (h, w, c) of the image stored under ``key``, decoded from the record.

    Raises:
        LookupError: If the LMDB has no such record.
        ValueError: If the record is not a decodable image.
    """
    with shared_lmdb(lmdb_path).begin(write=False) as txn:
        content = txn.get(key.encode('ascii'))
    if content is None:
        raise LookupError(f'Key {key!r} is listed in {lmdb_path}/meta_info.txt but missing from the LMDB.')
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'Record {key!r} in LMDB {lmdb_path} is not a decodable image (corrupt LMDB?).')
    return img.shape[:2] + ((img.shape[2] if img.ndim == 3 else 1), )


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
    env = shared_lmdb(path)
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
