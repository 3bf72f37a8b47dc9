"""Which files an inference run reads and writes, decided before any work.

The inputs of a folder (without the results of an earlier run beside them), each output's name, and a plan
in which no output replaces an input, another output or (unless asked) an existing file.
"""

from __future__ import annotations

import os
from os import path as osp

import numpy as np

from .utils.image_io import IMAGE_EXTENSIONS


def output_path(in_path: str, out_dir: str, suffix: str, ext: str, img: np.ndarray) -> str:
    """Where the result of ``in_path`` goes: its stem (plus ``_suffix``), with the chosen extension.

    ``auto`` keeps the input's extension, but writes PNG where the format could not
    hold the result (JPEG: alpha or 16 bit; any format but PNG: gray + alpha).
    """
    candidates = output_candidates(in_path, out_dir, suffix, ext)
    alpha = img.ndim == 3 and img.shape[2] in (2, 4)
    needs_png = (img.ndim == 3 and img.shape[2] == 2) or (
        candidates[0].lower().endswith(('.jpg', '.jpeg')) and (img.dtype == np.uint16 or alpha)
    )
    return candidates[-1] if needs_png else candidates[0]


def output_candidates(in_path: str, out_dir: str, suffix: str, ext: str) -> list[str]:
    """The output names ``in_path`` may get, whatever it holds: the chosen format, then PNG if that differs."""
    stem, in_ext = osp.splitext(osp.basename(in_path))
    ext = in_ext.lstrip('.').lower() if ext == 'auto' else ext
    names = [f'{stem}_{suffix}.{e}' if suffix else f'{stem}.{e}' for e in dict.fromkeys((ext, 'png'))]
    return [osp.join(out_dir, name) for name in names]


def plan_outputs(inputs: list[str], out_dir: str, suffix: str, ext: str, overwrite: bool) -> dict[str, str]:
    """Check, before any work, that no output replaces an input, another output, or (without ``overwrite``) a file.

    Each input's own name (:func:`output_candidates`, first) is reserved for it;
    its PNG fallback (for alpha or 16 bit in a JPEG) too, unless that is another
    input's own name: then that input fails alone if it ever needs the fallback
    (:func:`output_path` is checked against the plan when writing).

    Returns:
        dict[str, str]: The real path of each planned output -> its input.

    Raises:
        ValueError: Naming the inputs and outputs at fault and what would work.
    """
    real_inputs = {osp.realpath(p): p for p in inputs}
    owners: dict[str, str] = {}
    for rank in (0, 1):  # every input's own name first, then the fallbacks that are free
        for path in inputs:
            candidates = output_candidates(path, out_dir, suffix, ext)
            if rank >= len(candidates):
                continue
            target = candidates[rank]
            real = osp.realpath(target)
            if real in real_inputs:
                raise ValueError(
                    f'{target} would replace the input {real_inputs[real]}: inputs are never written '
                    'over; choose another -o folder or a --suffix.'
                )
            if real in owners and owners[real] != path:
                if rank == 1:
                    continue
                raise ValueError(
                    f'{owners[real]} and {path} would both be written to {target}; choose --ext or '
                    '--suffix so that their names differ, or upscale them into separate folders.'
                )
            owners[real] = path
    existing = sorted(t for t in owners if osp.exists(t))
    if existing and not overwrite:
        shown = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
        raise ValueError(f'{len(existing)} output(s) exist already: {shown}; pass --overwrite to replace them.')
    return owners


def list_inputs(path: str, out_dir: str | None = None, suffix: str = '') -> tuple[list[str], list[str]]:
    """The image files of a folder (sorted), or ``[path]`` for a file, and the folder's files left out.

    When the results go into the input folder with a ``suffix``, the files that
    are results of a previous run (``<stem>_<suffix>.*`` beside an input
    ``<stem>.*``) are not inputs, and not named as left out either.

    Returns:
        tuple[list[str], list[str]]: The inputs, and the other files of the folder with why each is left out.
    """
    if osp.isfile(path):
        return [path], []
    if not osp.isdir(path):
        raise FileNotFoundError(f'-i {path} is neither a file nor a folder.')
    files = sorted(n for n in os.listdir(path) if osp.isfile(osp.join(path, n)))
    names = [n for n in files if n.lower().endswith(IMAGE_EXTENSIONS)]
    left_out = [
        f'{osp.join(path, n)}: not one of the image types read ({", ".join(IMAGE_EXTENSIONS)})'
        for n in files
        if n not in names
    ]
    if suffix and out_dir is not None and osp.isdir(out_dir) and osp.samefile(path, out_dir):
        stems = {osp.splitext(n)[0] for n in names}
        names = [
            n
            for n in names
            if not (osp.splitext(n)[0].endswith(f'_{suffix}') and osp.splitext(n)[0][: -len(suffix) - 1] in stems)
        ]
    return [osp.join(path, n) for n in names], left_out
