"""DIV2K-shaped folders to LMDBs: overlapping sub-images for training, whole images for validation.

Every LMDB of a split is built under a temporary name and renamed when all are complete; they share their
keys (checked after). A sub-image LMDB also records where each sub-image lies in its source image
(``sub_images.json`` beside ``meta_info.txt``, in that LMDB's pixels), so that ``sampling: image`` can draw
uniform positions over whole images (:mod:`wdsr_basicsr.data.decoded_cache` puts them back together).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from functools import partial
from multiprocessing.pool import Pool
from os import path as osp

import cv2
import numpy as np
from basicsr.utils.lmdb_util import LmdbMaker
from tqdm import tqdm

from ..data.lmdb_util import read_meta_info, write_sub_images
from ..files import remove_leftovers, written_aside
from ..utils.resize import mod_crop
from . import PreparationError, read_bgr
from .layout import hr_dir, lmdb_names, lr_path

logger = logging.getLogger(__name__)

PNG_COMPRESSION = 1  # BasicSR's LMDB default: fast to decode, about 2x smaller than raw


#: Training HR images are cropped to a multiple of lcm(2, 3, 4, *scales) before
#: cutting sub-images, so the sub-image keys do not depend on which scales a run
#: asks for, and LMDBs made by runs with different --scales pair up.
ALIGN_SCALES = (2, 3, 4)


def crop_positions(length: int, crop_size: int, step: int) -> list[int]:
    """Top-left offsets of the sub-images along one axis (BasicSR's rule, thresh_size 0).

    Offsets run from 0 every ``step`` while a crop fits; if the last crop stops
    short of the end, one more crop ends exactly at the end. An axis shorter
    than ``crop_size`` gives no crop.
    """
    if length < crop_size:
        return []
    positions = list(range(0, length - crop_size + 1, step))
    if positions[-1] + crop_size < length:
        positions.append(length - crop_size)
    return positions


def encode_png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise PreparationError('PNG encoding failed.')
    return buf.tobytes()


def _split_records(stem, root, split, scales, crop_size, step):
    """Encoded records of one image and the HR size they come from (cropped to the alignment, for sub-images).

    Returns:
        tuple: ([(key, {'hr' or scale: (png bytes, shape)}, (top, left) in HR pixels)], (h, w)).
    """
    hr = read_bgr(osp.join(hr_dir(root, split), f'{stem}.png'))
    lrs = {s: read_bgr(lr_path(root, split, s, stem)) for s in scales}
    if split != 'train':
        whole = [('hr', hr)] + list(lrs.items())
        return [(stem, {k: (encode_png(img), img.shape) for k, img in whole}, (0, 0))], hr.shape[:2]
    hr = mod_crop(hr, math.lcm(*ALIGN_SCALES, *scales))
    records = []
    index = 0
    for y in crop_positions(hr.shape[0], crop_size, step):
        for x in crop_positions(hr.shape[1], crop_size, step):
            index += 1
            crops = {'hr': hr[y : y + crop_size, x : x + crop_size]}
            for s, lr in lrs.items():
                crops[s] = lr[y // s : (y + crop_size) // s, x // s : (x + crop_size) // s]
            records.append((f'{stem}_s{index:03d}', {k: (encode_png(c), c.shape) for k, c in crops.items()}, (y, x)))
    return records, hr.shape[:2]


def build_split_lmdbs(
    root: str, split: str, scales: tuple[int, ...], stems: list[str], *, crop_size: int, step: int, pool: Pool
) -> list[str]:
    """Write the split's missing LMDBs, each under a temporary name, renamed when all are complete.

    Returns:
        list[str]: Paths of the LMDBs written by this call.
    """
    names = lmdb_names(split, scales)
    missing = {k: n for k, n in names.items() if not osp.isdir(osp.join(root, n))}
    if not missing:
        return []
    with contextlib.ExitStack() as stack:
        folders = {}
        for key, name in missing.items():
            remove_leftovers(root, name)
            folders[key] = stack.enter_context(written_aside(osp.join(root, name), folder=True, suffix='.lmdb'))
            os.rmdir(folders[key])  # basicsr's LmdbMaker makes its folder itself, and refuses one that exists
        _write_records(folders, root, split, scales, stems, crop_size=crop_size, step=step, pool=pool)
    return [osp.join(root, name) for name in missing.values()]


def _write_records(folders, root, split, scales, stems, *, crop_size, step, pool):
    """Fill the LMDB of each key (``'hr'`` or a scale) in ``folders`` with the split's records."""
    makers = {key: LmdbMaker(folder, compress_level=PNG_COMPRESSION) for key, folder in folders.items()}
    job = partial(_split_records, root=root, split=split, scales=scales, crop_size=crop_size, step=step)
    count = 0
    too_small = []
    places: dict[str, tuple[tuple[int, int], dict[str, tuple[int, int]]]] = {}  # HR pixels
    for stem, (records, size) in tqdm(zip(stems, pool.imap(job, stems)), total=len(stems), desc=f'{split} LMDB'):
        if not records:
            too_small.append(stem)
        for key, data, _ in records:
            for which, maker in makers.items():
                png, shape = data[which]
                maker.put(png, key, shape)
            count += 1
        if records:
            places[stem] = (size, {key: place for key, _, place in records})
    for key, maker in makers.items():
        maker.close()
        if split == 'train':  # in each LMDB's own pixels: HR, or LR of scale `key`
            s = 1 if key == 'hr' else key
            scaled = {
                image: ((h // s, w // s), {k: (top // s, left // s) for k, (top, left) in parts.items()})
                for image, ((h, w), parts) in places.items()
            }
            write_sub_images(folders[key], scaled)
    if too_small:
        shown = ', '.join(osp.join(hr_dir(root, split), f'{stem}.png') for stem in too_small[:10])
        more = f' and {len(too_small) - 10} more' if len(too_small) > 10 else ''
        logger.warning(
            f'Warning: {len(too_small)} {split} HR image(s) give no {crop_size} px sub-image (smaller '
            f'than --crop-size once cropped to a multiple of {math.lcm(*ALIGN_SCALES, *scales)}) and are '
            f'left out: {shown}{more}'
        )
    if count == 0:
        raise PreparationError(f'No {split} record: every HR image is smaller than --crop-size {crop_size}.')


def check_keys_agree(root: str, split: str, scales: tuple[int, ...]) -> None:
    """All LMDBs of a split must list the same keys (same crop settings).

    Raises:
        PreparationError: Naming the LMDB that differs and a few keys.
    """
    names = lmdb_names(split, scales)
    reference = osp.join(root, names['hr'])
    ref_keys = set(read_meta_info(reference))
    for name in names.values():
        keys = set(read_meta_info(osp.join(root, name)))
        if keys != ref_keys:
            extra, lacking = sorted(keys - ref_keys)[:5], sorted(ref_keys - keys)[:5]
            raise PreparationError(
                f'{osp.join(root, name)} and {reference} list different keys (only in the '
                f'first: {extra}; only in the second: {lacking}). They were built with '
                'different settings: delete the stale LMDBs and run again.'
            )
