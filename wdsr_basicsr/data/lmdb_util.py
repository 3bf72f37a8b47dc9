"""LMDBs as training reads them: one environment per file in a process, ``meta_info.txt``, complete files, records.

``meta_info.txt`` is written by basicsr's ``LmdbMaker`` (:mod:`wdsr_basicsr.prepare.lmdb` writes through it)
and read here, once, for the datasets and for preparation.
"""

from __future__ import annotations

import json
import os
import threading
from os import path as osp

import cv2
import lmdb
import numpy as np
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.file_client import LmdbBackend

#: The LMDB environments open in this process (and inherited by its forked DataLoader workers), by data file:
#: (st_dev, st_ino) -> ((st_mtime_ns, st_size), environment).
_ENVIRONMENTS: dict[tuple[int, int], tuple[tuple[int, int], lmdb.Environment]] = {}
_LOCK = threading.Lock()


def shared_lmdb(
    path: str, readonly: bool = True, lock: bool = False, readahead: bool = False, **kwargs
) -> lmdb.Environment:
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
    with _LOCK:  # threads of one process (the cache's decoders) share the table
        return _shared_lmdb(path, readonly=readonly, lock=lock, readahead=readahead, **kwargs)


def _shared_lmdb(path, **kwargs):
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
    env = lmdb.open(path, **kwargs)
    _ENVIRONMENTS[identity] = (version, env)
    return env


def read_meta_info(lmdb_path: str) -> dict[str, tuple[tuple[int, ...] | None, int]]:
    """Keys, (h, w, c) shapes and line numbers of an LMDB's meta_info.txt, in file order.

    A line is ``<name>.<ext> (<h>,<w>,<c>) <compression>``, as basicsr's ``LmdbMaker`` writes it. The key is
    the line up to its first dot, as basicsr's ``paired_paths_from_lmdb`` takes it (so a name may hold
    spaces); the shape is read between the line's last parentheses (None where the line has none).

    Returns:
        dict[str, tuple[tuple[int, ...] | None, int]]: key -> ((h, w, c) or None, line number).

    Raises:
        ValueError: If a line's shape is not three integers, naming the file and line.
    """
    path = osp.join(lmdb_path, 'meta_info.txt')
    entries = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            start, end = line.rfind('('), line.rfind(')')
            shape = None
            if 0 <= start < end:
                try:
                    shape = tuple(int(v) for v in line[start + 1 : end].split(','))
                except ValueError:
                    shape = ()
                if len(shape) != 3:
                    raise ValueError(f'{path}, line {number}: {line[start : end + 1]} is not a shape (h,w,c).')
            entries[line.split('.')[0]] = (shape, number)
    return entries


#: Beside an LMDB's meta_info.txt: where each sub-image lies in its source image (``prepare_div2k`` writes it;
#: basicsr reads only meta_info.txt and never this file).
SUB_IMAGES = 'sub_images.json'
SUB_IMAGES_VERSION = 1


def write_sub_images(lmdb_path: str, images: dict[str, tuple[tuple[int, int], dict[str, tuple[int, int]]]]) -> None:
    """Write ``sub_images.json``: per source image, its (h, w) and the (top, left) of each sub-image, in pixels.

    Args:
        lmdb_path (str): The LMDB folder (its coordinates: HR pixels for an HR LMDB, LR for an LR one).
        images (dict): ``image -> ((h, w), {key: (top, left)})``.
    """
    record = {
        'version': SUB_IMAGES_VERSION,
        'images': {
            image: {'size': list(size), 'sub_images': {key: list(place) for key, place in parts.items()}}
            for image, (size, parts) in images.items()
        },
    }
    with open(osp.join(lmdb_path, SUB_IMAGES), 'w') as f:
        json.dump(record, f)


def read_sub_images(lmdb_path: str) -> dict[str, tuple[int, int, dict[str, tuple[int, int]]]] | None:
    """Where the LMDB's sub-images lie in their source images (``sub_images.json``), or None without that file.

    Returns:
        dict | None: ``image -> (h, w, {key: (top, left)})``.

    Raises:
        ValueError: If the file is not the record :func:`write_sub_images` writes, naming it.
    """
    path = osp.join(lmdb_path, SUB_IMAGES)
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        if record['version'] != SUB_IMAGES_VERSION:
            raise ValueError(f'version {record["version"]!r}, not {SUB_IMAGES_VERSION}')
        layout = {}
        for image, entry in record['images'].items():
            h, w = (int(v) for v in entry['size'])
            parts = {str(key): (int(top), int(left)) for key, (top, left) in entry['sub_images'].items()}
            if min(h, w, *(v for place in parts.values() for v in place), 0) < 0:
                raise ValueError(f'a negative size or place in {image}')
            layout[str(image)] = (h, w, parts)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f'{path} is not a record of sub-images ({error}); prepare the LMDB again.') from None
    return layout


def lmdb_keys(lmdb_path: str) -> set[str]:
    """Every key stored in the LMDB (read from its B-tree, not from meta_info.txt)."""
    with shared_lmdb(lmdb_path).begin(write=False) as txn:
        return {key.decode('ascii', 'replace') for key in txn.cursor().iternext(keys=True, values=False)}


def read_record(lmdb_path: str, key: str) -> bytes:
    """The bytes stored under ``key``.

    Raises:
        LookupError: If the LMDB has no such record.
    """
    with shared_lmdb(lmdb_path).begin(write=False) as txn:
        content = txn.get(key.encode('ascii'))
    if content is None:
        raise LookupError(f'Key {key!r} is listed in {lmdb_path}/meta_info.txt but missing from the LMDB.')
    return content


def record_shape(lmdb_path: str, key: str) -> tuple[int, int, int]:
    """The (h, w, c) of the image stored under ``key``, decoded from the record.

    Raises:
        LookupError: If the LMDB has no such record.
        ValueError: If the record is not a decodable image.
    """
    content = read_record(lmdb_path, key)
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'Record {key!r} in LMDB {lmdb_path} is not a decodable image (corrupt LMDB?).')
    return img.shape[:2] + ((img.shape[2] if img.ndim == 3 else 1),)


def check_lmdb_complete(path: str) -> None:
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
        raise OSError(
            f'LMDB {path} is cut short: data.mdb has {size} bytes, its pages need {needed} '
            '(an interrupted copy?); copy or prepare it again.'
        )


def raise_if_bad_record(dataset: PairedImageDataset, index: int, error: Exception) -> None:
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
