"""Export a trained network to ONNX or TorchScript, weight norm folded, with dynamic batch, height and width.

Usage: python scripts/export.py --model_path CKPT [--opt YAML] --format onnx|torchscript --output FILE [--opset N]
(or the console script ``wdsr-export``). The exported model is run on a random input and compared with
PyTorch before success is reported.
"""
import argparse
import sys

import torch

from .utils.checkpoint import network_from_checkpoint

#: Largest difference from PyTorch accepted for the exported model, on outputs in [0, 1].
TOLERANCE = 1e-4


def export_torchscript(net, output):
    with torch.no_grad():
        scripted = torch.jit.trace(net, torch.rand(1, 3, 16, 16), check_trace=False)
    scripted.save(output)
    loaded = torch.jit.load(output)

    def run(x):
        with torch.no_grad():
            return loaded(x).numpy()

    return run


def export_onnx(net, output, opset):
    try:
        import onnxruntime
    except ImportError as error:
        raise RuntimeError('ONNX export needs onnx, onnxscript and onnxruntime: pip install "wdsr-basicsr[export]"') from error
    example = torch.rand(1, 3, 16, 16)
    torch.onnx.export(
        net, (example, ), output, input_names=['lq'], output_names=['sr'], opset_version=opset, dynamo=False,
        dynamic_axes={'lq': {0: 'batch', 2: 'height', 3: 'width'}, 'sr': {0: 'batch', 2: 'height', 3: 'width'}})
    session = onnxruntime.InferenceSession(output, providers=['CPUExecutionProvider'])
    return lambda x: session.run(None, {'lq': x.numpy()})[0]


def export(model_path, fmt, output, opt_path=None, opset=17):
    """Export the network of ``model_path`` and check it against PyTorch.

    Args:
        model_path (str): Checkpoint.
        fmt (str): 'onnx' or 'torchscript'.
        output (str): Output file.
        opt_path (str | None): Option file for checkpoints without ``network_g``.
        opset (int): ONNX opset. Default: 17.

    Returns:
        float: Largest absolute difference between the exported model and
        PyTorch on a random 2x3x23x31 input (a batch and a size other than the
        ones used to export).

    Raises:
        RuntimeError: If the difference exceeds :data:`TOLERANCE`.
    """
    net, _ = network_from_checkpoint(model_path, opt_path)
    run = export_onnx(net, output, opset) if fmt == 'onnx' else export_torchscript(net, output)
    x = torch.rand(2, 3, 23, 31)
    with torch.no_grad():
        expected = net(x).numpy()
    got = run(x)
    if got.shape != expected.shape:
        raise RuntimeError(f'{output}: output shape {got.shape} differs from PyTorch {expected.shape}.')
    diff = float(abs(got - expected).max())
    if diff > TOLERANCE:
        raise RuntimeError(f'{output}: differs from PyTorch by {diff:.2e} (> {TOLERANCE}).')
    return diff


def main(argv=None):
    parser = argparse.ArgumentParser(description='Export a checkpoint to ONNX or TorchScript (weight norm folded).')
    parser.add_argument('--model_path', required=True, help='Checkpoint (params_ema is preferred over params).')
    parser.add_argument('--opt', default=None, help='Option file, for checkpoints without a network_g entry.')
    parser.add_argument('--format', required=True, choices=['onnx', 'torchscript'])
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
