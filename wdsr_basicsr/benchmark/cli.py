"""``wdsr-benchmark`` (``scripts/benchmark.py``): rows of :mod:`.measure`, tables of :mod:`.tables`."""

import argparse
import os
import sys
from os import path as osp

import torch

from ..backends import BACKENDS
from ..compat import entry_install
from ..utils.messages import show_messages
from ..utils.records import write_json
from .measure import DTYPES, benchmark_row
from .tables import markdown, plot


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters, MACs, speed and PSNR/SSIM of networks from option files.')
    parser.add_argument('--opt', nargs='+', required=True, help='Option files (their network_g and val sets).')
    parser.add_argument(
        '--weights',
        nargs='+',
        default=None,
        help='Checkpoints, one per option file: PSNR/SSIM on its validation/test sets.',
    )
    parser.add_argument('--self-ensemble', action='store_true', help='Score with the x8 self-ensemble.')
    parser.add_argument(
        '--lr-size',
        nargs=2,
        type=int,
        default=[256, 256],
        metavar=('H', 'W'),
        help='LR input size for MACs and timing. Default: 256 256.',
    )
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32', help='Autocast dtype. Default: fp32.')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile the networks before timing.')
    parser.add_argument(
        '--backends',
        nargs='+',
        choices=BACKENDS,
        default=['torch'],
        help='Runtimes to time on the same folded network (CPU, fp32): torch, onnxruntime, openvino '
        '(optional extras). Default: torch.',
    )
    parser.add_argument('--rounds', type=int, default=10, help='Timed rounds (medians are reported). Default: 10.')
    parser.add_argument('--json', default=None, help='Write the rows as a JSON list.')
    parser.add_argument('--markdown', default=None, help='Write the tables as markdown.')
    parser.add_argument('--plot', default=None, help='PNG of PSNR against parameters and GMACs (needs --weights).')
    args = parser.parse_args(argv)
    if args.weights is not None and len(args.weights) != len(args.opt):
        parser.error(f'--weights gives {len(args.weights)} checkpoints for {len(args.opt)} option files.')
    if args.rounds < 1:
        parser.error(f'--rounds {args.rounds}: at least 1 timed round is needed.')
    if set(args.backends) - {'torch'} and (args.device != 'cpu' or args.dtype != 'fp32' or args.compile):
        parser.error(
            '--backends onnxruntime/openvino are compared on the CPU in fp32 without --compile: add '
            '--device cpu (and no --dtype, --compile).'
        )
    return args


def main(argv=None):
    show_messages(information_to_stderr=True)  # stdout is the table
    entry_install()  # it runs basicsr's models and loaders in this process
    args = parse_args(argv)
    torch.backends.cudnn.benchmark = True
    h, w = args.lr_size
    rows = []
    try:
        for i, opt_path in enumerate(args.opt):
            weights = args.weights[i] if args.weights else None
            rows.append(
                benchmark_row(
                    opt_path,
                    weights=weights,
                    lr_size=(h, w),
                    device=args.device,
                    dtype=args.dtype,
                    channels_last=args.channels_last,
                    compile_net=args.compile,
                    self_ensemble=args.self_ensemble,
                    root=os.getcwd(),
                    backends=args.backends,
                    rounds=args.rounds,
                )
            )
            print(f'{rows[-1]["name"]}: {rows[-1]["latency_ms"]:.1f} ms', file=sys.stderr)
        table = markdown(rows)
        if args.plot:
            plot(rows, args.plot)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(table)
    if args.json:
        write_json(args.json, rows, indent=2)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
