"""Upscale images or folders with a trained WDSR (or any network this package or basicsr registers).

Usage: python scripts/inference_wdsr.py -i INPUT -o OUTDIR --model_path CKPT [--opt YAML] [--tile N]
[--tile_pad P] [--ensemble] [--half | --bf16] [--device cpu|cuda] [--suffix S] [--ext auto|png|jpg] [--overwrite]
(or the console script ``wdsr-inference`` with the same flags).

No input is ever written over, and every output name is decided before any work: two inputs that would
give the same output, an output that would replace an input (``-o`` the input folder without a
``--suffix`` that keeps the names apart), or an existing output without ``--overwrite`` stop the run
with the names at fault.
"""
import argparse
import os
import sys
from os import path as osp

import cv2
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .archs import receptive_radius
from .utils.checkpoint import network_from_checkpoint
from .utils.inference import sr_forward

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
EXIF_ORIENTATION = 0x0112


def apply_exif_orientation(img, orientation):
    """Turn an HxW[xC] array as EXIF ``orientation`` (1-8) says, as image viewers do."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return img.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def read_image(path):
    """Read an image as stored (8 or 16 bit, gray, colour or with alpha), turned as its EXIF orientation says.

    Returns:
        np.ndarray: HxW (gray), HxWx2 (gray and alpha), HxWx3 (BGR) or HxWx4
        (BGRA), uint8 or uint16.

    Raises:
        ValueError: If the file cannot be read or has another sample type.
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # IMREAD_UNCHANGED ignores EXIF orientation: applied below
    if img is None:
        raise ValueError('cannot be read as an image')
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'has {img.dtype} samples; 8- and 16-bit images are supported')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    try:
        with Image.open(path) as pil:
            orientation = pil.getexif().get(EXIF_ORIENTATION, 1)
            gray_alpha = pil.mode in ('LA', 'La')
    except (OSError, ValueError):  # a format PIL does not know: no orientation to apply
        orientation, gray_alpha = 1, False
    if gray_alpha and img.ndim == 3 and img.shape[2] == 4:  # OpenCV expands gray + alpha to BGRA
        img = img[:, :, [0, 3]]
    return np.ascontiguousarray(apply_exif_orientation(img, orientation))


def write_image(path, img):
    """Write ``img`` as :func:`read_image` returns it; gray + alpha (HxWx2) as a gray + alpha PNG.

    Returns:
        bool: Whether it was written.
    """
    if img.ndim == 3 and img.shape[2] == 2:
        if img.dtype != np.uint8:
            raise ValueError('16-bit gray + alpha cannot be written (Pillow writes gray + alpha PNGs in 8 bit)')
        Image.fromarray(img, 'LA').save(path)
        return True
    return cv2.imwrite(path, img)


def upscale_image(img, net, scale, num_in_ch=3, tile=0, tile_pad=0, ensemble=False, amp_dtype=None, device='cpu'):
    """Super-resolve one image, keeping its sample type, its channels and its alpha.

    Args:
        img (np.ndarray): As returned by :func:`read_image`.
        net (nn.Module): The network (eval mode, on ``device``).
        scale (int): Its upscaling factor.
        num_in_ch (int): Its input channels (3: colour; 1: gray). Default: 3.
        tile, tile_pad, ensemble, amp_dtype: See :func:`wdsr_basicsr.utils.sr_forward`.
        device (str): Device of ``net``. Default: 'cpu'.

    Returns:
        np.ndarray: The upscaled image, same dtype and channel layout.
    """
    max_value = 65535. if img.dtype == np.uint16 else 255.
    alpha = img[:, :, -1] if img.ndim == 3 and img.shape[2] in (2, 4) else None
    gray = img.ndim == 2 or img.shape[2] == 2
    colour = img[:, :, 0] if gray and img.ndim == 3 else img[:, :, :3] if img.ndim == 3 else img
    if num_in_ch == 3:
        rgb = cv2.cvtColor(colour, cv2.COLOR_GRAY2RGB) if gray else cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    else:
        rgb = colour if gray else cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        rgb = rgb[:, :, None]
    x = torch.from_numpy(rgb.astype(np.float32) / max_value).permute(2, 0, 1)[None].to(device)
    out = sr_forward(net, x, scale, tile=tile, tile_pad=tile_pad, ensemble=ensemble, amp_dtype=amp_dtype)
    out = out[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    out = np.round(out * max_value).astype(img.dtype)
    if num_in_ch == 3:
        out = np.round(out.astype(np.float32).mean(axis=2)).astype(img.dtype) if gray else cv2.cvtColor(
            out, cv2.COLOR_RGB2BGR)
    else:
        out = out[:, :, 0] if gray else cv2.cvtColor(out[:, :, 0], cv2.COLOR_GRAY2BGR)
    if alpha is not None:
        h, w = out.shape[:2]
        big_alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_CUBIC)
        out = np.dstack([out, big_alpha])
    return out


def output_path(in_path, out_dir, suffix, ext, img):
    """Where the result of ``in_path`` goes: its stem (plus ``_suffix``), with the chosen extension.

    ``auto`` keeps the input's extension, but writes PNG where the format could not
    hold the result (JPEG: alpha or 16 bit; any format but PNG: gray + alpha).
    """
    candidates = output_candidates(in_path, out_dir, suffix, ext)
    alpha = img.ndim == 3 and img.shape[2] in (2, 4)
    needs_png = (img.ndim == 3 and img.shape[2] == 2) or (
        candidates[0].lower().endswith(('.jpg', '.jpeg')) and (img.dtype == np.uint16 or alpha))
    return candidates[-1] if needs_png else candidates[0]


def output_candidates(in_path, out_dir, suffix, ext):
    """The output names ``in_path`` may get, whatever it holds: the chosen format, then PNG if that differs."""
    stem, in_ext = osp.splitext(osp.basename(in_path))
    ext = in_ext.lstrip('.').lower() if ext == 'auto' else ext
    names = [f'{stem}_{suffix}.{e}' if suffix else f'{stem}.{e}' for e in dict.fromkeys((ext, 'png'))]
    return [osp.join(out_dir, name) for name in names]


def plan_outputs(inputs, out_dir, suffix, ext, overwrite):
    """Check, before any work, that no output replaces an input, another output, or (without ``overwrite``) a file.

    Every name an input may get (:func:`output_candidates`) is reserved for it.

    Raises:
        ValueError: Naming the inputs and outputs at fault and what would work.
    """
    real_inputs = {osp.realpath(p): p for p in inputs}
    owners = {}
    for path in inputs:
        for target in output_candidates(path, out_dir, suffix, ext):
            real = osp.realpath(target)
            if real in real_inputs:
                raise ValueError(f'{target} would replace the input {real_inputs[real]}: inputs are never written '
                                 'over; choose another -o folder or a --suffix.')
            if real in owners and owners[real] != path:
                raise ValueError(f'{owners[real]} and {path} would both be written to {target}; choose --ext or '
                                 '--suffix so that their names differ, or upscale them into separate folders.')
            owners[real] = path
    existing = sorted(t for t in owners if osp.exists(t))
    if existing and not overwrite:
        shown = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
        raise ValueError(f'{len(existing)} output(s) exist already: {shown}; pass --overwrite to replace them.')


def list_inputs(path):
    """The image files of a folder (sorted), or ``[path]`` for a file."""
    if osp.isdir(path):
        return sorted(osp.join(path, n) for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
    if osp.isfile(path):
        return [path]
    raise FileNotFoundError(f'-i {path} is neither a file nor a folder.')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Upscale an image or every image of a folder with a trained network.')
    parser.add_argument('-i', '--input', required=True, help='Image file or folder.')
    parser.add_argument('-o', '--output', required=True, help='Output folder (created).')
    parser.add_argument('--model_path', required=True, help='Checkpoint (params_ema is preferred over params).')
    parser.add_argument('--opt', default=None, help='Option file whose network_g describes the checkpoint; needed '
                        'only for checkpoints without a network_g entry.')
    parser.add_argument('--tile', type=int, default=0, help='Tile size in input pixels for large images; 0 (default) '
                        'runs whole images.')
    parser.add_argument('--tile_pad', type=int, default=None, help='Context around each tile, in input pixels. A pad '
                        "at least the network's receptive-field radius gives the whole-image result (within one grey "
                        'level): 2 * num_block + 4 for WDSR-A, num_block + 4 for WDSR-B. Default: that radius, '
                        'computed from the network.')
    parser.add_argument('--ensemble', action='store_true', help='x8 flip/rotate self-ensemble.')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--half', action='store_true', help='fp16 autocast.')
    precision.add_argument('--bf16', action='store_true', help='bf16 autocast.')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--suffix', default='', help='Appended to each output stem as _SUFFIX. Default: none.')
    parser.add_argument('--ext', choices=['auto', 'png', 'jpg'], default='auto',
                        help='Output format; auto keeps the input format (PNG where JPEG cannot hold alpha or 16 bit, '
                        'and for gray + alpha).')
    parser.add_argument('--overwrite', action='store_true', help='Replace outputs that exist already (inputs are '
                        'never replaced). Without it, existing outputs stop the run before any work.')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        inputs = list_inputs(args.input)
        plan_outputs(inputs, args.output, args.suffix, args.ext, args.overwrite)
        net, network_opt = network_from_checkpoint(args.model_path, args.opt)
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    net = net.to(args.device)
    scale = network_opt.get('upscale')
    tile_pad = receptive_radius(net) if args.tile_pad is None else args.tile_pad
    amp_dtype = torch.float16 if args.half else torch.bfloat16 if args.bf16 else None
    os.makedirs(args.output, exist_ok=True)
    failed = []
    for path in tqdm(inputs, unit='image'):
        try:
            img = read_image(path)
        except ValueError as error:
            tqdm.write(f'skipped {path}: {error}')
            failed.append(path)
            continue
        out = upscale_image(img, net, scale, network_opt.get('num_in_ch', 3), args.tile, tile_pad, args.ensemble,
                            amp_dtype, args.device)
        target = output_path(path, args.output, args.suffix, args.ext, out)
        try:
            written = write_image(target, out)
        except ValueError as error:
            written = False
            tqdm.write(f'{path}: {error}')
        if not written:
            tqdm.write(f'could not write {target}')
            failed.append(path)
    print(f'{len(inputs) - len(failed)} of {len(inputs)} images written to {args.output}')
    if failed:
        print(f'failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0
