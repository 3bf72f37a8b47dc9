"""Images decoded once into one memory-mapped file of uint8 pixels, shared by every process that reads it.

``cache_data: true`` (:class:`~wdsr_basicsr.data.paired_dataset.CheckedPairedImageDataset`) crops its samples
from here instead of decoding a PNG per sample. Every DataLoader worker and every rank on the node maps the same
file: the operating system keeps one copy in its page cache, none is copied per process.

**Identity.** A cache holds the pixels of exactly one list of encoded images: the resolved path of the data root,
its keys (files under a folder, or records of an LMDB), a digest of each one's bytes and, for sub-images put back
together into their images, where each lies (:func:`cache_identity`). A digest of all that names the cache
folder, ``<root name>.<identity>.decoded``: two roots with one last name, two subsets of one root, or a file
rewritten with its size and time put back each get a cache of their own, and datasets that name the same files,
in any order, share one.

**Never rewritten.** A cache is built in a hidden folder beside its final place and renamed into place when
complete, so a folder under a cache's name is complete and is never written again. Builders of one identity
take turns on a build lock (:func:`~.cache_open.open_cache`); readers hold a shared lock on the cache's ``lock``
file as long as they use it, so a ready cache on read-only storage is used without writing anything, and
:func:`~.cache_admin.prune_caches` removes exactly the caches nobody holds. A new cache of the same files (their
content changed) removes the old one when nobody holds it.

**Where.** Beside the data root, or in the dataset's ``cache_dir``; when neither can be written, in the user's
cache folder (:func:`user_cache_dir`). A ready cache in any of them is used. Memory and disk are checked by
:func:`plan_cache` and :func:`check_memory` before anything is decoded or written.

This module holds the format, the identity and the plan; :mod:`.cache_open` maps or builds a cache,
:mod:`.cache_admin` lists, removes and prunes them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from os import path as osp
from typing import BinaryIO

import numpy as np
from PIL import Image

#: Bumped when the file layout or the identity changes: a cache of another version is another cache.
CACHE_VERSION = 2
CHANNELS = 3  # basicsr's imfrombytes reads colour images: BGR, 3 channels, 8 bits
#: Hex digits of the identity in a cache folder's name.
NAME_DIGITS = 20
SUFFIX = '.decoded'
LOCK = 'lock'
PIXELS = 'images.u8'
INDEX = 'index.json'

#: ``image -> (height, width, {record key: (top, left)})``: sub-images put back together into their images.
Layout = dict[str, tuple[int, int, dict[str, tuple[int, int]]]]

logger = logging.getLogger(__name__)


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


def user_cache_dir() -> str:
    """The user's own cache folder: ``$XDG_CACHE_HOME/wdsr_basicsr``, else ``~/.cache/wdsr_basicsr``."""
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(base, 'wdsr_basicsr')


class DecodedImages:
    """The decoded images of one cache: ``images[name]`` is an (h, w, 3) uint8 BGR view into the shared file.

    While it lives, the process holds a shared lock on the cache (:func:`prune_caches` leaves it alone).
    Pickling (a DataLoader worker started by spawn) carries only the folder and the index; the file is mapped
    again in the worker, never copied.

    Args:
        folder (str): The cache folder.
        index (dict): ``name -> [offset, height, width]``.
        lock (BinaryIO | None): The cache's lock file, held shared. Default: None.
    """

    def __init__(self, folder: str, index: dict[str, list[int]], lock: BinaryIO | None = None):
        self.folder = folder
        self.index = index
        self._lock = lock
        self._pixels: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(h * w * CHANNELS for _, h, w in self.index.values())

    def shape(self, name: str) -> tuple[int, int]:
        """(height, width) of the image ``name``."""
        _, h, w = self.index[name]
        return h, w

    def __getitem__(self, name: str) -> np.ndarray:
        if self._pixels is None:
            # a plain array over the map: slices of a np.memmap pay for the subclass on every sample
            self._pixels = np.memmap(osp.join(self.folder, PIXELS), dtype=np.uint8, mode='r').view(np.ndarray)
        offset, h, w = self.index[name]
        return self._pixels[offset : offset + h * w * CHANNELS].reshape(h, w, CHANNELS)

    def __getstate__(self):
        return {'folder': self.folder, 'index': self.index, '_lock': None, '_pixels': None}


@dataclass
class CachePlan:
    """Which cache a dataset's images go to, decided before anything is decoded (:func:`plan_cache`).

    Attributes:
        root (str): The data root, as the option file names it (for messages).
        keys (list[str]): The keys ``read`` takes.
        read (Callable[[str], bytes]): The encoded bytes of one key.
        layout (Layout | None): Sub-images put back together, or None (one entry per key).
        identity (str): The digest of what the cache is made from (:func:`cache_identity`).
        folder (str): The cache folder.
        ready (bool): Whether the folder held the complete cache when planned.
        nbytes (int): Bytes of decoded pixels.
        fallback (bool): Whether the folder is in the user's cache folder because neither the data's folder
            nor ``cache_dir`` can be written.
    """

    root: str
    keys: list[str]
    read: Callable[[str], bytes]
    layout: Layout | None
    identity: str
    folder: str
    ready: bool
    nbytes: int
    fallback: bool


def cache_identity(root: str, keys: list[str], read: Callable[[str], bytes], layout: Layout | None) -> str:
    """The digest of what a cache is decoded from: resolved root, keys, each key's bytes, and the layout.

    The keys are taken in sorted order, so datasets that list the same files in another order share a cache.
    """
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # hashlib releases the GIL on large buffers
        digests = dict(zip(keys, pool.map(lambda key: hashlib.sha256(read(key)).hexdigest(), keys)))
    return content_identity(root, digests, layout)


def content_identity(root, digests, layout):
    """The identity of the files ``key -> sha256`` under ``root``, put together as ``layout`` says."""
    described = {
        'version': CACHE_VERSION,
        'root': osp.realpath(root),
        'files': sorted(digests.items()),
        'layout': None
        if layout is None
        else {name: [h, w, sorted(parts.items())] for name, (h, w, parts) in layout.items()},
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def paths_identity(root: str, keys: list[str], layout: Layout | None) -> str:
    """The digest of which files a cache holds, not of their content: caches of the same files share it."""
    described = [osp.realpath(root), sorted(keys), layout is not None]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


def plan_cache(
    root: str,
    keys: list[str],
    read: Callable[[str], bytes],
    *,
    nbytes: int,
    cache_dir: str | None = None,
    layout: Layout | None = None,
) -> CachePlan:
    """Find the ready cache of these images, or the folder to build it in, checking the disk: nothing is written.

    The places are ``cache_dir`` (else the data root's folder), then :func:`user_cache_dir`. A ready cache in
    any of them is used; else the first that can be written is chosen.

    Args:
        root (str): The data root (an LMDB or a folder).
        keys (list[str]): The keys ``read`` takes.
        read (Callable[[str], bytes]): The encoded bytes of one key.
        nbytes (int): Bytes of decoded pixels (from the images' sizes).
        cache_dir (str | None): The dataset's ``cache_dir``. Default: None (beside the root).
        layout (Layout | None): Sub-images put back together into their images. Default: None.

    Returns:
        CachePlan: The plan.

    Raises:
        OSError: If ``cache_dir`` is not a folder, no place can be written, or the disk lacks room.
    """
    if cache_dir is not None and osp.exists(cache_dir) and not osp.isdir(cache_dir):
        raise NotADirectoryError(f'cache_dir {cache_dir} is a file, not a folder.')
    primary = osp.abspath(cache_dir) if cache_dir else osp.dirname(osp.realpath(root))
    places = [primary] + ([user_cache_dir()] if osp.abspath(user_cache_dir()) != primary else [])
    identity = cache_identity(root, keys, read, layout)
    name = f'{osp.basename(osp.realpath(root))}.{identity[:NAME_DIGITS]}{SUFFIX}'
    plan = CachePlan(root, keys, read, layout, identity, '', False, nbytes, False)
    for place in places:
        if read_index(osp.join(place, name), identity) is not None:
            plan.folder, plan.ready, plan.fallback = osp.join(place, name), True, place != primary
            return plan
    writable = [place for place in places if _writable(place)]
    if not writable:
        raise PermissionError(
            f'the decoded images of {root} cannot be written: neither {primary} nor {places[-1]} can be '
            "written; set the dataset's cache_dir to a folder you can write."
        )
    plan.folder, plan.fallback = osp.join(writable[0], name), writable[0] != primary
    existing = _existing(writable[0])
    free = shutil.disk_usage(existing).free
    if nbytes > free:
        raise OSError(
            f'the decoded images of {root} need {nbytes / 2**30:.2f} GiB on disk in {writable[0]} and '
            f"{free / 2**30:.2f} GiB are free; set the dataset's cache_dir to a larger disk."
        )
    return plan


def _existing(folder):
    """``folder`` or its nearest existing ancestor."""
    while not osp.isdir(folder):
        folder = osp.dirname(folder)
    return folder


def _writable(folder):
    """Whether ``folder`` can be written, or made under its nearest existing ancestor (asked of the kernel)."""
    if osp.exists(folder) and not osp.isdir(folder):
        return False
    return os.access(_existing(folder), os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids)


def check_memory(needed: int, held: int, root: str) -> str:
    """Refuse decoded images that do not fit in the memory available beside those held; else say the sizes.

    Args:
        needed (int): Bytes of these decoded images.
        held (int): Bytes of decoded images held already (the GT of an LQ set).
        root (str): The data root, named in the message.

    Returns:
        str: The sizes, to log.

    Raises:
        MemoryError: If they do not fit.
    """
    available = available_memory()
    beside = f' (and {held / 2**30:.2f} GiB held already)' if held else ''
    if needed + held > available:
        raise MemoryError(
            f'the decoded images of {root} need {needed / 2**30:.2f} GiB of memory{beside} and '
            f'{available / 2**30:.2f} GiB are available; set cache_data: false (a PNG decoded per sample) or '
            'train on a machine with more memory.'
        )
    return f'{needed / 2**30:.2f} GiB of decoded images{beside}; {available / 2**30:.2f} GiB of memory available'


def read_index(folder, identity):
    """The cache's index when ``folder`` holds the complete cache of ``identity``, else None."""
    try:
        with open(osp.join(folder, INDEX)) as f:
            record = json.load(f)
        size = osp.getsize(osp.join(folder, PIXELS))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get('identity') != identity or record.get('bytes') != size:
        return None
    return record['images']
