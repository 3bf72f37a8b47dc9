"""Opening a decoded cache: mapped with a shared lock, or decoded aside first by one builder and renamed into place."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from os import path as osp

import cv2
import numpy as np
from tqdm import tqdm

from ..files import remove_leftovers, written_aside
from .cache_admin import remove_aside, remove_superseded
from .decoded_cache import (
    CACHE_VERSION,
    CHANNELS,
    INDEX,
    LOCK,
    PIXELS,
    CachePlan,
    DecodedImages,
    content_identity,
    header_size,
    paths_identity,
    read_index,
)


def open_cache(plan: CachePlan, log: Callable[[str], None] = lambda message: None) -> DecodedImages:
    """The images of ``plan``: its ready cache, mapped, else built first (by one process; the others wait).

    Args:
        plan (CachePlan): From :func:`plan_cache`.
        log (Callable[[str], None]): Where the build and the caches it removes are reported. Default: nowhere.

    Returns:
        DecodedImages: The images, with the shared lock held.

    Raises:
        ValueError: If an image cannot be decoded, or sub-images of one image disagree, naming the root and key.
    """
    images = _open(plan.folder, plan.identity)
    if images is not None:
        return images
    parent, name = osp.split(plan.folder)
    os.makedirs(parent, exist_ok=True)
    build_lock = osp.join(parent, f'.{name}.lock')
    with open(build_lock, 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder of an identity; the others then find its cache
        images = _open(plan.folder, plan.identity)
        if images is None:
            if plan.fallback:
                log(f'cache_data: the folder of {plan.root} cannot be written: the cache goes to {parent}.')
            remove_aside(plan.folder, log, 'damaged')  # never rewritten: a damaged cache goes aside
            remove_leftovers(parent, glob.escape(name))  # a killed builder's (the name as it is, not a pattern)
            _build(plan, parent, name, log)
            os.remove(build_lock)  # after the rename: whoever takes the lock later finds the cache
            images = _open(plan.folder, plan.identity)
    if images is None:
        raise OSError(f'cache_data: {plan.folder} was built but cannot be read back.')
    remove_superseded(plan, log)
    return images


def _open(folder, identity):
    """The complete cache in ``folder`` with its shared lock taken, or None."""
    try:
        lock = open(osp.join(folder, LOCK), 'rb')
    except OSError:
        return None
    fcntl.flock(lock, fcntl.LOCK_SH)
    index = read_index(folder, identity)
    try:
        same = os.fstat(lock.fileno()).st_ino == os.stat(osp.join(folder, LOCK)).st_ino  # not pruned meanwhile
    except OSError:
        same = False
    if index is None or not same:
        lock.close()
        return None
    return DecodedImages(folder, index, lock)


def _build(plan, parent, name, log):
    """Decode into a hidden folder beside the cache's place, then rename it into place."""
    sizes = _sizes(plan)
    index, offset = {}, 0
    for entry, (h, w) in sizes.items():
        index[entry] = [offset, h, w]
        offset += h * w * CHANNELS
    start = time.perf_counter()
    try:
        with written_aside(plan.folder, folder=True) as temporary:
            _write_cache(plan, temporary, index, offset)
    except OSError:
        if read_index(plan.folder, plan.identity) is None:
            raise
        return  # another builder renamed the same pixels into place first
    log(
        f'cache_data: {len(index)} images of {plan.root} decoded into {plan.folder} '
        f'({offset / 2**30:.2f} GiB, {time.perf_counter() - start:.1f} s; later runs map it).'
    )


def _write_cache(plan, temporary, index, offset):
    """Decode the images into the folder ``temporary``, then write its index and lock file."""
    digests = _write_pixels(plan, osp.join(temporary, PIXELS), index, offset)
    if content_identity(plan.root, digests, plan.layout) != plan.identity:  # what was decoded is what names the cache
        raise ValueError(
            f'cache_data: the images of {plan.root} changed while this run was starting (their content is '
            'not what was checked); start it again.'
        )
    record = {
        'version': CACHE_VERSION,
        'identity': plan.identity,
        'paths': paths_identity(plan.root, plan.keys, plan.layout),
        'root': osp.realpath(plan.root),
        'bytes': offset,
        'images': index,
    }
    with open(osp.join(temporary, INDEX), 'w') as f:
        json.dump(record, f)
    open(osp.join(temporary, LOCK), 'wb').close()


def _sizes(plan):
    """``entry -> (h, w)``: each key's header, or each image of the layout."""
    if plan.layout is not None:
        return {image: (h, w) for image, (h, w, _) in sorted(plan.layout.items())}

    def size_of(key):
        try:
            return header_size(plan.read(key))
        except ValueError as error:
            raise ValueError(f'cache_data: {plan.root}: image {key!r} cannot be read: {error}.') from None

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return dict(zip(plan.keys, pool.map(size_of, plan.keys)))


def _decode(plan, key, digests):
    """Decode ``key`` as basicsr's ``imfrombytes`` does, recording the digest of the bytes decoded."""
    content = plan.read(key)
    digests[key] = hashlib.sha256(content).hexdigest()
    img = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'cache_data: {plan.root}: image {key!r} cannot be decoded.')
    return img


def _write_pixels(plan, path, index, nbytes):
    """Decode every entry into the file at ``path`` (threads: OpenCV releases the GIL), with a progress bar.

    Returns:
        dict[str, str]: The digest of each key's bytes, as decoded.
    """
    pixels = np.memmap(path, dtype=np.uint8, mode='w+', shape=(max(nbytes, 1),))
    digests: dict[str, str] = {}

    def write(entry, pixels=pixels):
        start, h, w = index[entry]
        target = pixels[start : start + h * w * CHANNELS].reshape(h, w, CHANNELS)
        if plan.layout is None:
            img = _decode(plan, entry, digests)
            if img.shape[0] * img.shape[1] != h * w:
                raise ValueError(
                    f'cache_data: {plan.root}: image {entry!r} decodes to {img.shape[1]}x{img.shape[0]} '
                    f'(its header says {w}x{h}).'
                )
            index[entry] = [start, img.shape[0], img.shape[1]]  # OpenCV turns a JPEG as its EXIF orientation says
            target = target.reshape(img.shape)
            target[...] = img
        else:
            _stitch(plan, entry, target, digests)

    entries = list(index)
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for _ in tqdm(pool.map(write, entries), total=len(entries), desc=f'decoding {osp.basename(plan.root)}'):
            pass
    pixels.flush()
    del pixels, write  # unmapped before the folder is renamed
    if nbytes == 0:
        os.truncate(path, 0)
    return digests


def _stitch(plan, image, target, digests):
    """Put the sub-images of ``image`` back at their places; where they overlap they must agree."""
    h, w, parts = plan.layout[image]
    covered = np.zeros((h, w), bool)
    for key, (top, left) in sorted(parts.items()):
        part = _decode(plan, key, digests)
        ph, pw = part.shape[:2]
        if top + ph > h or left + pw > w:
            raise ValueError(
                f'cache_data: {plan.root}/sub_images.json: {key} ({pw}x{ph} at {left},{top}) lies outside '
                f'{image} ({w}x{h}); prepare the LMDB again.'
            )
        region, seen = target[top : top + ph, left : left + pw], covered[top : top + ph, left : left + pw]
        if seen.any() and not np.array_equal(region[seen], part[seen]):
            raise ValueError(
                f'cache_data: {plan.root}/sub_images.json: {key} at {left},{top} differs from the sub-images of '
                f'{image} it overlaps: the file does not describe this LMDB; prepare it again.'
            )
        region[...] = part
        seen[...] = True
    if not covered.all():
        raise ValueError(f'cache_data: {plan.root}/sub_images.json: the sub-images do not cover {image}.')
