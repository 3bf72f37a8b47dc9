"""Upscale images or folders with a trained WDSR (or any network this package or basicsr registers): the CLI.

Images are read and written by :mod:`wdsr_basicsr.utils.image_io`, named by :mod:`wdsr_basicsr.outputs`,
run by the runtime :func:`wdsr_basicsr.backends.choose_backend` picks, tile by tile
(:mod:`wdsr_basicsr.utils.tiling`); this module turns image samples into network tensors and back.

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

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from os import path as osp

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .archs import receptive_radius
from .backends import BACKENDS, choose_backend, runtime_errors
from .loading import network_from_checkpoint
from .outputs import list_inputs, output_path, plan_outputs
from .utils.image_io import read_image, write_image
from .utils.messages import show_messages
from .utils.tiling import sr_forward, tile_boxes, tile_outputs


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


def upscale_image(
    img: np.ndarray,
    net: Callable,
    scale: int,
    *,
    num_in_ch: int = 3,
    tile: int = 0,
    tile_pad: int = 0,
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
    device: str = 'cpu',
) -> np.ndarray:
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
    max_value = 65535.0 if img.dtype == np.uint16 else 255.0
    h, w = img.shape[:2]
    has_alpha = img.ndim == 3 and img.shape[2] in (2, 4)
    gray = img.ndim == 2 or img.shape[2] == 2
    out = np.empty((h * scale, w * scale) + img.shape[2:], img.dtype)
    colour_out = out if img.ndim == 2 else out[:, :, 0] if gray else out[:, :, :3]
    colour_in = img if img.ndim == 2 else img[:, :, 0] if gray else img[:, :, :3]

    def run(x):
        return sr_forward(net, x, scale, ensemble=ensemble, amp_dtype=amp_dtype)

    def read(y0, y1, x0, x1):
        return _to_network(colour_in[y0:y1, x0:x1], num_in_ch, max_value, device)

    tiles = sum(1 for _ in tile_boxes(h, w, tile, tile_pad if tile else 0))
    outputs = tile_outputs(run, read, h, w, scale, tile, tile_pad)
    for (top, bottom, left, right), own in tqdm(outputs, total=tiles, unit='tile', leave=False, disable=tiles < 2):
        colour_out[top:bottom, left:right] = _from_network(own, gray, max_value, img.dtype)
    if has_alpha:
        out[:, :, -1] = cv2.resize(img[:, :, -1], (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Upscale an image or every image of a folder with a trained network.')
    parser.add_argument('-i', '--input', required=True, help='Image file or folder.')
    parser.add_argument('-o', '--output', required=True, help='Output folder (created).')
    parser.add_argument('--model_path', required=True, help='Checkpoint (params_ema is preferred over params).')
    parser.add_argument(
        '--opt',
        default=None,
        help='Option file whose network_g describes the checkpoint; needed '
        'only for checkpoints without a network_g entry.',
    )
    _add_evaluation_flags(parser)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--backend',
        choices=('auto',) + BACKENDS,
        default='auto',
        help='Runtime: auto (default) picks the fastest installed one on the CPU in fp32 (PyTorch on '
        'a GPU or with --half/--bf16); onnxruntime and openvino are optional extras, CPU and fp32.',
    )
    parser.add_argument('--suffix', default='', help='Appended to each output stem as _SUFFIX. Default: none.')
    parser.add_argument(
        '--ext',
        choices=['auto', 'png', 'jpg'],
        default='auto',
        help='Output format; auto keeps the input format (PNG where JPEG cannot hold alpha or 16 bit, '
        'and for gray + alpha).',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='Replace outputs that exist already (inputs are '
        'never replaced). Without it, existing outputs stop the run before any work.',
    )
    return parser.parse_args(argv)


def _add_evaluation_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of how the network runs: output scale, tiles, self-ensemble, precision."""
    parser.add_argument(
        '-s',
        '--outscale',
        type=int,
        default=None,
        help="Real-ESRGAN's flag: the output scale. It must be the network's own (nothing is resampled). "
        "Default: the network's.",
    )
    parser.add_argument(
        '-t',
        '--tile',
        type=int,
        default=0,
        help='Tile size in input pixels for large images; 0 (default) '
        "runs whole images. Tiles bound the memory: each tile's result goes into one output array of "
        "the image's own 8 or 16 bit samples. At least the network's receptive field.",
    )
    parser.add_argument(
        '--tile_pad',
        type=int,
        default=None,
        help='Context around each tile, in input pixels. A pad '
        "at least the network's receptive-field radius gives the whole-image result (within one grey "
        'level): 2 * num_block + 4 for WDSR-A, num_block + 4 for WDSR-B. Default: that radius, '
        'computed from the network.',
    )
    parser.add_argument('--ensemble', action='store_true', help='x8 flip/rotate self-ensemble.')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--half', action='store_true', help='fp16 autocast.')
    precision.add_argument('--bf16', action='store_true', help='bf16 autocast.')


def check_arguments(args: argparse.Namespace) -> None:
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


def network_settings(network_opt: dict, source: str) -> tuple[int, int]:
    """The scale and input channels of a checkpoint's network, checked to be what inference can run.

    Raises:
        ValueError: If the network says no scale, or takes channels other than gray (1) or colour (3).
    """
    scale = network_opt.get('upscale', network_opt.get('scale'))
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f'{source}: network_g {network_opt} says no upscaling factor (upscale or scale).')
    channels = {key: network_opt.get(key, 3) for key in ('num_in_ch', 'num_out_ch')}
    if any(n not in (1, 3) for n in channels.values()):
        raise ValueError(
            f'{source}: the network takes {channels["num_in_ch"]} and gives {channels["num_out_ch"]} '
            'channels; images are upscaled by networks of gray (1) or colour (3) channels.'
        )
    return scale, channels['num_in_ch']


def upscale_file(
    path: str, planned: dict[str, str], args: argparse.Namespace, runner: Callable, scale: int, settings: dict
) -> None:
    """Upscale the image at ``path`` and write it where :func:`plan_outputs` planned it.

    Raises:
        ValueError: If the output would replace another input's result, or cannot be written.
    """
    out = upscale_image(read_image(path), runner, scale, **settings)
    target = output_path(path, args.output, args.suffix, args.ext, out)
    if planned.get(osp.realpath(target)) != path:
        raise ValueError(
            f'needs a PNG for its alpha or 16-bit samples, and {target} is the result of '
            f'{planned[osp.realpath(target)]}; choose --ext png or a --suffix'
        )
    if not write_image(target, out):
        raise ValueError(f'could not be written to {target}')


def tile_context(args: argparse.Namespace, radius: int) -> int:
    """``--tile_pad``, or the network's receptive-field radius; a ``--tile`` smaller than the field is refused.

    Raises:
        ValueError: If ``--tile`` is smaller than the receptive field.
    """
    if args.tile and args.tile < 2 * radius + 1:
        raise ValueError(
            f'--tile {args.tile} is smaller than the receptive field of this network ({2 * radius + 1} px '
            f'across: a tile would be mostly context); the smallest tile that works is --tile {2 * radius + 1} '
            '(256 or more runs faster).'
        )
    tile_pad = radius if args.tile_pad is None else args.tile_pad
    if args.tile and tile_pad < radius:
        print(
            f'warning: --tile_pad {tile_pad} is below the receptive-field radius ({radius} px): pixels near the '
            'tile seams will differ from the whole-image result.',
            file=sys.stderr,
        )
    return tile_pad


def upscale_all(
    inputs: list[str],
    planned: dict[str, str],
    args: argparse.Namespace,
    runner: Callable,
    scale: int,
    settings: dict,
    errors: tuple[type[BaseException], ...],
) -> dict[str, str]:
    """Upscale every input; an image's failure (unreadable, out of memory, a full disk) skips it.

    Returns:
        dict[str, str]: The inputs that failed, with the reason.
    """
    failed = {}
    for path in tqdm(inputs, unit='image'):
        try:  # one image at a time: its arrays are freed when the call returns
            upscale_file(path, planned, args, runner, scale, settings)
        except errors as error:  # out of memory is a RuntimeError in PyTorch, a runtime's own type elsewhere
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if isinstance(error, MemoryError) or 'out of memory' in reason.lower() or 'bad_alloc' in reason:
                reason += ' (out of memory: try --tile 512, or a smaller tile)'
            tqdm.write(f'skipped {path}: {reason}')
            failed[path] = reason
    return failed


def main(argv=None):
    show_messages()
    args = parse_args(argv)
    try:
        check_arguments(args)
        inputs, left_out = list_inputs(args.input, args.output, args.suffix)
        planned = plan_outputs(inputs, args.output, args.suffix, args.ext, args.overwrite)
        net, network_opt = network_from_checkpoint(args.model_path, args.opt)
        scale, num_in_ch = network_settings(network_opt, f'--model_path {args.model_path}')
        if args.outscale is not None and args.outscale != scale:
            raise ValueError(
                f'-s/--outscale {args.outscale}: the network of --model_path {args.model_path} upscales by {scale}, '
                f'and its output is not resampled; give -s {scale} or leave it out.'
            )
        amp_dtype = torch.float16 if args.half else torch.bfloat16 if args.bf16 else None
        tile_pad = tile_context(args, receptive_radius(net))
        runner, backend = choose_backend(net, args.backend, num_in_ch, device=args.device, amp_dtype=amp_dtype)
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    for reason in left_out:
        print(f'left out {reason}', file=sys.stderr)
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as error:
        print(f'error: -o {args.output} cannot be created: {error.strerror or error}.', file=sys.stderr)
        return 2
    settings = dict(
        num_in_ch=num_in_ch,
        tile=args.tile,
        tile_pad=tile_pad,
        ensemble=args.ensemble,
        amp_dtype=amp_dtype,
        device=args.device,
    )
    errors = (ValueError, RuntimeError, MemoryError, OSError, cv2.error) + runtime_errors(backend)
    failed = upscale_all(inputs, planned, args, runner, scale, settings, errors)
    print(f'{len(inputs) - len(failed)} of {len(inputs)} images written to {args.output}')
    if failed:
        print(f'{len(failed)} failed:\n' + '\n'.join(f'  {p}: {r}' for p, r in failed.items()), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
