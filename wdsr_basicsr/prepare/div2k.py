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
   divided by s) written straight to LMDB (:mod:`.lmdb`).
   Validation split: whole images. All LMDBs of a split share their keys.

Each training LMDB also records where its sub-images lie in their images
(``sub_images.json``), from which ``cache_data: true`` with ``sampling: image``
(:mod:`wdsr_basicsr.data.decoded_cache`) puts the images back together. The
whole-image folders stay: ``options/authors/`` and ``options/paper/`` read them.

Each LMDB is built under a temporary name and renamed when complete, so an
interrupted run leaves nothing that looks finished; a rerun skips the LMDBs
that exist and builds the missing ones (with the same keys).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
from functools import partial
from multiprocessing.pool import Pool
from os import path as osp

import cv2
import torch
from tqdm import tqdm

from ..files import remove_leftovers, written_aside
from ..utils.messages import show_messages
from ..utils.resize import bicubic_downscale
from . import PreparationError, read_bgr, run_job
from .fetch import download, unpack
from .layout import SPLITS, hr_dir, list_hr_stems, lmdb_names, lr_dir, lr_path
from .lmdb import build_split_lmdbs, check_keys_agree

logger = logging.getLogger(__name__)

DIV2K_URL = 'http://data.vision.ee.ethz.ch/cvl/DIV2K/'


def archive_names(scales: tuple[int, ...]) -> list[str]:
    """Names of the official DIV2K archives holding HR and bicubic LR for ``scales``."""
    names = [f'DIV2K_{split}_HR.zip' for split in SPLITS]
    names += [f'DIV2K_{split}_LR_bicubic_X{s}.zip' for s in scales for split in SPLITS]
    return names


def download_div2k(root: str, scales: tuple[int, ...], base_url: str = DIV2K_URL) -> None:
    """Download and unpack the DIV2K HR archives and the bicubic LR archives of ``scales``."""
    os.makedirs(root, exist_ok=True)
    for name in archive_names(scales):
        dest = osp.join(root, name)
        download(base_url + name, dest)
        unpack(dest, root)


def _init_worker():
    torch.set_num_threads(1)  # one process per core already
    cv2.setNumThreads(1)


def make_pool(workers: int) -> Pool:
    """A process pool that is safe to start from a process that already ran torch.

    Forking a process whose torch (OpenMP) thread pool is running can hang the
    child, so workers are forked from a fresh fork server instead.
    """
    context = multiprocessing.get_context('forkserver')
    context.set_forkserver_preload([__name__])
    return context.Pool(workers, initializer=_init_worker)


def _make_lr_image(stem, root, split, scale, folder):
    hr = read_bgr(osp.join(hr_dir(root, split), f'{stem}.png'))
    cv2.imwrite(osp.join(folder, f'{stem}x{scale}.png'), bicubic_downscale(hr, scale))


def make_missing_lr(root: str, split: str, scales: tuple[int, ...], stems: list[str], pool: Pool) -> None:
    """Make each missing LR folder from HR with MATLAB bicubic (built aside, renamed when complete)."""
    for scale in scales:
        final = lr_dir(root, split, scale)
        if osp.isdir(final):
            continue
        remove_leftovers(osp.dirname(final), osp.basename(final))
        with written_aside(final, folder=True) as tmp:
            job = partial(_make_lr_image, root=root, split=split, scale=scale, folder=tmp)
            for _ in tqdm(pool.imap_unordered(job, stems), total=len(stems), desc=f'{split} LR x{scale} (bicubic)'):
                pass


def _check_image(stem, root, split, scales):
    hr_path = osp.join(hr_dir(root, split), f'{stem}.png')
    hr = read_bgr(hr_path)
    h, w = hr.shape[:2]
    for scale in scales:
        path = lr_path(root, split, scale, stem)
        lr_h, lr_w = read_bgr(path).shape[:2]
        if (lr_h, lr_w) != (h // scale, w // scale):
            raise PreparationError(
                f'{path} is {lr_w}x{lr_h}, but {hr_path} is {w}x{h}: expected {w // scale}x{h // scale} at x{scale}.'
            )
    return stem


def check_split(root: str, split: str, scales: tuple[int, ...], stems: list[str], pool: Pool) -> None:
    """Read every HR and LR image of the split once; raise on the first fault, naming the file."""
    job = partial(_check_image, root=root, split=split, scales=scales)
    for _ in tqdm(pool.imap_unordered(job, stems), total=len(stems), desc=f'{split} check'):
        pass


def prepare(
    root: str,
    scales: tuple[int, ...] = (2, 3, 4),
    *,
    crop_size: int = 480,
    step: int = 240,
    workers: int | None = None,
    splits: tuple[str, ...] = SPLITS,
) -> list[str]:
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
            raise PreparationError(
                f'{name} {value} must be a positive multiple of every scale in {scales}, '
                'so that LR sub-images line up with HR ones.'
            )
    workers = workers or os.cpu_count() or 1
    stems = {split: list_hr_stems(root, split) for split in splits}
    written = []
    todo = [s for s in splits if not all(osp.isdir(osp.join(root, n)) for n in lmdb_names(s, scales).values())]
    for split in set(splits) - set(todo):
        logger.info(f'{split}: all LMDBs exist, skipped.')
    if todo:
        with make_pool(workers) as pool:
            for split in todo:
                make_missing_lr(root, split, scales, stems[split], pool)
                check_split(root, split, scales, stems[split], pool)
                written += build_split_lmdbs(
                    root, split, scales, stems[split], crop_size=crop_size, step=step, pool=pool
                )
    for split in splits:
        check_keys_agree(root, split, scales)
    return written


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Prepare DIV2K (or a DIV2K-shaped folder) as the LMDBs BasicSR option files point at.'
    )
    parser.add_argument('--root', required=True, help='DIV2K folder (DIV2K_train_HR/, DIV2K_valid_HR/, ...).')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4.')
    parser.add_argument('--download', action='store_true', help='Fetch and unpack the official archives first.')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size (train). Default: 480.')
    parser.add_argument('--step', type=int, default=240, help='Stride between HR sub-images. Default: 240.')
    parser.add_argument('--workers', type=int, default=None, help='Worker processes. Default: CPU count.')
    parser.add_argument('--base-url', default=DIV2K_URL, help=f'Where the archives are. Default: {DIV2K_URL}')
    return parser.parse_args(argv)


def main(argv=None):
    show_messages()
    args = parse_args(argv)

    def job():
        if args.download:
            download_div2k(args.root, args.scales, args.base_url)
        return prepare(args.root, args.scales, crop_size=args.crop_size, step=args.step, workers=args.workers)

    written, fault = run_job(job)
    if fault:
        print(fault, file=sys.stderr)
        return 1
    for path in written:
        print(f'wrote {path}')
    print(
        'Training files read the sub-image LMDBs and sample as the authors (cache_data: true, sampling: image): '
        'the sub-images are put back into their images (sub_images.json) and decoded once into a '
        '<name>.<id>.decoded folder beside the LMDB (DIV2K train: about 6.6 GB HR, 6.6 / s^2 GB LR, in memory '
        'while training). options/authors/ and options/paper/ read the whole images: '
        f'{hr_dir(args.root, "train")} and {lr_dir(args.root, "train", args.scales[0])} '
        f"(filename_tmpl: '{{}}x{args.scales[0]}')."
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
