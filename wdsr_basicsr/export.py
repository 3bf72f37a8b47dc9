"""Export a trained network to ONNX, TorchScript or safetensors, weight norm folded.

Usage: python scripts/export.py --model_path CKPT [--opt YAML] --format onnx|torchscript|safetensors --output FILE
[--opset N] (or the console script ``wdsr-export``). ONNX and TorchScript take any batch, height and width.
safetensors holds the folded state dict (settings buffers included) and its ``network_g`` as JSON metadata:
no pickle, loadable by spandrel (``import wdsr_basicsr.spandrel_support``) and by this package's inference. The
exported model is run on a random input and compared with PyTorch before success is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from os import path as osp

import numpy as np
import torch
from torch import nn

from . import backends
from .archs.describe import describe
from .files import written_aside
from .loading import network_from_checkpoint
from .utils.messages import show_messages

#: Largest difference from PyTorch accepted for the exported model, on outputs in [0, 1].
TOLERANCE = 1e-4


def write_torchscript(net: nn.Module, output: str, num_in_ch: int):
    """Trace ``net`` to ``output``; return the model read back from it."""
    with torch.no_grad():
        scripted = torch.jit.trace(net, torch.rand(1, num_in_ch, 16, 16), check_trace=False)
    scripted.save(output)
    return torch.jit.load(output)


def write_onnx(net: nn.Module, output: str, num_in_ch: int, opset: int):
    """Export ``net`` to ``output`` (:func:`wdsr_basicsr.backends.export_onnx`); return an ONNX Runtime runner of it.

    Raises:
        RuntimeError: If onnx or onnxruntime is not installed (naming the extra).
    """
    backends.check_backend('onnxruntime')
    backends.export_onnx(net, output, num_in_ch, opset=opset)
    return backends.onnx_runner(output, 'onnxruntime')


def write_safetensors(net: nn.Module, network_g: dict, output: str):
    """Write ``net``'s state dict and ``network_g`` to ``output``; return the network read back from it."""
    try:
        from safetensors.torch import save
    except ImportError as error:
        raise RuntimeError('safetensors export needs safetensors: pip install "wdsr-basicsr[export]"') from error
    state = {key: value.contiguous() for key, value in net.state_dict().items()}
    # this package's networks as folded (plain convs; settings from the buffers); others as trained
    network_g = describe(state) or dict(network_g)
    with open(output, 'wb') as f:
        f.write(save(state, metadata={'network_g': json.dumps(network_g)}))
    return network_from_checkpoint(output)[0]


def export(model_path: str, fmt: str, output: str, opt_path: str | None = None, opset: int = 17) -> float:
    """Export the network of ``model_path`` and check it against PyTorch.

    Args:
        model_path (str): Checkpoint.
        fmt (str): 'onnx', 'torchscript' or 'safetensors'.
        output (str): Output file.
        opt_path (str | None): Option file for checkpoints without ``network_g``.
        opset (int): ONNX opset. Default: 17.

    Returns:
        float: Largest absolute difference between the exported model and
        PyTorch on a random 2x3x23x31 input (a batch and a size other than the
        ones used to export).

    The file is written under a temporary name beside ``output`` and renamed to
    ``output`` only once the check passed: a failed export leaves whatever was
    at ``output`` as it was.

    Raises:
        ValueError: If ``output`` is the checkpoint itself or a folder.
        RuntimeError: If the difference exceeds :data:`TOLERANCE`.
    """
    if osp.isdir(output):
        raise ValueError(f'--output {output} is a folder; it names the file to write.')
    if osp.exists(output) and osp.samefile(output, model_path):
        raise ValueError(f'--output {output} is the checkpoint itself; write the export to another file.')
    net, network_g = network_from_checkpoint(model_path, opt_path)
    num_in_ch = network_g.get('num_in_ch', 3)
    with written_aside(output, suffix=osp.splitext(output)[1]) as tmp:
        if fmt == 'onnx':
            run = write_onnx(net, tmp, num_in_ch, opset)
        elif fmt == 'safetensors':
            run = write_safetensors(net, network_g, tmp)
        else:
            run = write_torchscript(net, tmp, num_in_ch)
        x = torch.rand(2, num_in_ch, 23, 31)
        with torch.no_grad():
            expected, got = net(x).numpy(), np.asarray(run(x))
        if got.shape != expected.shape:
            raise RuntimeError(
                f'{output}: output shape {got.shape} differs from PyTorch {expected.shape}; nothing was written.'
            )
        diff = float(abs(got - expected).max())
        if diff > TOLERANCE:
            raise RuntimeError(
                f'{output}: the export differs from PyTorch by {diff:.2e} (> {TOLERANCE}); nothing was written.'
            )
    return diff


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(
        description='Export a checkpoint to ONNX, TorchScript or safetensors (weight norm folded).'
    )
    parser.add_argument('--model_path', required=True, help='Checkpoint (params_ema is preferred over params).')
    parser.add_argument('--opt', default=None, help='Option file, for checkpoints without a network_g entry.')
    parser.add_argument('--format', required=True, choices=['onnx', 'torchscript', 'safetensors'])
    parser.add_argument('--output', required=True, help='Output file.')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset. Default: 17.')
    args = parser.parse_args(argv)
    try:
        diff = export(args.model_path, args.format, args.output, args.opt, args.opset)
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(f'wrote {args.output} ({args.format}); max difference from PyTorch on a 2x3x23x31 input: {diff:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
