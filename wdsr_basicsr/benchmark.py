"""Benchmark networks from their option files: parameters, MACs, latency, and PSNR/SSIM with weights.

Usage: python scripts/benchmark.py --opt FILE [FILE ...] [--weights CKPT ...] [--lr-size H W]
[--device cpu|cuda] [--dtype fp32|bf16|fp16] [--channels-last] [--compile] [--json OUT] [--markdown OUT]
[--plot OUT.png]

One row per option file. Latency is the median of timed forwards after warm-up (synchronised on GPU),
of the network with weight norm folded (``latency_ms``) and as trained (``latency_unfolded_ms``). A plain
3x3 64->64 convolution at the same size is timed in the same alternating rounds, as the machine's
reference GFLOP/s.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time
from os import path as osp

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from .archs import count_parameters, fold_weight_norm
from .options import load_options
from .utils.checkpoint import network_from_checkpoint
from .utils.inference import sr_forward

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def count_macs(net, x):
    """Multiply-accumulates of one forward of ``net`` on an input shaped like ``x``.

    PyTorch's FLOP counter counts the convolutions and matrix products of the
    network's layers run one after the other, on the meta device (shapes only,
    nothing computed). Device-specific fast paths compute the same function
    and are not what is counted: the zero channels WDSR-B pads its CPU matrix
    products with are not work of the network.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        copy.deepcopy(net).to('meta')(torch.empty(x.shape, device='meta'))
    return counter.get_total_flops() // 2


def interleaved_median_ms(calls, device, warmup=3, runs=10):
    """Median milliseconds of each ``forward(x)`` in ``calls``, timed in alternating rounds.

    Each round times every call once, so a change of machine load during the
    run slows all of them alike and their ratios stay meaningful.

    Args:
        calls (list[tuple[callable, Tensor]]): ``(forward, x)`` pairs.
        device (str): ``'cpu'`` or ``'cuda'`` (synchronised around each call).
        warmup (int): Untimed calls of each forward first. Default: 3.
        runs (int): Timed rounds. Default: 10.

    Returns:
        list[float]: One median per call, in order.
    """
    times = [[] for _ in calls]
    with torch.no_grad():
        for forward, x in calls:
            for _ in range(warmup):
                forward(x)
        for _ in range(runs):
            for (forward, x), spent in zip(calls, times):
                if device == 'cuda':
                    torch.cuda.synchronize()
                start = time.perf_counter()
                forward(x)
                if device == 'cuda':
                    torch.cuda.synchronize()
                spent.append((time.perf_counter() - start) * 1000)
    return [statistics.median(spent) for spent in times]


def prepare_for_timing(net, device, dtype, channels_last, compile_net):
    """The forward to time: ``net`` on ``device`` in eval mode, in the layout, autocast and compile asked."""
    net = net.to(device).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = torch.compile(net) if compile_net else net
    amp = DTYPES[dtype]

    def run(x):
        if amp is None:
            return forward(x)
        with torch.autocast(device, dtype=amp):
            return forward(x)

    return run


def reference_conv(h, w, device, dtype, channels_last):
    """A plain 3x3 64->64 conv and its h x w input, timed beside each network as the machine's yardstick.

    Returns:
        tuple[callable, Tensor, int]: The forward, its input and its MACs.
    """
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.rand(1, 64, h, w, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return prepare_for_timing(conv, device, dtype, channels_last, False), x, 64 * 64 * 9 * h * w


def load_network_options(path):
    """The options of ``path`` (read safely), which must have a ``network_g`` section."""
    opt = load_options(path)
    if 'network_g' not in opt:
        raise ValueError(f'--opt {path} has no network_g section.')
    return opt


def evaluate(net, opt, device, ensemble):
    """PSNR/SSIM (RGB and Y, border = scale, basicsr's metrics) on each validation/test set of ``opt``."""
    scale = opt['scale']
    results = {}
    for phase, ds_opt in opt.get('datasets', {}).items():
        if phase == 'train':
            continue
        dataset = build_dataset(dict(ds_opt, phase=phase.split('_')[0], scale=scale))
        metrics = {'psnr': [], 'ssim': [], 'psnr_y': [], 'ssim_y': []}
        for i in range(len(dataset)):
            item = dataset[i]
            out = sr_forward(net, item['lq'][None].to(device), scale, ensemble=ensemble)
            sr, gt = tensor2img([out.cpu()]), tensor2img([item['gt'][None]])
            for y in (False, True):
                suffix = '_y' if y else ''
                metrics[f'psnr{suffix}'].append(calculate_psnr(sr, gt, scale, test_y_channel=y))
                metrics[f'ssim{suffix}'].append(calculate_ssim(sr, gt, scale, test_y_channel=y))
        results[ds_opt['name']] = {k: float(np.mean(v)) for k, v in metrics.items()}
    return results


def benchmark_row(opt_path, weights, lr_size, device, dtype, channels_last, compile_net):
    """One row of the table for an option file (and its checkpoint, if any).

    The folded and unfolded networks are timed in the same rounds as the
    reference conv (see :func:`reference_conv`); ``gflops_vs_conv`` is the
    ratio of their GFLOP/s.
    """
    opt = load_network_options(opt_path)
    if weights:
        net, _ = network_from_checkpoint(weights, opt_path, fold=False)
    else:
        net = build_network(copy.deepcopy(dict(opt['network_g']))).eval()
    folded = fold_weight_norm(copy.deepcopy(net))
    h, w = lr_size
    x = torch.rand(1, opt['network_g'].get('num_in_ch', 3), h, w)
    macs = count_macs(folded, x)
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reference, reference_x, reference_macs = reference_conv(h, w, device, dtype, channels_last)
    reference_ms, latency, unfolded = interleaved_median_ms(
        [(reference, reference_x), (prepare_for_timing(folded, device, dtype, channels_last, compile_net), x),
         (prepare_for_timing(net, device, dtype, channels_last, compile_net), x)], device)
    scale = opt['scale']
    gflops = 2 * macs / (latency / 1000) / 1e9
    reference_gflops = 2 * reference_macs / (reference_ms / 1000) / 1e9
    row = {
        'name': osp.splitext(osp.basename(opt_path))[0],
        'arch': opt['network_g']['type'],
        'scale': scale,
        'params_effective': count_parameters(net, 'effective'),
        'params_raw': count_parameters(net, 'raw'),
        'gmacs': macs / 1e9,
        'latency_ms': latency,
        'latency_unfolded_ms': unfolded,
        'mpix_per_s': h * scale * w * scale / 1e6 / (latency / 1000),
        'gflops': gflops,
        'reference_gflops': reference_gflops,
        'gflops_vs_conv': gflops / reference_gflops,
        'lr_size': [h, w],
        'device': device,
        'dtype': dtype,
        'channels_last': channels_last,
        'compile': compile_net,
    }
    if weights:
        folded = folded.to(device)
        row['weights'] = weights
        row['metrics'] = evaluate(folded, opt, device, ensemble=False)
        row['metrics_ensemble'] = evaluate(folded, opt, device, ensemble=True)
    return row


def markdown(rows):
    """The table a user pastes into a paper."""
    lines = ['| name | arch | scale | params (effective) | params (raw) | GMACs | latency ms (folded / unfolded) '
             '| ms per GMAC | Mpix/s | GFLOP/s (vs 3x3 conv) |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['arch']} | x{r['scale']} | {r['params_effective'] / 1e6:.3f} M | "
                     f"{r['params_raw'] / 1e6:.3f} M | {r['gmacs']:.2f} | {r['latency_ms']:.1f} / "
                     f"{r['latency_unfolded_ms']:.1f} | {r['latency_ms'] / r['gmacs']:.2f} | {r['mpix_per_s']:.2f} | "
                     f"{r['gflops']:.1f} ({r['gflops_vs_conv'] * 100:.0f}%) |")
    first = rows[0]
    references = [r['reference_gflops'] for r in rows]
    lines.append('')
    lines.append(f"LR input {first['lr_size'][0]}x{first['lr_size'][1]}, {first['device']}, {first['dtype']}, "
                 f"channels-last {first['channels_last']}, compile {first['compile']}. The plain 3x3 64->64 conv, "
                 f'timed in the same rounds as each row, reached {min(references):.1f}-{max(references):.1f} '
                 f'GFLOP/s (median {statistics.median(references):.1f}); each row is compared with its own rounds. '
                 'Effective parameters: weight norm folded (as the paper counts); raw: trainable tensors.')
    scored = [r for r in rows if 'metrics' in r]
    if scored:
        lines += ['', '| name | set | PSNR | SSIM | PSNR-Y | SSIM-Y | PSNR-Y (x8 ensemble) |',
                  '|---|---|---:|---:|---:|---:|---:|']
        for r in scored:
            for name, m in r['metrics'].items():
                e = r['metrics_ensemble'][name]
                lines.append(f"| {r['name']} | {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['psnr_y']:.2f} | "
                             f"{m['ssim_y']:.4f} | {e['psnr_y']:.2f} |")
    return '\n'.join(lines) + '\n'


def plot(rows, out):
    """PSNR-Y against parameters and against GMACs, one point per row (first validation set)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    scored = [r for r in rows if 'metrics' in r]
    if not scored:
        raise ValueError('--plot needs --weights: there is no PSNR to plot.')
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], 'params_effective', 'parameters (M, effective)'), (axes[1], 'gmacs',
                                                                                          'GMACs per forward')):
        for r in scored:
            value = r[key] / 1e6 if key == 'params_effective' else r[key]
            psnr = next(iter(r['metrics'].values()))['psnr_y']
            ax.scatter(value, psnr)
            ax.annotate(r['name'], (value, psnr), fontsize=7, xytext=(3, 3), textcoords='offset points')
        ax.set_xlabel(label)
        ax.set_ylabel('PSNR-Y (dB)')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters, MACs, speed and PSNR/SSIM of networks from option files.')
    parser.add_argument('--opt', nargs='+', required=True, help='Option files (their network_g and val sets).')
    parser.add_argument('--weights', nargs='+', default=None, help='Checkpoints, one per option file, for PSNR/SSIM.')
    parser.add_argument('--lr-size', nargs=2, type=int, default=[256, 256], metavar=('H', 'W'),
                        help='LR input size for MACs and timing. Default: 256 256.')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32', help='Autocast dtype. Default: fp32.')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile the networks before timing.')
    parser.add_argument('--json', default=None, help='Write the rows as a JSON list.')
    parser.add_argument('--markdown', default=None, help='Write the tables as markdown.')
    parser.add_argument('--plot', default=None, help='PNG of PSNR against parameters and GMACs (needs --weights).')
    args = parser.parse_args(argv)
    if args.weights is not None and len(args.weights) != len(args.opt):
        parser.error(f'--weights gives {len(args.weights)} checkpoints for {len(args.opt)} option files.')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.backends.cudnn.benchmark = True
    h, w = args.lr_size
    rows = []
    try:
        for i, opt_path in enumerate(args.opt):
            weights = args.weights[i] if args.weights else None
            rows.append(benchmark_row(opt_path, weights, (h, w), args.device, args.dtype, args.channels_last,
                                      args.compile))
            print(f"{rows[-1]['name']}: {rows[-1]['latency_ms']:.1f} ms", file=sys.stderr)
        table = markdown(rows)
        if args.plot:
            plot(rows, args.plot)
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(table)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write(table)
    return 0
