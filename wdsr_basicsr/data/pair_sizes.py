"""The sizes of a paired set's images, read without decoding them, and what they must be for a scale and a patch."""

from __future__ import annotations

import logging
import math
from os import path as osp

from basicsr.data.data_util import paired_paths_from_folder, paired_paths_from_meta_info_file

from .decoded_cache import header_size
from .lmdb_util import (
    check_lmdb_complete,
    lmdb_keys,
    read_meta_info,
    record_shape,
)

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5


def patch_fault(gt_size: int, scale: int) -> str | None:
    """What is wrong with a training set's ``gt_size`` for ``scale``, or None (the option check asks too)."""
    if gt_size % scale:
        return f'gt_size={gt_size} is not a multiple of scale={scale} (the LQ patch is gt_size / scale pixels).'
    return None


def read_file(root: str, key: str) -> bytes:
    """The bytes of the file ``key`` under ``root``."""
    with open(osp.join(root, key), 'rb') as f:
        return f.read()


def lmdb_pair_sizes(opt: dict, name: str) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per key of a GT and an LQ LMDB: the GT's and the LQ's (h, w), from meta_info.txt.

    The two LMDBs must list the same keys, each present in its LMDB, and be complete. Where the two
    meta_info.txt shapes do not fit the scale, the records are decoded: if they fit, a warning names the
    meta_info line that is wrong.
    """
    metas = {}
    for key in ('dataroot_gt', 'dataroot_lq'):
        meta = osp.join(opt[key], 'meta_info.txt')
        if not osp.isfile(meta):
            raise FileNotFoundError(
                f'datasets:{name}: {key} {opt[key]} has no meta_info.txt; is it an LMDB '
                'made by scripts/prepare_div2k.py or basicsr?'
            )
        check_lmdb_complete(opt[key])
        metas[key] = read_meta_info(opt[key])
        absent = sorted(metas[key].keys() - lmdb_keys(opt[key]))
        if absent:
            raise LookupError(
                f'datasets:{name}: {meta} lists {len(absent)} keys that the LMDB does not hold '
                f'(e.g. {absent[:NUM_EXAMPLE_KEYS]}); prepare it again.'
            )
    gt, lq = metas['dataroot_gt'], metas['dataroot_lq']
    if gt.keys() != lq.keys():
        only_gt = sorted(gt.keys() - lq.keys())[:NUM_EXAMPLE_KEYS]
        only_lq = sorted(lq.keys() - gt.keys())[:NUM_EXAMPLE_KEYS]
        raise ValueError(
            f'datasets:{name}: the LMDBs list different keys: {len(gt.keys() - lq.keys())} only in '
            f'dataroot_gt {opt["dataroot_gt"]} (e.g. {only_gt}), {len(lq.keys() - gt.keys())} only '
            f'in dataroot_lq {opt["dataroot_lq"]} (e.g. {only_lq}).'
        )
    sizes = {}
    for key in sorted(gt):  # basicsr's order
        (gt_shape, gt_line), (lq_shape, lq_line) = gt[key], lq[key]
        if gt_shape and lq_shape and fits(gt_shape[:2], lq_shape[:2], opt['scale']):
            sizes[key] = (gt_shape[:2], lq_shape[:2])
            continue
        gt_real, lq_real = (record_shape(opt[root], key)[:2] for root in ('dataroot_gt', 'dataroot_lq'))
        real = (gt_real, lq_real)
        for root, shape, line, stored in (
            ('dataroot_gt', gt_shape, gt_line, real[0]),
            ('dataroot_lq', lq_shape, lq_line, real[1]),
        ):
            if shape and tuple(shape[:2]) != stored and fits(gt_real, lq_real, opt['scale']):
                warn(
                    f'datasets:{name}: {osp.join(opt[root], "meta_info.txt")}, line {line}: records {key} as '
                    f'{shape[1]}x{shape[0]}, but the image stored is {stored[1]}x{stored[0]}; the record is used.'
                )
        sizes[key] = real
    return sizes


def warn(message: str) -> None:
    """A warning of the data check, on basicsr's logger (the run's log) without setting that logger up: the
    check runs before basicsr's pipeline does it, and a logger set up first would be kept without the log file."""
    logging.getLogger('basicsr').warning(message)


def folder_pair_sizes(opt: dict, name: str) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per GT file (relative to ``dataroot_gt``) of paired folders: the GT's and the LQ's (h, w), from headers.

    The pairs are basicsr's (``filename_tmpl``, ``meta_info_file``).
    """
    sizes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for pair in folder_pairs(opt, name):
        try:
            sizes[osp.relpath(pair['gt_path'], opt['dataroot_gt'])] = (
                header_size(pair['gt_path']),
                header_size(pair['lq_path']),
            )
        except (OSError, ValueError) as error:
            raise ValueError(f'datasets:{name}: {pair["gt_path"]} or {pair["lq_path"]}: {error}') from None
    return sizes


def folder_pairs(opt: dict, name: str) -> list[dict[str, str]]:
    """basicsr's pairs of paired folders (``filename_tmpl``, ``meta_info_file``): ``gt_path`` and ``lq_path``."""
    folders = [opt['dataroot_lq'], opt['dataroot_gt']]
    try:
        if opt.get('meta_info_file') is not None:
            return paired_paths_from_meta_info_file(
                folders, ['lq', 'gt'], opt['meta_info_file'], opt.get('filename_tmpl', '{}')
            )
        return paired_paths_from_folder(folders, ['lq', 'gt'], opt.get('filename_tmpl', '{}'))
    except (AssertionError, ValueError) as error:  # basicsr asserts that the folders pair up
        raise ValueError(f'datasets:{name}: {error}') from None


def fits(gt: tuple[int, ...], lq: tuple[int, ...], scale: int) -> bool:
    """Whether an LQ image of size ``lq`` is a GT of size ``gt`` downscaled by ``scale`` (sizes rounded down)."""
    return tuple(lq) == (gt[0] // scale, gt[1] // scale)


def check_sizes(opt, name, sizes, exact):
    """Each pair fits the scale (exactly, for basicsr's crop of a training sample), each LQ holds the patch."""
    scale = opt['scale']
    lq_size = opt['gt_size'] // scale if opt['phase'] == 'train' else 0
    for key, ((h, w), (lq_h, lq_w)) in sizes.items():
        if not fits((h, w), (lq_h, lq_w), scale) or (exact and (h, w) != (lq_h * scale, lq_w * scale)):
            why = (
                (
                    ' (basicsr crops a training sample from exact multiples: crop the GT, or use cache_data: '
                    'true, which drops the rows no LQ pixel covers)'
                )
                if fits((h, w), (lq_h, lq_w), scale)
                else ''
            )
            raise ValueError(
                f'datasets:{name}: scale {scale} does not match the data: {key} is {w}x{h} in '
                f'dataroot_gt {opt["dataroot_gt"]} and {lq_w}x{lq_h} in dataroot_lq '
                f'{opt["dataroot_lq"]} (expected {w // scale}x{h // scale}){why}.'
            )
        if lq_h < lq_size or lq_w < lq_size:
            raise ValueError(
                f'datasets:{name}: image {key} of dataroot_lq {opt["dataroot_lq"]} is {lq_w}x{lq_h}, '
                f'smaller than the LQ patch ({lq_size} px: gt_size {opt["gt_size"]} / scale {scale}).'
            )


def check_batch(opt, name, samples, world_size):
    """An epoch gives each process at least one full batch (basicsr drops the last, partial one)."""
    ratio = opt.get('dataset_enlarge_ratio', 1)
    per_process = math.ceil(samples * ratio / world_size)  # basicsr's EnlargedSampler
    batch = opt['batch_size_per_gpu']
    if per_process < batch:
        needed = math.ceil(batch * world_size / samples)
        raise ValueError(
            f'datasets:{name}: {samples} samples x dataset_enlarge_ratio {ratio} give {per_process} per '
            f'epoch to each of {world_size} processes, fewer than batch_size_per_gpu {batch}: no '
            f'iteration would run; set dataset_enlarge_ratio to at least {needed}.'
        )
