"""Where PyTorch's CPU time goes in WDSR, and how one of its convolutions compares across runtimes.

Usage: python scripts/profile_cpu.py [--opt options/train_wdsr_a_x2.yml] [--lr-size 256 256] [--rounds 7]

Prints (markdown) the operators of one forward of the option file's network (weight norm folded, eval, no
autograd) by self CPU time (torch.profiler), then one 3x3 convolution of that network's block widths, timed in
PyTorch (oneDNN), ONNX Runtime (MLAS) and OpenVINO in interleaved rounds, with its GFLOP/s.
"""

import argparse
import sys
from os import path as osp

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from basicsr.archs import build_network  # noqa: E402

import wdsr_basicsr  # noqa: E402,F401  (compat first)
from wdsr_basicsr.archs import fold_weight_norm  # noqa: E402
from wdsr_basicsr.backends import BACKENDS, installed, make_runner  # noqa: E402
from wdsr_basicsr.options import load_options  # noqa: E402
from wdsr_basicsr.utils.timing import interleaved_median_ms  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--opt', default='options/train_wdsr_a_x2.yml')
    parser.add_argument('--lr-size', nargs=2, type=int, default=[256, 256])
    parser.add_argument('--rounds', type=int, default=7)
    args = parser.parse_args(argv)
    h, w = args.lr_size
    network_g = dict(load_options(args.opt)['network_g'])
    net = fold_weight_norm(build_network(dict(network_g))).eval()
    x = torch.rand(1, 3, h, w)
    with torch.no_grad():
        net(x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            net(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f'{args.opt} ({network_g["type"]}), LR {h}x{w}, one forward: {total / 1000:.0f} ms self CPU time\n')
    print('| operator | calls | self CPU ms | share |\n|---|---:|---:|---:|')
    for e in events[:6]:
        print(f'| {e.key} | {e.count} | {e.self_cpu_time_total / 1000:.1f} | {e.self_cpu_time_total / total:.0%} |')
    feat = network_g.get('num_feat', 32)
    wide = int(feat * network_g.get('expansion', 4))
    conv = torch.nn.Conv2d(feat, wide, 3, padding=1).eval()
    xc = torch.rand(1, feat, h, w)
    names = [b for b in BACKENDS if installed(b)]
    runners = [make_runner(conv, b, feat) for b in names]
    # PyTorch as the network runs it: channels-last inside
    layout = xc.contiguous(memory_format=torch.channels_last)
    conv_cl = conv.to(memory_format=torch.channels_last)
    calls = [(lambda t: conv_cl(t), layout)] + [(run, xc) for run in runners[1:]]
    times = interleaved_median_ms(calls, 'cpu', runs=args.rounds)
    gflop = 2 * feat * wide * 9 * h * w / 1e9
    print(
        f'\nOne 3x3 conv {feat}->{wide} on {h}x{w} ({gflop:.2f} GFLOP), medians of {args.rounds} interleaved rounds:\n'
    )
    print('| runtime | ms | GFLOP/s |\n|---|---:|---:|')
    for name, ms in zip(names, times):
        print(f'| {name} | {ms:.1f} | {gflop / (ms / 1000):.0f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
