"""Any folder of HR images to what training reads, and an option file that points at it.

One command takes one or more folders of HR images (PNG, JPEG, BMP, TIFF, WebP; 8 or 16 bit, gray or colour)
and writes, under ``--out``::

    OUT/DIV2K_train_HR/<stem>.png, OUT/DIV2K_valid_HR/<stem>.png    the images as basicsr reads them (8-bit BGR)
    OUT/DIV2K_{train,valid}_LR_bicubic/X<s>/<stem>x<s>.png         MATLAB bicubic, or the user's own LR images
    OUT/DIV2K_train_HR_sub.lmdb, ..._LR_bicubic_X<s>_sub.lmdb       sub-images, meta_info.txt, sub_images.json
    OUT/DIV2K_valid_HR.lmdb, ..._LR_bicubic_X<s>.lmdb               whole images
    OUT/<recipe name>_<out name>.yml                                the shipped recipe, its data paths here
    OUT/prepared.json                                               what it was made from

DIV2K's names, so that every shipped option file (and :func:`wdsr_basicsr.runs.shrink_options`) reads the folder
as it reads DIV2K; the LMDBs come from the same code as DIV2K's (:func:`.div2k.prepare`). A held-out split comes
from a count (the last N images by name), a list of names, or a second folder. DF2K is DIV2K's and Flickr2K's
training images given together (``--hr DIV2K_train_HR Flickr2K_HR --valid-folder DIV2K_valid_HR``).

Every image is read and checked before anything is visible: unreadable or truncated files, two files with the
same name, images smaller than a training sub-image, user LR images whose sizes do not fit the scale, an output
folder inside an input folder; each fault is one line naming the file. The whole folder is built aside and
renamed when complete. ``prepared.json`` names the inputs (paths, sizes, modification times) and settings: a
rerun with the same ones does nothing, and an output folder made from other ones is refused, not rewritten (a
training may be reading it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from functools import partial
from os import path as osp

import cv2
import numpy as np
import yaml
from PIL import Image
from tqdm import tqdm

from ..files import written_aside
from ..options import load_options
from ..utils.image_io import IMAGE_EXTENSIONS
from ..utils.messages import show_messages
from ..utils.resize import mod_crop
from . import PreparationError, read_bgr, run_job
from .div2k import make_pool, prepare
from .layout import check_stem, hr_dir, lr_dir, lr_path, point_at_div2k
from .lmdb import ALIGN_SCALES

#: What a prepared folder records of its making.
RECORD = 'prepared.json'
#: Images held out for validation by default: this many, at most a tenth of the images, at least one.
DEFAULT_VALID = 10


def list_images(folder: str, what: str) -> dict[str, str]:
    """The images of ``folder`` (not its subfolders) by stem.

    Raises:
        PreparationError: If the folder is missing or holds no image, if two files share a stem, or if a stem
            holds a dot (basicsr cuts an LMDB key at the first dot of meta_info.txt).
    """
    if not osp.isdir(folder):
        raise PreparationError(f'{what} {folder} is not a folder.')
    found: dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = osp.splitext(name)
        path = osp.join(folder, name)
        if ext.lower() not in IMAGE_EXTENSIONS or not osp.isfile(path):
            continue
        if stem in found:
            raise PreparationError(f'{found[stem]} and {path} have the same name: rename one (keys are names).')
        check_stem(stem, path)
        found[stem] = path
    if not found:
        raise PreparationError(f'{what} {folder} holds no image ({", ".join(IMAGE_EXTENSIONS)}).')
    return found


def read_as_basicsr(path: str) -> np.ndarray:
    """The image as basicsr's datasets read it: OpenCV's colour read (8-bit BGR; gray repeated, 16 bit scaled).

    Raises:
        PreparationError: If the file is truncated or not an image.
    """
    try:
        with Image.open(path) as pil:
            pil.load()  # a truncated file fails here, where OpenCV may decode a grey remainder
    except Exception as error:  # noqa: BLE001  (PIL raises many kinds)
        raise PreparationError(f'{path} cannot be read as an image ({error}); is it truncated?') from None
    return read_bgr(path)


def _write_hr(item, *, align, crop_size):
    """Read, check and write one HR image: ``item`` is (split, source, destination); returns its (h, w)."""
    split, source, dest = item
    img = read_as_basicsr(source)
    h, w = img.shape[:2]
    if split == 'train':
        ch, cw = mod_crop(img, align).shape[:2]
        if min(ch, cw) < crop_size:
            raise PreparationError(
                f'{source} is {w}x{h} ({cw}x{ch} once cropped to a multiple of {align}): smaller than one '
                f'{crop_size} px training sub-image; lower --crop-size or leave it out.'
            )
    elif min(h, w) < align:
        raise PreparationError(f'{source} is {w}x{h}: a validation image must be at least {align} px each way.')
    cv2.imwrite(dest, img)
    return h, w


def _write_lr(item):
    """Read, check and write one of the user's LR images: ``item`` is (source, destination, expected (h, w), scale,
    HR source)."""
    source, dest, (h, w), scale, hr_source = item
    img = read_as_basicsr(source)
    if img.shape[:2] != (h // scale, w // scale):
        raise PreparationError(
            f'{source} is {img.shape[1]}x{img.shape[0]}, but {hr_source} is {w}x{h}: expected '
            f'{w // scale}x{h // scale} at x{scale}.'
        )
    cv2.imwrite(dest, img)
    return dest


def split_images(
    images: dict[str, str], valid: int | None, valid_list: str | None, valid_folder: str | None
) -> dict[str, dict[str, str]]:
    """``{'train': {stem: path}, 'valid': {stem: path}}`` from the HR images and one of the three ways to hold out.

    Raises:
        PreparationError: A listed name that is not an image, a count that leaves no training image, a stem in
            both the training and the validation folder.
    """
    if sum(x is not None for x in (valid, valid_list, valid_folder)) > 1:
        raise PreparationError('give one of --valid, --valid-list, --valid-folder.')
    if valid_folder is not None:
        held = list_images(valid_folder, '--valid-folder')
        both = sorted(set(held) & set(images))
        if both:
            raise PreparationError(f'{held[both[0]]} and {images[both[0]]} have the same name: rename one.')
        return {'train': images, 'valid': held}
    if valid_list is not None:
        with open(valid_list) as f:
            names = [line.strip() for line in f if line.strip() and not line.startswith('#')]
        stems = [osp.splitext(osp.basename(n))[0] for n in names]
        missing = [n for n, s in zip(names, stems) if s not in images]
        if missing:
            raise PreparationError(f'--valid-list {valid_list}: {missing[:5]} name no image of the HR folders.')
        chosen = set(stems)
    else:
        count = valid if valid is not None else max(1, min(DEFAULT_VALID, len(images) // 10))
        if not 1 <= count < len(images):
            raise PreparationError(
                f'--valid {count}: hold out at least 1 and fewer than the {len(images)} images (or --valid-folder).'
            )
        chosen = set(sorted(images)[-count:])
    return {
        'train': {s: p for s, p in images.items() if s not in chosen},
        'valid': {s: p for s, p in images.items() if s in chosen},
    }


def find_lr(folder: str, stems: list[str], scale: int) -> dict[str, str]:
    """The user's LR image of each stem in ``folder``: ``<stem>.<ext>`` or ``<stem>x<scale>.<ext>``.

    Raises:
        PreparationError: If one is missing.
    """
    found = {}
    suffix = f'x{scale}'
    for stem, path in list_images(folder, f'--lr {scale}=').items():
        found[stem[: -len(suffix)] if stem.endswith(suffix) else stem] = path
    missing = [s for s in stems if s not in found]
    if missing:
        raise PreparationError(f'--lr {scale}={folder} has no image for {missing[:5]} (<name> or <name>x{scale}).')
    return found


def _inputs_digest(splits, lr_folders, settings) -> str:
    """A digest of every input file (path, size, modification time) and of the settings."""
    entries = []
    for split, images in sorted(splits.items()):
        for stem, path in sorted(images.items()):
            stat = os.stat(path)
            entries.append([split, stem, osp.realpath(path), stat.st_size, stat.st_mtime_ns])
    for scale, folder in sorted(lr_folders.items()):
        for name in sorted(os.listdir(folder)):
            path = osp.join(folder, name)
            if osp.isfile(path):
                stat = os.stat(path)
                entries.append(['lr', scale, osp.realpath(path), stat.st_size, stat.st_mtime_ns])
    text = json.dumps({'inputs': entries, 'settings': settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_folder(
    hr: list[str],
    out: str,
    *,
    scales: tuple[int, ...] = (2, 3, 4),
    valid: int | None = None,
    valid_list: str | None = None,
    valid_folder: str | None = None,
    lr: dict[int, str] | None = None,
    recipe: str | None = None,
    crop_size: int = 480,
    step: int = 240,
    workers: int | None = None,
) -> list[str]:
    """Prepare HR image folders as training reads them (see the module docstring).

    Args:
        hr (list[str]): Folders of HR images (their training images, and the held-out ones unless
            ``valid_folder``).
        out (str): The folder to write; must not exist, or hold this very preparation.
        scales (tuple[int]): LR scales. Default: (2, 3, 4).
        valid (int | None): Hold out the last ``valid`` images by name. Default: None (10, at most a tenth).
        valid_list (str | None): A file naming the held-out images, one per line. Default: None.
        valid_folder (str | None): A folder of held-out HR images. Default: None.
        lr (dict[int, str] | None): The user's own LR folders by scale (real pairs), else MATLAB bicubic.
            Default: None.
        recipe (str | None): The shipped option file the written one is made from. Default: None
            (``options/train_wdsr_b_x<smallest scale>.yml``).
        crop_size (int): HR sub-image size. Default: 480.
        step (int): Stride between sub-images. Default: 240.
        workers (int | None): Worker processes. Default: the CPU count.

    Returns:
        list[str]: What was written (``out`` and the option file), or [] when ``out`` holds this preparation.

    Raises:
        PreparationError: A fault of the inputs or options, naming the file.
    """
    scales = tuple(sorted(set(int(s) for s in scales)))
    lr = dict(lr or {})
    recipe = recipe or osp.join('options', f'train_wdsr_b_x{scales[0] if scales else 2}.yml')
    if not osp.isfile(recipe):
        raise PreparationError(f'--recipe {recipe} does not exist (run from the project folder, or name one).')
    opt = load_options(recipe)
    if opt.get('scale') not in scales:
        raise PreparationError(f'--recipe {recipe} trains x{opt.get("scale")}, which --scales {scales} lacks.')
    gt_size = opt['datasets']['train'].get('gt_size', 0)
    if crop_size < gt_size:
        raise PreparationError(f"--crop-size {crop_size} is smaller than {recipe}'s gt_size {gt_size}.")
    unknown = sorted(set(lr) - set(scales))
    if unknown:
        raise PreparationError(f'--lr for x{unknown[0]}, which --scales {scales} lacks.')
    out_real = osp.realpath(out)
    for folder in [*hr, *(f for f in (valid_folder,) if f), *lr.values()]:
        inside = osp.realpath(folder)
        if out_real == inside or out_real.startswith(inside + os.sep):
            raise PreparationError(f'--out {out} is inside the input folder {folder}: write it elsewhere.')
    images: dict[str, str] = {}
    for folder in hr:
        for stem, path in list_images(folder, '--hr').items():
            if stem in images:
                raise PreparationError(f'{images[stem]} and {path} have the same name: rename one.')
            images[stem] = path
    splits = split_images(images, valid, valid_list, valid_folder)
    stems = sorted(stem for images_of in splits.values() for stem in images_of)
    lr_paths = {scale: find_lr(folder, stems, scale) for scale, folder in lr.items()}
    settings = {'scales': scales, 'crop_size': crop_size, 'step': step, 'recipe': osp.realpath(recipe)}
    digest = _inputs_digest(splits, lr, settings)
    if osp.exists(out):
        record = osp.join(out, RECORD)
        made_from = None
        if osp.isfile(record):
            with open(record) as f:
                made_from = json.load(f).get('digest')
        if made_from == digest:
            return []
        why = 'other images or settings' if made_from else f'something else (it has no {RECORD})'
        raise PreparationError(
            f'--out {out} holds a preparation of {why}; it is left as it is (a training may read it): '
            'name another --out, or remove it first.'
        )
    opt['name'] = f'{opt["name"]}_{osp.basename(out_real)}'
    for phase, dataset in opt['datasets'].items():
        point_at_div2k(dataset, phase, out_real, opt['scale'])
    option_file = osp.join(out, f'{opt["name"]}.yml')
    with written_aside(out, folder=True) as tmp:
        _write_images(tmp, splits, lr_paths, scales, crop_size, workers)
        prepare(tmp, scales, crop_size=crop_size, step=step, workers=workers)
        with open(osp.join(tmp, osp.basename(option_file)), 'w') as f:
            yaml.safe_dump(dict(opt), f, sort_keys=False)
        with open(osp.join(tmp, RECORD), 'w') as f:
            json.dump({'digest': digest, 'settings': settings, 'images': {k: len(v) for k, v in splits.items()}}, f)
    return [out, option_file]


def _write_images(root, splits, lr_paths, scales, crop_size, workers):
    """Write the HR images (and the user's LR ones) in DIV2K's layout under ``root``, each read and checked."""
    align = math.lcm(*ALIGN_SCALES, *scales)
    items = []
    for split, images in splits.items():
        os.makedirs(hr_dir(root, split))
        items += [(split, path, osp.join(hr_dir(root, split), f'{stem}.png')) for stem, path in sorted(images.items())]
    with make_pool(workers or os.cpu_count() or 1) as pool:
        job = partial(_write_hr, align=align, crop_size=crop_size)
        shapes = dict(zip([i[1] for i in items], tqdm(pool.imap(job, items), total=len(items), desc='HR images')))
        lr_items = []
        for scale, found in lr_paths.items():
            for split, images in splits.items():
                os.makedirs(lr_dir(root, split, scale))
                lr_items += [
                    (found[stem], lr_path(root, split, scale, stem), shapes[path], scale, path)
                    for stem, path in sorted(images.items())
                ]
        for _ in tqdm(pool.imap_unordered(_write_lr, lr_items), total=len(lr_items), desc='LR images'):
            pass


def _scale_folder(text: str) -> tuple[int, str]:
    scale, _, folder = text.partition('=')
    if not scale.isdigit() or not folder:
        raise argparse.ArgumentTypeError(f'{text!r}: give SCALE=FOLDER, e.g. 2=my_photos_x2')
    return int(scale), folder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Prepare folders of HR images (yours, or DIV2K + Flickr2K for DF2K) as training reads them, '
        'with an option file made from a shipped recipe.'
    )
    parser.add_argument('--hr', nargs='+', required=True, help='Folders of HR images.')
    parser.add_argument('--out', required=True, help='The folder to write (must not exist yet).')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4.')
    held = parser.add_mutually_exclusive_group()
    held.add_argument('--valid', type=int, help='Hold out the last N images by name. Default: 10, at most 1/10.')
    held.add_argument('--valid-list', help='A file naming the held-out images, one per line.')
    held.add_argument('--valid-folder', help='A folder of held-out HR images.')
    parser.add_argument(
        '--lr',
        type=_scale_folder,
        nargs='+',
        default=[],
        metavar='SCALE=FOLDER',
        help='Your own LR images of a scale (real pairs) instead of MATLAB bicubic.',
    )
    parser.add_argument('--recipe', help='The option file to copy. Default: options/train_wdsr_b_x<first scale>.yml.')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size. Default: 480.')
    parser.add_argument('--step', type=int, default=240, help='Stride between sub-images. Default: 240.')
    parser.add_argument('--workers', type=int, default=None, help='Worker processes. Default: CPU count.')
    return parser.parse_args(argv)


def main(argv=None):
    show_messages()
    args = parse_args(argv)

    def job():
        return prepare_folder(
            args.hr,
            args.out,
            scales=tuple(args.scales),
            valid=args.valid,
            valid_list=args.valid_list,
            valid_folder=args.valid_folder,
            lr=dict(args.lr),
            recipe=args.recipe,
            crop_size=args.crop_size,
            step=args.step,
            workers=args.workers,
        )

    written, fault = run_job(job)
    if fault:
        print(fault, file=sys.stderr)
        return 1
    if not written:
        print(f'{args.out} holds this preparation already (same images and settings): nothing to do.')
        return 0
    print(f'wrote {written[0]}; train with: python wdsr_basicsr/train.py -opt {written[1]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
