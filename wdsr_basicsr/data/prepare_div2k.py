"""DIV2K to LMDB: download, bicubic LR, sub-images, LMDBs with meta info.

From DIV2K's own layout::

    ROOT/DIV2K_train_HR/0001.png ...
    ROOT/DIV2K_valid_HR/0801.png ...
    ROOT/DIV2K_{train,valid}_LR_bicubic/X{s}/0001x{s}.png   (optional)

to the LMDBs of BasicSR's documentation::

    ROOT/DIV2K_train_HR_sub.lmdb, ROOT/DIV2K_train_LR_bicubic_X{s}_sub.lmdb
    ROOT/DIV2K_valid_HR.lmdb,     ROOT/DIV2K_valid_LR_bicubic_X{s}.lmdb

Steps:

1. ``--download``: fetch the official archives (resumable, checked against the
   size the server announces and against the CRC-32 of every member of the
   zip), then unpack them.
2. Where an LR folder is missing, make it from HR with MATLAB-compatible
   bicubic (``basicsr.utils.matlab_functions.imresize``) after cropping HR to
   a multiple of the scale, and write it as DIV2K would.
3. Read every image once and check it (readable, LR size = HR size // s)
   before any LMDB is written; a fault stops the run with the file's name.
4. Training split: overlapping sub-images (HR cropped to a multiple of 12,
   then ``crop_size`` px every ``step`` px, LR crops at the same places
   divided by s) written straight to LMDB.
   Validation split: whole images. All LMDBs of a split share their keys.

Each LMDB is built under a temporary name and renamed when complete, so an
interrupted run leaves nothing that looks finished; a rerun skips the LMDBs
that exist and builds the missing ones (with the same keys).
"""
import argparse
import math
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from functools import partial
import multiprocessing
from os import path as osp

import cv2
import numpy as np
import torch
from tqdm import tqdm

from basicsr.utils.lmdb_util import LmdbMaker
from basicsr.utils.matlab_functions import imresize

DIV2K_URL = 'http://data.vision.ee.ethz.ch/cvl/DIV2K/'
SPLITS = ('train', 'valid')
PNG_COMPRESSION = 1  # BasicSR's LMDB default: fast to decode, about 2x smaller than raw
#: Training HR images are cropped to a multiple of lcm(2, 3, 4, *scales) before
#: cutting sub-images, so the sub-image keys do not depend on which scales a run
#: asks for, and LMDBs made by runs with different --scales pair up.
ALIGN_SCALES = (2, 3, 4)


class PreparationError(RuntimeError):
    """A fault in the input data; the message names the file."""


# ----------------------------------------------------------------------------- download


def archive_names(scales):
    """Names of the official DIV2K archives holding HR and bicubic LR for ``scales``."""
    names = [f'DIV2K_{split}_HR.zip' for split in SPLITS]
    names += [f'DIV2K_{split}_LR_bicubic_X{s}.zip' for s in scales for split in SPLITS]
    return names


def download(url, dest, chunk_size=1 << 20):
    """Download ``url`` to ``dest``, resuming a previous partial download.

    The bytes go to ``dest + '.part'``; a rerun asks the server for the rest
    (HTTP Range). The file is renamed to ``dest`` only when its size equals the
    size the server announced and, for a zip, when every member's CRC-32 checks.

    Args:
        url (str): http(s) or file URL.
        dest (str): Final path.
        chunk_size (int): Bytes per read. Default: 1 MiB.

    Raises:
        PreparationError: On a size or checksum mismatch (the partial file is
            removed so the next run starts over) or a failed request.
    """
    if osp.exists(dest):
        return
    part = dest + '.part'
    have = osp.getsize(part) if osp.exists(part) else 0
    request = urllib.request.Request(url, headers={'Range': f'bytes={have}-'} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch
            response = None
        else:
            raise PreparationError(f'Downloading {url} failed: {error}') from error
    except urllib.error.URLError as error:
        raise PreparationError(f'Downloading {url} failed: {error.reason}') from error

    total = None
    if response is not None:
        with response:
            resumed = getattr(response, 'status', 200) == 206
            if not resumed:
                have = 0
            length = response.headers.get('Content-Length')
            total = have + int(length) if length is not None else None
            with open(part, 'ab' if resumed else 'wb') as f, tqdm(
                    total=total, initial=have, unit='B', unit_scale=True, desc=osp.basename(dest)) as bar:
                while True:
                    block = response.read(chunk_size)
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
    size = osp.getsize(part)
    if total is not None and size != total:
        os.remove(part)
        raise PreparationError(f'{dest}: got {size} bytes, the server announced {total}; removed, run again.')
    if dest.endswith('.zip'):
        try:
            with zipfile.ZipFile(part) as archive:
                bad = archive.testzip()
        except zipfile.BadZipFile as error:
            os.remove(part)
            raise PreparationError(f'{dest}: not a valid zip ({error}); removed, run again.') from error
        if bad is not None:
            os.remove(part)
            raise PreparationError(f'{dest}: CRC check failed for member {bad}; removed, run again.')
    os.replace(part, dest)


def unpack(archive_path, root):
    """Extract a DIV2K zip into ``root`` (its members carry their DIV2K folders).

    Extraction goes to a temporary folder first, then each top-level entry is
    moved into place; entries that already exist are kept.

    Raises:
        PreparationError: If a member would land outside ``root``.
    """
    tmp = osp.join(root, '_tmp_unpack_' + osp.basename(archive_path))
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(archive_path) as archive:
        for name in archive.namelist():
            target = osp.realpath(osp.join(tmp, name))
            if not target.startswith(osp.realpath(tmp) + os.sep):
                raise PreparationError(f'{archive_path}: member {name!r} would be written outside {root}.')
        archive.extractall(tmp)
    for dirpath, dirnames, filenames in os.walk(tmp, topdown=True):
        rel = osp.relpath(dirpath, tmp)
        for name in list(dirnames) + filenames:
            src, dst = osp.join(dirpath, name), osp.normpath(osp.join(root, rel, name))
            if not osp.exists(dst):
                os.makedirs(osp.dirname(dst), exist_ok=True)
                os.replace(src, dst)
                if name in dirnames:
                    dirnames.remove(name)
    shutil.rmtree(tmp, ignore_errors=True)


def download_div2k(root, scales, base_url=DIV2K_URL):
    """Download and unpack the DIV2K HR archives and the bicubic LR archives of ``scales``."""
    os.makedirs(root, exist_ok=True)
    for name in archive_names(scales):
        dest = osp.join(root, name)
        download(base_url + name, dest)
        unpack(dest, root)


# ----------------------------------------------------------------------------- layout


def hr_dir(root, split):
    return osp.join(root, f'DIV2K_{split}_HR')


def lr_dir(root, split, scale):
    return osp.join(root, f'DIV2K_{split}_LR_bicubic', f'X{scale}')


def lr_path(root, split, scale, stem):
    return osp.join(lr_dir(root, split, scale), f'{stem}x{scale}.png')


def lmdb_names(split, scales):
    """LMDB names of a split, HR first, as BasicSR's documentation names them."""
    suffix = '_sub' if split == 'train' else ''
    names = {'hr': f'DIV2K_{split}_HR{suffix}.lmdb'}
    names.update({s: f'DIV2K_{split}_LR_bicubic_X{s}{suffix}.lmdb' for s in scales})
    return names


def list_hr_stems(root, split):
    """Sorted stems of the PNGs in the split's HR folder.

    Raises:
        PreparationError: If the folder is missing or holds no PNG.
    """
    folder = hr_dir(root, split)
    if not osp.isdir(folder):
        raise PreparationError(f'HR folder {folder} does not exist (expected DIV2K layout under {root}; '
                               'use --download to fetch DIV2K).')
    stems = sorted(osp.splitext(n)[0] for n in os.listdir(folder) if n.lower().endswith('.png'))
    if not stems:
        raise PreparationError(f'HR folder {folder} holds no PNG image.')
    for stem in stems:
        if '.' in stem:  # basicsr cuts LMDB keys at the first dot of meta_info.txt
            raise PreparationError(f'{osp.join(folder, stem)}.png: the name may not contain a dot.')
    return stems


def read_image(path):
    """Read an image as uint8 HxWx3 BGR.

    Raises:
        PreparationError: If the file is missing, truncated or not an image.
    """
    if not osp.isfile(path):
        raise PreparationError(f'{path} does not exist.')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise PreparationError(f'{path} cannot be read as an image (truncated or corrupt?).')
    return img


def mod_crop(img, multiple):
    """Crop the bottom and right so that height and width are multiples of ``multiple``."""
    h, w = img.shape[:2]
    return img[:h - h % multiple, :w - w % multiple]


def matlab_resize(img, factor):
    """MATLAB ``imresize(img, factor, 'bicubic')`` of a uint8 image (basicsr's ``imresize``), rounded to uint8."""
    return np.clip(np.round(imresize(img.astype(np.float64) / 255., factor) * 255.), 0, 255).astype(np.uint8)


def bicubic_downscale(hr, scale):
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` of a uint8 image cropped to a multiple of ``scale``."""
    return matlab_resize(mod_crop(hr, scale), 1 / scale)


def crop_positions(length, crop_size, step):
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


def encode_png(img):
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise PreparationError('PNG encoding failed.')
    return buf.tobytes()


# ----------------------------------------------------------------------------- steps


def _init_worker():
    torch.set_num_threads(1)  # one process per core already
    cv2.setNumThreads(1)


def make_pool(workers):
    """A process pool that is safe to start from a process that already ran torch.

    Forking a process whose torch (OpenMP) thread pool is running can hang the
    child, so workers are forked from a fresh fork server instead.
    """
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload([__name__])
    return context.Pool(workers, initializer=_init_worker)


def _make_lr_image(stem, root, split, scale):
    hr = read_image(osp.join(hr_dir(root, split), f'{stem}.png'))
    cv2.imwrite(osp.join(lr_dir(root, split, scale) + '.partial', f'{stem}x{scale}.png'), bicubic_downscale(hr, scale))


def make_missing_lr(root, split, scales, stems, pool):
    """Make each missing LR folder from HR with MATLAB bicubic (built aside, renamed when complete)."""
    for scale in scales:
        final = lr_dir(root, split, scale)
        if osp.isdir(final):
            continue
        tmp = final + '.partial'
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        job = partial(_make_lr_image, root=root, split=split, scale=scale)
        for _ in tqdm(pool.imap_unordered(job, stems), total=len(stems), desc=f'{split} LR x{scale} (bicubic)'):
            pass
        os.replace(tmp, final)


def _check_image(stem, root, split, scales):
    hr_path = osp.join(hr_dir(root, split), f'{stem}.png')
    hr = read_image(hr_path)
    h, w = hr.shape[:2]
    for scale in scales:
        path = lr_path(root, split, scale, stem)
        lr_h, lr_w = read_image(path).shape[:2]
        if (lr_h, lr_w) != (h // scale, w // scale):
            raise PreparationError(f'{path} is {lr_w}x{lr_h}, but {hr_path} is {w}x{h}: '
                                   f'expected {w // scale}x{h // scale} at x{scale}.')
    return stem


def check_split(root, split, scales, stems, pool):
    """Read every HR and LR image of the split once; raise on the first fault, naming the file."""
    job = partial(_check_image, root=root, split=split, scales=scales)
    for _ in tqdm(pool.imap_unordered(job, stems), total=len(stems), desc=f'{split} check'):
        pass


def _split_records(stem, root, split, scales, crop_size, step):
    """Encoded records of one image: a list of (key, {'hr' or scale: (png bytes, shape)})."""
    hr = read_image(osp.join(hr_dir(root, split), f'{stem}.png'))
    lrs = {s: read_image(lr_path(root, split, s, stem)) for s in scales}
    if split != 'train':
        return [(stem, {k: (encode_png(img), img.shape) for k, img in [('hr', hr)] + list(lrs.items())})]
    hr = mod_crop(hr, math.lcm(*ALIGN_SCALES, *scales))
    records = []
    index = 0
    for y in crop_positions(hr.shape[0], crop_size, step):
        for x in crop_positions(hr.shape[1], crop_size, step):
            index += 1
            crops = {'hr': hr[y:y + crop_size, x:x + crop_size]}
            for s, lr in lrs.items():
                crops[s] = lr[y // s:(y + crop_size) // s, x // s:(x + crop_size) // s]
            records.append((f'{stem}_s{index:03d}', {k: (encode_png(c), c.shape) for k, c in crops.items()}))
    return records


def read_meta_keys(lmdb_path):
    """Keys listed in an LMDB's meta_info.txt (the image name without extension)."""
    with open(osp.join(lmdb_path, 'meta_info.txt')) as f:
        return [line.split('.')[0] for line in f if line.strip()]


def build_split_lmdbs(root, split, scales, stems, crop_size, step, pool):
    """Write the split's missing LMDBs, each under a temporary name, renamed when all are complete.

    Returns:
        list[str]: Paths of the LMDBs written by this call.
    """
    names = lmdb_names(split, scales)
    missing = {k: n for k, n in names.items() if not osp.isdir(osp.join(root, n))}
    if not missing:
        return []
    makers = {}
    for key, name in missing.items():
        tmp = osp.join(root, f'_tmp_{name}')
        shutil.rmtree(tmp, ignore_errors=True)
        makers[key] = LmdbMaker(tmp, compress_level=PNG_COMPRESSION)
    job = partial(_split_records, root=root, split=split, scales=scales, crop_size=crop_size, step=step)
    count = 0
    too_small = []
    for stem, records in zip(stems, tqdm(pool.imap(job, stems), total=len(stems), desc=f'{split} LMDB')):
        if not records:
            too_small.append(stem)
        for key, data in records:
            for which, maker in makers.items():
                png, shape = data[which]
                maker.put(png, key, shape)
            count += 1
    for maker in makers.values():
        maker.close()
    if too_small:
        shown = ', '.join(osp.join(hr_dir(root, split), f'{stem}.png') for stem in too_small[:10])
        more = f' and {len(too_small) - 10} more' if len(too_small) > 10 else ''
        print(f'Warning: {len(too_small)} {split} HR image(s) give no {crop_size} px sub-image (smaller than '
              f'--crop-size once cropped to a multiple of {math.lcm(*ALIGN_SCALES, *scales)}) and are left out: '
              f'{shown}{more}', flush=True)
    if count == 0:
        raise PreparationError(f'No {split} record: every HR image is smaller than --crop-size {crop_size}.')
    written = []
    for name in missing.values():
        final = osp.join(root, name)
        os.replace(osp.join(root, f'_tmp_{name}'), final)
        written.append(final)
    return written


def check_keys_agree(root, split, scales):
    """All LMDBs of a split must list the same keys (same crop settings).

    Raises:
        PreparationError: Naming the LMDB that differs and a few keys.
    """
    names = lmdb_names(split, scales)
    reference = osp.join(root, names['hr'])
    ref_keys = set(read_meta_keys(reference))
    for key, name in names.items():
        keys = set(read_meta_keys(osp.join(root, name)))
        if keys != ref_keys:
            extra, lacking = sorted(keys - ref_keys)[:5], sorted(ref_keys - keys)[:5]
            raise PreparationError(f'{osp.join(root, name)} and {reference} list different keys (only in the '
                                   f'first: {extra}; only in the second: {lacking}). They were built with '
                                   'different settings: delete the stale LMDBs and run again.')


def prepare(root, scales=(2, 3, 4), crop_size=480, step=240, workers=None, splits=SPLITS):
    """Prepare the DIV2K LMDBs under ``root`` (see the module docstring).

    Args:
        root (str): DIV2K folder.
        scales (tuple[int]): Scales of the LR LMDBs. Default: (2, 3, 4).
        crop_size (int): HR sub-image size of the training split. Default: 480.
        step (int): Stride between HR sub-images. Default: 240.
        workers (int | None): Worker processes. Default: the CPU count.
        splits (tuple[str]): Splits to prepare. Default: ('train', 'valid').

    Returns:
        list[str]: LMDBs written (those already present are skipped).
    """
    scales = tuple(sorted(set(int(s) for s in scales)))
    if not scales or min(scales) < 1:
        raise PreparationError(f'--scales {scales}: give one or more integers >= 1.')
    for name, value in (('--crop-size', crop_size), ('--step', step)):
        if value < 1 or any(value % s for s in scales):
            raise PreparationError(f'{name} {value} must be a positive multiple of every scale in {scales}, '
                                   'so that LR sub-images line up with HR ones.')
    workers = workers or os.cpu_count() or 1
    stems = {split: list_hr_stems(root, split) for split in splits}
    written = []
    todo = [s for s in splits if not all(osp.isdir(osp.join(root, n)) for n in lmdb_names(s, scales).values())]
    for split in set(splits) - set(todo):
        print(f'{split}: all LMDBs exist, skipped.')
    if todo:
        with make_pool(workers) as pool:
            for split in todo:
                make_missing_lr(root, split, scales, stems[split], pool)
                check_split(root, split, scales, stems[split], pool)
                written += build_split_lmdbs(root, split, scales, stems[split], crop_size, step, pool)
    for split in splits:
        check_keys_agree(root, split, scales)
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Prepare DIV2K (or a DIV2K-shaped folder) as the LMDBs BasicSR option files point at.')
    parser.add_argument('--root', required=True, help='DIV2K folder (DIV2K_train_HR/, DIV2K_valid_HR/, ...).')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4.')
    parser.add_argument('--download', action='store_true', help='Fetch and unpack the official archives first.')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size (train). Default: 480.')
    parser.add_argument('--step', type=int, default=240, help='Stride between HR sub-images. Default: 240.')
    parser.add_argument('--workers', type=int, default=None, help='Worker processes. Default: CPU count.')
    parser.add_argument('--base-url', default=DIV2K_URL, help=f'Where the archives are. Default: {DIV2K_URL}')
    return parser.parse_args(argv)


def run_and_report(job):
    """Run ``job`` (which returns the LMDBs it wrote), print them or the data fault; return the exit status."""
    try:
        written = job()
    except PreparationError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for path in written:
        print(f'wrote {path}')
    return 0


def main(argv=None):
    args = parse_args(argv)

    def job():
        if args.download:
            download_div2k(args.root, args.scales, args.base_url)
        return prepare(args.root, args.scales, args.crop_size, args.step, args.workers)

    return run_and_report(job)
