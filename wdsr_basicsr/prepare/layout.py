"""DIV2K's folder and LMDB names, as its archives and BasicSR's documentation name them."""

from __future__ import annotations

import os
from os import path as osp

from . import PreparationError

SPLITS = ('train', 'valid')


def hr_dir(root: str, split: str) -> str:
    return osp.join(root, f'DIV2K_{split}_HR')


def lr_dir(root: str, split: str, scale: int) -> str:
    return osp.join(root, f'DIV2K_{split}_LR_bicubic', f'X{scale}')


def lr_path(root: str, split: str, scale: int, stem: str) -> str:
    return osp.join(lr_dir(root, split, scale), f'{stem}x{scale}.png')


def lmdb_names(split: str, scales: tuple[int, ...]) -> dict:
    """LMDB names of a split, HR first, as BasicSR's documentation names them."""
    suffix = '_sub' if split == 'train' else ''
    names: dict[str | int, str] = {'hr': f'DIV2K_{split}_HR{suffix}.lmdb'}
    names.update({s: f'DIV2K_{split}_LR_bicubic_X{s}{suffix}.lmdb' for s in scales})
    return names


def list_hr_stems(root: str, split: str) -> list[str]:
    """Sorted stems of the PNGs in the split's HR folder.

    Raises:
        PreparationError: If the folder is missing or holds no PNG.
    """
    folder = hr_dir(root, split)
    if not osp.isdir(folder):
        raise PreparationError(
            f'HR folder {folder} does not exist (expected DIV2K layout under {root}; use --download to fetch DIV2K).'
        )
    stems = sorted(osp.splitext(n)[0] for n in os.listdir(folder) if n.lower().endswith('.png'))
    if not stems:
        raise PreparationError(f'HR folder {folder} holds no PNG image.')
    for stem in stems:
        check_stem(stem, f'{osp.join(folder, stem)}.png')
    return stems


def check_stem(stem: str, path: str) -> None:
    """Refuse an image name that cannot be an LMDB key: basicsr cuts a key at the first dot of meta_info.txt.

    Raises:
        PreparationError: Naming ``path``.
    """
    if '.' in stem:
        raise PreparationError(f'{path}: the name may not contain a dot besides its extension.')


def div2k_lmdbs(data: str, split: str, scale: int) -> tuple[str, str]:
    """The (GT, LQ) LMDB paths of DIV2K's ``split`` (``'train'``: sub-images; ``'valid'``) at ``scale`` in ``data``."""
    names = lmdb_names(split, (scale,))
    return osp.join(data, names['hr']), osp.join(data, names[scale])


def point_at_div2k(dataset: dict, phase: str, data: str, scale: int) -> None:
    """Point an option file's dataset section at the DIV2K-shaped data under ``data``, in place: the LMDBs (training:
    the sub-images; any other phase: the validation images), or a caching training set's whole-image folders."""
    if phase == 'train' and dataset.get('cache_data') and (dataset.get('io_backend') or {}).get('type') == 'disk':
        dataset.update(dataroot_gt=hr_dir(data, 'train'), dataroot_lq=lr_dir(data, 'train', scale))
    else:
        gt, lq = div2k_lmdbs(data, 'train' if phase == 'train' else 'valid', scale)
        dataset.update(dataroot_gt=gt, dataroot_lq=lq, io_backend={'type': 'lmdb'})
    dataset.pop('meta_info_file', None)
