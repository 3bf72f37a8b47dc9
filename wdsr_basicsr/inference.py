"""Upscale images or folders with a trained WDSR (or any network this package or basicsr registers).

Usage: python scripts/inference_wdsr.py -i INPUT -o OUTDIR --model_path CKPT [--opt YAML] [--tile N]
[--tile_pad P] [--ensemble] [--half | --bf16] [--device cpu|cuda] [--backend auto|torch|onnxruntime|openvino]
[--suffix S] [--ext auto|png|jpg] [--overwrite] (or the console script ``wdsr-inference`` with the same flags).

``--backend auto`` (the default) runs the network, on the CPU in fp32, with the fastest installed runtime
(PyTorch, ONNX Runtime, OpenVINO), timed on a small input first; on a GPU, or with ``--half``/``--bf16``,
PyTorch runs it. The runtimes agree within 1e-4 on outputs in [0, 1].

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
from .backends import BACKENDS, fastest_backend, make_runner, runtime_errors
from .utils.checkpoint import network_from_checkpoint
from .utils.inference import sr_forward, tile_boxes

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
        ValueError: If the file cannot be read, has another sample type, holds
            several frames (an animation, a multi-page TIFF), or is 16-bit gray
            with alpha (which cannot be written back in 16 bit).
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
            frames = getattr(pil, 'n_frames', 1)
            gray_alpha = pil.mode in ('LA', 'La') or (pil.format == 'PNG' and _png_colour_type(path) == 4)
    except (OSError, ValueError):  # a format PIL does not know: no orientation to apply
        orientation, frames, gray_alpha = 1, 1, False
    if frames > 1:
        raise ValueError(f'holds {frames} frames (an animation or a multi-page file); only single images are '
                         'upscaled: extract the frames first')
    if gray_alpha and img.ndim == 3 and img.shape[2] == 4:  # OpenCV expands gray + alpha to BGRA
        if img.dtype == np.uint16:
            raise ValueError('is 16-bit gray with alpha, which cannot be written back in 16 bit (Pillow writes gray '
                             '+ alpha in 8 bit); convert it to 16-bit RGBA or to 8 bit first')
        img = img[:, :, [0, 3]]
    return np.ascontiguousarray(apply_exif_orientation(img, orientation))


def _png_colour_type(path):
    """The colour type byte of a PNG's IHDR chunk (4: gray + alpha)."""
    with open(path, 'rb') as f:
        header = f.read(26)
    return header[25] if len(header) == 26 and header[12:16] == b'IHDR' else None


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


def _to_network(patch, num_in_ch, max_value, device):
    """A colour patch (HxW gray or HxWx3 BGR, integer samples) as the network's (1, num_in_ch, H, W) input."""
    gray = patch.ndim == 2
    if num_in_ch == 3:
        rgb = np.repeat(patch[:, :, None], 3, axis=2) if gray else patch[:, :, ::-1]
    else:
        rgb = (patch if gray else cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY))[:, :, None]
    return torch.from_numpy(rgb.astype(np.float32) / max_value).permute(2, 0, 1)[None].to(device)


def _from_network(out, gray, max_value, dtype):
    """The network's (1, C, H, W) output as a patch in the input's layout (HxW gray or HxWx3 BGR) and dtype."""
    out = out[0].clamp_(0, 1).mul_(max_value).round_()
    if gray:
        out = out.mean(dim=0).round_() if out.shape[0] == 3 else out[0]  # RGB -> gray
        return out.cpu().numpy().astype(dtype)
    out = out.flip(0) if out.shape[0] == 3 else out.expand(3, -1, -1)  # RGB -> BGR; gray network -> BGR
    return out.permute(1, 2, 0).cpu().numpy().astype(dtype)


def upscale_image(img, net, scale, num_in_ch=3, tile=0, tile_pad=0, ensemble=False, amp_dtype=None, device='cpu'):
    """Super-resolve one image, keeping its sample type, its channels and its alpha.

    The result is written tile by tile into one array of the image's own dtype
    (uint8 or uint16): besides the image and that array, only one tile's input
    and output are held in floats at a time, so memory stays bounded for huge
    images. With ``tile`` 0 the whole image is one tile.

    Args:
        img (np.ndarray): As returned by :func:`read_image`.
        net (callable): The network (eval mode, on ``device``), or a runner of
            :func:`wdsr_basicsr.backends.make_runner`.
        scale (int): Its upscaling factor.
        num_in_ch (int): Its input channels (3: colour; 1: gray). Default: 3.
        tile, tile_pad, ensemble, amp_dtype: See :func:`wdsr_basicsr.utils.sr_forward`.
        device (str): Device of ``net``. Default: 'cpu'.

    Returns:
        np.ndarray: The upscaled image, same dtype and channel layout.
    """
    max_value = 65535. if img.dtype == np.uint16 else 255.
    h, w = img.shape[:2]
    has_alpha = img.ndim == 3 and img.shape[2] in (2, 4)
    gray = img.ndim == 2 or img.shape[2] == 2
    out = np.empty((h * scale, w * scale) + img.shape[2:], img.dtype)
    colour_out = out if img.ndim == 2 else out[:, :, 0] if gray else out[:, :, :3]
    for (top, bottom, left, right), (y0, y1, x0, x1) in tile_boxes(h, w, tile, tile_pad if tile else 0):
        patch = img[y0:y1, x0:x1]
        if img.ndim == 3:
            patch = patch[:, :, 0] if gray else patch[:, :, :3]
        result = sr_forward(net, _to_network(patch, num_in_ch, max_value, device), scale, ensemble=ensemble,
                            amp_dtype=amp_dtype)
        result = result[:, :, (top - y0) * scale:(bottom - y0) * scale, (left - x0) * scale:(right - x0) * scale]
        colour_out[top * scale:bottom * scale, left * scale:right * scale] = _from_network(
            result, gray, max_value, img.dtype)
    if has_alpha:
        out[:, :, -1] = cv2.resize(img[:, :, -1], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
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
    owners = {}
    for rank in (0, 1):  # every input's own name first, then the fallbacks that are free
        for path in inputs:
            candidates = output_candidates(path, out_dir, suffix, ext)
            if rank >= len(candidates):
                continue
            target = candidates[rank]
            real = osp.realpath(target)
            if real in real_inputs:
                raise ValueError(f'{target} would replace the input {real_inputs[real]}: inputs are never written '
                                 'over; choose another -o folder or a --suffix.')
            if real in owners and owners[real] != path:
                if rank == 1:
                    continue
                raise ValueError(f'{owners[real]} and {path} would both be written to {target}; choose --ext or '
                                 '--suffix so that their names differ, or upscale them into separate folders.')
            owners[real] = path
    existing = sorted(t for t in owners if osp.exists(t))
    if existing and not overwrite:
        shown = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
        raise ValueError(f'{len(existing)} output(s) exist already: {shown}; pass --overwrite to replace them.')
    return owners


def list_inputs(path, out_dir=None, suffix=''):
    """The image files of a folder (sorted), or ``[path]`` for a file.

    When the results go into the input folder with a ``suffix``, the files that
    are results of a previous run (``<stem>_<suffix>.*`` beside an input
    ``<stem>.*``) are not inputs.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'-i {path} is neither a file nor a folder.')
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
    if suffix and out_dir is not None and osp.isdir(out_dir) and osp.samefile(path, out_dir):
        stems = {osp.splitext(n)[0] for n in names}
        names = [n for n in names if not (osp.splitext(n)[0].endswith(f'_{suffix}')
                                          and osp.splitext(n)[0][:-len(suffix) - 1] in stems)]
    return [osp.join(path, n) for n in names]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Upscale an image or every image of a folder with a trained network.')
    parser.add_argument('-i', '--input', required=True, help='Image file or folder.')
    parser.add_argument('-o', '--output', required=True, help='Output folder (created).')
    parser.add_argument('--model_path', required=True, help='Checkpoint (params_ema is preferred over params).')
    parser.add_argument('--opt', default=None, help='Option file whose network_g describes the checkpoint; needed '
                        'only for checkpoints without a network_g entry.')
    parser.add_argument('--tile', type=int, default=0, help='Tile size in input pixels for large images; 0 (default) '
                        "runs whole images. Tiles bound the memory: each tile's result goes into one output array of "
                        "the image's own 8 or 16 bit samples. At least the network's receptive field.")
    parser.add_argument('--tile_pad', type=int, default=None, help='Context around each tile, in input pixels. A pad '
                        "at least the network's receptive-field radius gives the whole-image result (within one grey "
                        'level): 2 * num_block + 4 for WDSR-A, num_block + 4 for WDSR-B. Default: that radius, '
                        'computed from the network.')
    parser.add_argument('--ensemble', action='store_true', help='x8 flip/rotate self-ensemble.')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--half', action='store_true', help='fp16 autocast.')
    precision.add_argument('--bf16', action='store_true', help='bf16 autocast.')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--backend', choices=('auto', ) + BACKENDS, default='auto',
                        help='Runtime: auto (default) picks the fastest installed one on the CPU in fp32 (PyTorch on '
                        'a GPU or with --half/--bf16); onnxruntime and openvino are optional extras, CPU and fp32.')
    parser.add_argument('--suffix', default='', help='Appended to each output stem as _SUFFIX. Default: none.')
    parser.add_argument('--ext', choices=['auto', 'png', 'jpg'], default='auto',
                        help='Output format; auto keeps the input format (PNG where JPEG cannot hold alpha or 16 bit, '
                        'and for gray + alpha).')
    parser.add_argument('--overwrite', action='store_true', help='Replace outputs that exist already (inputs are '
                        'never replaced). Without it, existing outputs stop the run before any work.')
    return parser.parse_args(argv)


def choose_backend(net, args, num_in_ch):
    """The network as ``--backend`` runs it: the module on ``--device``, or a runner of another runtime.

    Returns:
        tuple[callable, str]: The network or runner, and the backend's name.

    Raises:
        RuntimeError: If the backend is not installed (naming the extra).
        ValueError: If it cannot run as asked (a GPU, or fp16/bf16, with a CPU runtime).
    """
    torch_only = args.device != 'cpu' or args.half or args.bf16
    if args.backend in ('onnxruntime', 'openvino') and torch_only:
        raise ValueError(f'--backend {args.backend} runs on the CPU in fp32: drop --device cuda, --half and --bf16, '
                         'or use --backend torch.')
    if args.backend == 'torch' or (args.backend == 'auto' and torch_only):
        return net.to(args.device), 'torch'
    if args.backend != 'auto':
        return make_runner(net, args.backend, num_in_ch), args.backend
    backend, runner, times = fastest_backend(net, num_in_ch)
    print('backend auto: ' + ', '.join(f'{b} {ms:.1f} ms' for b, ms in times.items()) + f' -> {backend}')
    return (net if backend == 'torch' else runner), backend


def check_arguments(args):
    """Refuse flags that cannot work before the model is loaded: tile sizes, an ``-o`` that cannot be a folder.

    Raises:
        ValueError: Naming the flag.
    """
    if args.tile < 0:
        raise ValueError(f'--tile {args.tile}: a tile size is 0 (whole images) or a number of pixels.')
    if args.tile_pad is not None and args.tile_pad < 0:
        raise ValueError(f'--tile_pad {args.tile_pad}: the context around a tile is 0 or more pixels.')
    folder = osp.abspath(args.output)
    while not osp.exists(folder):  # the nearest existing folder must let us create (or write into) -o
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        raise ValueError(f'-o {args.output}: {folder} is a file; -o names a folder for the results.')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f'-o {args.output}: {folder} is not writable.')


def network_settings(network_opt, source):
    """The scale and input channels of a checkpoint's network, checked to be what inference can run.

    Raises:
        ValueError: If the network says no scale, or takes channels other than gray (1) or colour (3).
    """
    scale = network_opt.get('upscale', network_opt.get('scale'))
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f'{source}: network_g {network_opt} says no upscaling factor (upscale or scale).')
    channels = {key: network_opt.get(key, 3) for key in ('num_in_ch', 'num_out_ch')}
    if any(n not in (1, 3) for n in channels.values()):
        raise ValueError(f'{source}: the network takes {channels["num_in_ch"]} and gives {channels["num_out_ch"]} '
                         'channels; images are upscaled by networks of gray (1) or colour (3) channels.')
    return scale, channels['num_in_ch']


def main(argv=None):
    args = parse_args(argv)
    try:
        check_arguments(args)
        inputs = list_inputs(args.input, args.output, args.suffix)
        planned = plan_outputs(inputs, args.output, args.suffix, args.ext, args.overwrite)
        net, network_opt = network_from_checkpoint(args.model_path, args.opt)
        scale, num_in_ch = network_settings(network_opt, f'--model_path {args.model_path}')
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    radius = receptive_radius(net)
    try:
        net, backend = choose_backend(net, args, num_in_ch)
    except (RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    if args.tile and args.tile < 2 * radius + 1:
        print(f'error: --tile {args.tile} is smaller than the receptive field of this network ({2 * radius + 1} px '
              f'across: a tile would be mostly context); the smallest tile that works is --tile {2 * radius + 1} '
              '(256 or more runs faster).', file=sys.stderr)
        return 2
    tile_pad = radius if args.tile_pad is None else args.tile_pad
    if args.tile and tile_pad < radius:
        print(f'warning: --tile_pad {tile_pad} is below the receptive-field radius ({radius} px): pixels near the '
              'tile seams will differ from the whole-image result.', file=sys.stderr)
    amp_dtype = torch.float16 if args.half else torch.bfloat16 if args.bf16 else None
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as error:
        print(f'error: -o {args.output} cannot be created: {error.strerror or error}.', file=sys.stderr)
        return 2
    # an image's failure (unreadable, out of memory in any runtime, a full disk) skips it; the others go on
    errors = (ValueError, RuntimeError, MemoryError, OSError, cv2.error) + runtime_errors(backend)
    failed = {}
    for path in tqdm(inputs, unit='image'):
        try:
            img = read_image(path)
            out = upscale_image(img, net, scale, num_in_ch, args.tile, tile_pad, args.ensemble, amp_dtype,
                                args.device)
            target = output_path(path, args.output, args.suffix, args.ext, out)
            if planned.get(osp.realpath(target)) != path:
                raise ValueError(f'needs a PNG for its alpha or 16-bit samples, and {target} is the result of '
                                 f'{planned[osp.realpath(target)]}; choose --ext png or a --suffix')
            if not write_image(target, out):
                raise ValueError(f'could not be written to {target}')
        except errors as error:  # out of memory is a RuntimeError in PyTorch, a runtime's own type elsewhere
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if isinstance(error, MemoryError) or 'out of memory' in reason.lower() or 'bad_alloc' in reason:
                reason += ' (out of memory: try --tile 512, or a smaller tile)'
            tqdm.write(f'skipped {path}: {reason}')
            failed[path] = reason
        finally:
            img = out = None  # free this image before the next one
    print(f'{len(inputs) - len(failed)} of {len(inputs)} images written to {args.output}')
    if failed:
        print(f'{len(failed)} failed:\n' + '\n'.join(f'  {p}: {r}' for p, r in failed.items()), file=sys.stderr)
        return 1
    return 0
