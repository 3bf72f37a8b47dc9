"""The five SR benchmark sets in BasicSR's layout: Set5, Set14, B100, Urban100, Manga109.

From folders (or archives) of HR images::

    INPUT/Set5/*.png   INPUT/Set14/...   INPUT/B100/...   INPUT/Urban100/...   INPUT/Manga109/...

(a set folder may also hold its images under ``HR/``, as EDSR's ``benchmark.tar`` does, or under
``GTmod12/``; ``INPUT/<Set>.zip`` or ``.tar[.gz]`` is read when the folder is missing) to::

    OUTPUT/<Set>/GTmod12/<name>.png        HR cropped to a multiple of 12
    OUTPUT/<Set>/LRbicx{2,3,4}/<name>.png  MATLAB-compatible bicubic (basicsr's imresize)

Image names are kept. Each set (and each scale added later) is written under a temporary name and
renamed when complete, so a rerun completes what is missing (a set, or the LR folders of new scales,
made from the set's GTmod12) and an interrupted run leaves nothing that looks finished; temporary
folders of an interrupted run are removed at the next start. A set that is missing or whose archive
is corrupt, an image that cannot be read, is smaller than 12 px or holds several frames, two images
that would get the same name, and a set with fewer images than the benchmark has are named; the
other sets and images are still prepared. The output is never the input folder.

``--download`` fetches EDSR's ``benchmark.tar`` (Set5, Set14, B100 and Urban100; checked against its
MD5) into INPUT. Manga109's licence forbids redistribution: download it from manga109.org and put the
109 SR-benchmark pages in ``INPUT/Manga109``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from os import path as osp

import cv2
from tqdm import tqdm

from ..files import remove_leftovers, written_aside
from ..utils.image_io import IMAGE_EXTENSIONS, frames
from ..utils.messages import show_messages
from ..utils.resize import bicubic_downscale, mod_crop
from . import PreparationError
from .fetch import download, extract, md5sum

logger = logging.getLogger(__name__)

#: The sets and their image counts; folder names others use for them.
SETS = {'Set5': 5, 'Set14': 14, 'B100': 100, 'Urban100': 100, 'Manga109': 109}
ALIASES = {
    'Set5': ('Set5', 'set5'),
    'Set14': ('Set14', 'set14'),
    'B100': ('B100', 'BSD100', 'BSDS100', 'bsd100'),
    'Urban100': ('Urban100', 'urban100'),
    'Manga109': ('Manga109', 'manga109'),
}
ARCHIVE_EXTENSIONS = ('.zip', '.tar', '.tar.gz', '.tgz')
#: HR sizes are cropped to a multiple of this, so that every scale divides them (BasicSR's GTmod12).
MOD = 12
#: EDSR's benchmark archive (Set5, Set14, B100, Urban100 with HR and LR folders), MD5 as torchSR lists it.
BENCHMARK_TAR = ('https://cv.snu.ac.kr/research/EDSR/benchmark.tar', '4ace41d33c2384b97e6b320cd0afd6ba')


def is_image(name: str) -> bool:
    """Whether a file or archive member name is one of an image."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: str) -> list[str]:
    """The image files of ``folder`` (sorted); its ``HR/`` or ``GTmod12/`` subfolder when it has one."""
    for sub in ('HR', 'GTmod12'):
        if osp.isdir(osp.join(folder, sub)):
            folder = osp.join(folder, sub)
            break
    return sorted(osp.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))


def find_set(input_dir: str, name: str, scratch: str) -> list[str] | None:
    """The HR images of set ``name`` under ``input_dir``: a folder, or an archive extracted into ``scratch``.

    Returns:
        list[str] | None: The image paths, or None when the set is not there.

    Raises:
        PreparationError: If the set's archive cannot be read (corrupt, cut short).
    """
    for alias in ALIASES[name]:
        folder = osp.join(input_dir, alias)
        if osp.isdir(folder):
            return list_images(folder)
    for alias in ALIASES[name]:
        for ext in ARCHIVE_EXTENSIONS:
            archive = osp.join(input_dir, alias + ext)
            if osp.isfile(archive):
                dest = osp.join(scratch, name)
                try:
                    extract(archive, dest, keep=is_image)
                except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
                    raise PreparationError(
                        f'{archive} cannot be read ({type(error).__name__}: {error}); not prepared.'
                    ) from None
                folders = [
                    d for d, _, files in os.walk(dest) if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files)
                ]
                hr = [d for d in folders if osp.basename(d) in ('HR', 'GTmod12')] or folders
                return sorted(p for d in hr for p in list_images(d)) if hr else []
    return None


def prepare_set(name: str, images: list[str], output: str, scales: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """Write ``output/<name>`` from ``images``: GTmod12 and one LRbicx folder per scale.

    Images whose names differ only in their extension (``a.jpg``, ``a.png``) would be written to one
    file: both are named and left out.

    Returns:
        tuple[list[str], list[str]]: Errors (images left out, each naming its file) and warnings (a set with
        fewer images than the benchmark has).
    """
    with written_aside(osp.join(output, name), folder=True) as tmp:
        return _write_set(name, images, tmp, scales)


def _write_set(name, images, tmp, scales):
    """Write the set's GTmod12 and LRbicx folders into the folder ``tmp``; returns (problems, warnings)."""
    problems, warnings = [], []
    folders = {'gt': osp.join(tmp, 'GTmod12')} | {s: osp.join(tmp, f'LRbicx{s}') for s in scales}
    for folder in folders.values():
        os.makedirs(folder)
    by_stem: dict[str, list[str]] = {}
    for path in images:
        by_stem.setdefault(osp.splitext(osp.basename(path))[0], []).append(path)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            problems.append(
                f'{name}: {" and ".join(paths)} would both be written as {stem}.png; left out (rename one).'
            )
    written = 0
    for path in tqdm([p[0] for p in by_stem.values() if len(p) == 1], desc=name, unit='image'):
        stem = osp.splitext(osp.basename(path))[0]
        hr = cv2.imread(path, cv2.IMREAD_COLOR)
        if hr is None:
            problems.append(f'{name}: {path} cannot be read as an image; left out.')
            continue
        count = frames(path)
        if count > 1:
            problems.append(f'{name}: {path} holds {count} frames (an animation or multi-page file); left out.')
            continue
        if min(hr.shape[:2]) < MOD:
            problems.append(f'{name}: {path} is {hr.shape[1]}x{hr.shape[0]}, smaller than {MOD} px; left out.')
            continue
        hr = mod_crop(hr, MOD)
        cv2.imwrite(osp.join(folders['gt'], f'{stem}.png'), hr)
        for s in scales:
            cv2.imwrite(osp.join(folders[s], f'{stem}.png'), bicubic_downscale(hr, s))
        written += 1
    if written != SETS[name]:
        warnings.append(
            f'{name}: {written} images prepared, the benchmark has {SETS[name]}; results on it are not '
            'comparable with published ones.'
        )
    return problems, warnings


def add_scales(name: str, output: str, scales: tuple[int, ...]) -> list[int]:
    """Write the LRbicx folders of ``scales`` that a prepared ``output/<name>`` lacks, from its GTmod12.

    Returns:
        list[int]: The scales added.
    """
    gt = osp.join(output, name, 'GTmod12')
    added = []
    for s in scales:
        final = osp.join(output, name, f'LRbicx{s}')
        if osp.isdir(final):
            continue
        with written_aside(final, folder=True) as tmp:
            for image in tqdm(sorted(os.listdir(gt)), desc=f'{name} x{s}', unit='image'):
                hr = cv2.imread(osp.join(gt, image), cv2.IMREAD_COLOR)
                if hr is None:
                    raise PreparationError(f'{osp.join(gt, image)} cannot be read as an image.')
                cv2.imwrite(osp.join(tmp, image), bicubic_downscale(hr, s))
        added.append(s)
    return added


def remove_temporaries(output: str) -> None:
    """Remove what an interrupted run left in ``output``: extraction folders, sets and scales half written."""
    removed = [p for s in SETS for p in remove_leftovers(output, s) + remove_leftovers(osp.join(output, s), 'LRbicx*')]
    for entry in os.listdir(output):
        if entry.startswith('.extract_'):  # a TemporaryDirectory of an extraction cut short
            removed.append(osp.join(output, entry))
            shutil.rmtree(removed[-1], ignore_errors=True)
    for path in removed:
        logger.info(f'Removed {path}, left by an interrupted run.')


def download_benchmarks(input_dir: str) -> None:
    """Fetch EDSR's benchmark.tar into ``input_dir`` (resumable), check its MD5 and unpack its four sets."""
    url, expected = BENCHMARK_TAR
    os.makedirs(input_dir, exist_ok=True)
    archive = osp.join(input_dir, 'benchmark.tar')
    download(url, archive)
    digest = md5sum(archive)
    if digest != expected:
        os.remove(archive)
        raise PreparationError(f'{archive}: MD5 {digest}, expected {expected}; removed, run again.')
    with tempfile.TemporaryDirectory(dir=input_dir) as scratch:
        extract(archive, scratch, keep=is_image)
        for name in ('Set5', 'Set14', 'B100', 'Urban100'):
            src, dst = osp.join(scratch, 'benchmark', name), osp.join(input_dir, name)
            if osp.isdir(src) and not osp.exists(dst):
                os.replace(src, dst)


def prepare_benchmarks(
    input_dir: str, output: str, scales: tuple[int, ...] = (2, 3, 4), sets: tuple[str, ...] = tuple(SETS)
) -> tuple[list[str], list[str], list[str]]:
    """Prepare ``sets`` from ``input_dir`` into ``output`` (see the module docstring).

    Returns:
        tuple[list[str], list[str], list[str]]: The sets written (or completed), the errors (a set not found
        or unreadable, images left out) and the warnings (partial sets), each naming its set and file.

    Raises:
        PreparationError: If ``output`` is ``input_dir`` (the sets would replace their sources).
    """
    if osp.isdir(input_dir) and osp.isdir(output) and osp.samefile(input_dir, output):
        raise PreparationError(
            f'--output {output} is the --input folder: the prepared sets would replace their '
            'sources; choose another --output (e.g. datasets).'
        )
    os.makedirs(output, exist_ok=True)
    remove_temporaries(output)
    written, problems, warnings = [], [], []
    with tempfile.TemporaryDirectory(dir=output, prefix='.extract_') as scratch:
        for name in sets:
            existing = osp.join(output, name)
            if osp.isdir(existing):
                if not osp.isdir(osp.join(existing, 'GTmod12')):
                    problems.append(
                        f'{name}: {existing} exists and is not a prepared set (no GTmod12/); not '
                        'prepared: move it away.'
                    )
                    continue
                added = add_scales(name, output, scales)
                logger.info(
                    f'{name}: {existing} exists; '
                    + (f'added LRbicx{", LRbicx".join(map(str, added))}.' if added else 'kept.')
                )
                if added:
                    written.append(existing)
                continue
            try:
                images = find_set(input_dir, name, scratch)
            except PreparationError as error:
                problems.append(f'{name}: {error}')
                continue
            if not images:
                looked = ', '.join(osp.join(input_dir, a) + '[/ or .zip/.tar]' for a in ALIASES[name][:2])
                problems.append(f'{name}: no images found (looked for {looked}); not prepared.')
                continue
            errors, partial = prepare_set(name, images, output, scales)
            problems += errors
            warnings += partial
            written.append(osp.join(output, name))
    return written, problems, warnings


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(
        description="Prepare Set5, Set14, B100, Urban100 and Manga109 in BasicSR's "
        'layout (GTmod12, LRbicx2/3/4) from folders or archives of HR images.'
    )
    parser.add_argument(
        '--input',
        required=True,
        help='Folder holding Set5/, Set14/, B100/, Urban100/, Manga109/ (or their .zip/.tar archives).',
    )
    parser.add_argument(
        '--output', default='datasets', help='Where <Set>/GTmod12 and <Set>/LRbicx* go. Default: datasets.'
    )
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument('--sets', nargs='+', default=list(SETS), choices=list(SETS))
    parser.add_argument(
        '--download',
        action='store_true',
        help="Fetch EDSR's benchmark.tar (Set5, Set14, B100, "
        'Urban100) into --input first. Manga109 cannot be redistributed: get it from manga109.org.',
    )
    args = parser.parse_args(argv)
    try:
        if args.download:
            download_benchmarks(args.input)
        written, problems, warnings = prepare_benchmarks(args.input, args.output, tuple(args.scales), tuple(args.sets))
    except PreparationError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for path in written:
        print(f'wrote {path}')
    for warning in warnings:
        print(f'warning: {warning}', file=sys.stderr)
    for problem in problems:
        print(f'error: {problem}', file=sys.stderr)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
