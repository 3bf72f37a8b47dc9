"""Images decoded once into one memory-mapped file of uint8 pixels, shared by every process that reads it.

``cache_data: true`` (:class:`~wdsr_basicsr.data.paired_dataset.CheckedPairedImageDataset`) reads its images
from here instead of decoding a PNG per sample. The pixels of one data root (an LMDB or a folder) are written
once to ``<root>.decoded/images.u8`` beside it (or under ``cache_dir``) with an index, ``index.json``, that
records each image's offset and size and the source it was decoded from (file sizes and modification times).
Every DataLoader worker and every rank on the node maps the same file: the operating system keeps one copy in
its page cache, none is copied per process, and the next run reuses the file while the source is unchanged.

Writes are safe against a kill: the index is removed first, the pixels are written under a temporary name and
renamed, and the index is written (temporary, then rename) last; a cache without its index is rebuilt. One
process builds while the others wait on the folder's ``lock`` file.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import cv2
import numpy as np
from PIL import Image

#: Bumped when the file layout changes: an index of another version is rebuilt.
CACHE_VERSION = 1
CHANNELS = 3  # basicsr's imfrombytes reads colour images: BGR, 3 channels, 8 bits


def available_memory() -> int:
    """Bytes of memory the system can give without swapping (``MemAvailable``), or the free physical pages."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


#: The EXIF tag of an image's orientation (values 5-8 turn it by a quarter).
EXIF_ORIENTATION = 0x0112


def header_size(image: bytes | str) -> tuple[int, int]:
    """(height, width) of an encoded image from its header, without decoding the pixels.

    The size is the one OpenCV decodes (and basicsr reads): a JPEG's EXIF orientation that turns the image
    by a quarter swaps its sides.

    Args:
        image (bytes | str): The encoded bytes, or the path of an image file (only its header is read).

    Raises:
        ValueError: If it is not an image Pillow can identify.
        OSError: If the file cannot be read.
    """
    with io.BytesIO(image) if isinstance(image, bytes) else open(image, 'rb') as stream:
        head = stream.read(24)
        if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
            return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')
        stream.seek(0)
        try:
            with Image.open(stream) as img:
                turned = img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
                return (img.width, img.height) if turned else (img.height, img.width)
        except Exception as error:  # noqa: BLE001  (Pillow raises several kinds for bytes that are no image)
            raise ValueError(f'not an image ({error})') from None


class DecodedImages:
    """The decoded images of one data root: ``images[key]`` is an (h, w, 3) uint8 BGR view into the shared file.

    Pickling (a DataLoader worker started by spawn) carries only the file's path and the index; the file is
    mapped again in the worker, never copied.

    Args:
        folder (str): The cache folder (``images.u8`` and ``index.json``).
        index (dict): ``key -> [offset, height, width]``.
    """

    def __init__(self, folder: str, index: dict[str, list[int]]):
        self.folder = folder
        self.index = index
        self._pixels: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(h * w * CHANNELS for _, h, w in self.index.values())

    def shape(self, key: str) -> tuple[int, int]:
        """(height, width) of the image ``key``."""
        _, h, w = self.index[key]
        return h, w

    def __getitem__(self, key: str) -> np.ndarray:
        if self._pixels is None:
            # a plain array over the map: slices of a np.memmap pay for the subclass on every sample
            self._pixels = np.memmap(osp.join(self.folder, 'images.u8'), dtype=np.uint8, mode='r').view(np.ndarray)
        offset, h, w = self.index[key]
        return self._pixels[offset : offset + h * w * CHANNELS].reshape(h, w, CHANNELS)

    def __getstate__(self):
        return {'folder': self.folder, 'index': self.index, '_pixels': None}


def cache_folder(root: str, cache_dir: str | None) -> str:
    """Where the decoded images of ``root`` live: ``<root>.decoded`` beside it, or ``<cache_dir>/<name>.decoded``."""
    root = osp.normpath(osp.abspath(root))
    parent = cache_dir if cache_dir else osp.dirname(root)
    return osp.join(parent, osp.basename(root) + '.decoded')


def decoded_images(
    root: str,
    keys: list[str],
    read: Callable[[str], bytes],
    source: dict,
    *,
    cache_dir: str | None = None,
    log: Callable[[str], None] = lambda message: None,
    held: int = 0,
) -> DecodedImages:
    """The decoded images ``keys`` of ``root``: the cache when it holds them for this ``source``, else built.

    Args:
        root (str): The data root (an LMDB or a folder), named in messages.
        keys (list[str]): The images, by the key ``read`` takes.
        read (Callable[[str], bytes]): The encoded bytes of one image.
        source (dict): What identifies the source's contents (file sizes, modification times): a cache made
            from another source is rebuilt.
        cache_dir (str | None): Folder of the cache, else beside ``root``. Default: None.
        log (Callable[[str], None]): Where the memory needed and the build are reported. Default: nowhere.
        held (int): Bytes of decoded images the caller holds already (the GT of an LQ set): counted with these
            against the memory available. Default: 0.

    Returns:
        DecodedImages: The images.

    Raises:
        MemoryError: If the decoded images need more memory than is available (before anything is written).
        OSError: If the cache's disk has no room for them, or the folder cannot be written.
        ValueError: If an image cannot be decoded, naming the root and key.
    """
    folder = cache_folder(root, cache_dir)
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process builds; the others then find its index
        try:
            index = _read_index(folder, source)
            if index is not None and all(key in index for key in keys):
                images = DecodedImages(folder, {key: index[key] for key in keys})
                _check_memory(images.nbytes, held, root, log, reused=True)
                return images
            return _build(folder, root, keys, read, source, log, held)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_index(folder, source):
    """The cache's index when it is complete and was made from ``source``, else None."""
    try:
        with open(osp.join(folder, 'index.json')) as f:
            index = json.load(f)
        size = osp.getsize(osp.join(folder, 'images.u8'))
    except (OSError, ValueError):
        return None
    if index.get('version') != CACHE_VERSION or index.get('source') != source or index.get('bytes') != size:
        return None
    return index['images']


def _check_memory(needed, held, root, log, reused):
    available = available_memory()
    state = 'mapped from the cache' if reused else 'to decode'
    beside = f' (and {held / 2**30:.2f} GiB held already)' if held else ''
    log(
        f'cache_data: {root}: {needed / 2**30:.2f} GiB of decoded images {state}{beside}; '
        f'{available / 2**30:.2f} GiB of memory available.'
    )
    if needed + held > available:
        raise MemoryError(
            f'cache_data: the decoded images of {root} need {needed / 2**30:.2f} GiB of memory'
            f'{beside} and {available / 2**30:.2f} GiB are available; train without cache_data '
            '(decoding each sample) or on a machine with more memory.'
        )


def _build(folder, root, keys, read, source, log, held):
    workers = os.cpu_count() or 1  # decoding threads (OpenCV and Pillow release the GIL)

    def size_of(key):
        try:
            return header_size(read(key))
        except ValueError as error:
            raise ValueError(f'cache_data: {root}: image {key!r} cannot be read: {error}.') from None

    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(size_of, keys))
    index, offset = {}, 0
    for key, (h, w) in zip(keys, sizes):
        index[key] = [offset, h, w]
        offset += h * w * CHANNELS
    _check_memory(offset, held, root, log, reused=False)
    free = shutil.disk_usage(folder).free
    if offset > free:
        raise OSError(
            f'cache_data: the decoded images of {root} need {offset / 2**30:.2f} GiB on disk in {folder} '
            f"and {free / 2**30:.2f} GiB are free; set the dataset's cache_dir to a larger disk."
        )
    for name in ('index.json', 'images.u8'):  # the index first: a kill from here on leaves no valid cache
        if osp.exists(osp.join(folder, name)):
            os.remove(osp.join(folder, name))
    temporary = osp.join(folder, 'images.u8.partial')
    pixels = np.memmap(temporary, dtype=np.uint8, mode='w+', shape=(max(offset, 1),))

    def decode(key, pixels=pixels):
        start, h, w = index[key]
        img = cv2.imdecode(np.frombuffer(read(key), np.uint8), cv2.IMREAD_COLOR)  # as basicsr's imfrombytes
        if img is None or img.shape[0] * img.shape[1] != h * w:
            found = 'cannot be decoded' if img is None else f'decodes to {img.shape[1]}x{img.shape[0]}'
            raise ValueError(f'cache_data: {root}: image {key!r} {found} (its header says {w}x{h}).')
        index[key] = [start, img.shape[0], img.shape[1]]  # OpenCV turns a JPEG as its EXIF orientation says
        pixels[start : start + h * w * CHANNELS] = img.reshape(-1)

    log(f'cache_data: decoding {len(keys)} images of {root} into {folder} (once; later runs reuse it).')
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, keys))
    pixels.flush()
    del decode, pixels  # unmapped before the file is renamed (the decoders are done)
    if offset == 0:
        os.truncate(temporary, 0)
    os.replace(temporary, osp.join(folder, 'images.u8'))
    record = {'version': CACHE_VERSION, 'source': source, 'bytes': offset, 'images': index}
    with open(osp.join(folder, 'index.json.partial'), 'w') as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(osp.join(folder, 'index.json.partial'), osp.join(folder, 'index.json'))
    return DecodedImages(folder, index)
