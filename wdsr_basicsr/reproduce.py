"""Reproduce the paper's Table 1 sweep and normalisation ablation through the training entry.

Usage: wdsr-reproduce (or python scripts/reproduce_table1.py) [--mode table1 norm] [--options options/paper]
[--data datasets/demo] [--iters N] [--patch P] [--batch B] [--blocks 1 3 5 8] [--nets edsr wdsr_a wdsr_b]
[--out docs/reproduce] [--work experiments/repro_options]

Each run is ``<--options>/<file>.yml`` (the repository's ``options/paper``) with the budget given here
(iterations, patch size, batch; the learning-rate milestones scaled to the same fractions of the run,
:func:`wdsr_basicsr.runs.shrink_options`) and the data pointed at ``--data`` (DIV2K LMDBs, or the demo set,
built when missing), trained by the training entry in the current directory. The full paper budget is the
option files as they are: ``--iters 300000 --patch 96 --data datasets/DIV2K``. PSNR comes from each run's
``validation.jsonl``; the training-loss curve of the ablation from its log (basicsr logs losses only there).

Writes ``table1.md`` (parameters: paper and counted; PSNR: the paper's on DIV2K, and this run's on its
validation set) and, for the ablation,
``norm.md`` and ``norm_curves.png`` (training loss and validation PSNR against iterations).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from os import path as osp

from .archs import count_parameters
from .loading import build_described
from .options import load_options
from .prepare.demo import make_demo_data
from .runs import read_log, read_validations, run_entry, shrink_options, write_options
from .utils.messages import show_messages

DEMO_DATA = 'datasets/demo'

#: Parameters (millions) printed in the paper's Table 1 (x2).
PAPER_PARAMS = {
    'edsr': {1: 0.26, 3: 0.41, 5: 0.56, 8: 0.78},
    'wdsr_a': {1: 0.08, 3: 0.23, 5: 0.37, 8: 0.60},
    'wdsr_b': {1: 0.08, 3: 0.23, 5: 0.37, 8: 0.60},
}
#: PSNR (dB, RGB, DIV2K validation images 801-900, x2, no self-ensemble) of Table 1, as the authors'
#: repository (github.com/JiahuiYu/wdsr_ntire2018, README) lists it.
PAPER_PSNR = {
    'edsr': {1: 33.210, 3: 34.043, 5: 34.284, 8: 34.457},
    'wdsr_a': {1: 33.323, 3: 34.163, 5: 34.388, 8: 34.541},
    'wdsr_b': {1: 33.434, 3: 34.205, 5: 34.409, 8: 34.536},
}
#: Raw parameter counts (weight norm's g and v, and biases) the authors' READMEs print for the networks of
#: options/authors/ (JiahuiYu/wdsr_ntire2018 "WDSR Baseline"; ychfan/wdsr small and large models).
PUBLISHED_RAW_PARAMS = {
    'train_ntire2018_wdsr_baseline_x2': 1190100,
    'train_reloaded_wdsr_x2': 1190100,
    'train_reloaded_wdsr_x3': 1195605,
    'train_reloaded_wdsr_x4': 1203312,
    'train_reloaded_wdsr_large_x2': 37808180,
    'train_reloaded_wdsr_large_x3': 37826645,
    'train_reloaded_wdsr_large_x4': 37852496,
}
NORM_RUNS = ('norm_weight_lr1e-3_x2', 'norm_batch_lr1e-3_x2', 'norm_none_lr1e-3_x2', 'norm_batch_lr1e-4_x2')


def budget_options(stem: str, args: argparse.Namespace, val_points: int):
    """The paper option file ``stem`` with the reduced budget and data of ``args``."""
    opt = shrink_options(
        load_options(osp.join(args.options, f'{stem}.yml')),
        data=args.data,
        name=f'repro_{stem}',
        iters=args.iters,
        gt_size=args.patch,
        batch=args.batch,
        workers=args.workers,
        enlarge=10,
        validations=val_points,
    )
    opt['num_gpu'] = 'auto'
    opt['logger']['use_tb_logger'] = False
    return opt


def train(opt: dict, work: str):
    """Train ``opt`` with the training entry in the current directory; return its experiment folder."""
    result = run_entry('train', write_options(opt, work), cwd=os.getcwd())
    if result.returncode:
        raise RuntimeError(f'training {opt["name"]} failed:\n{result.stderr[-3000:]}')
    return osp.join('experiments', opt['name'])


def losses(experiment: str, name: str):
    """The training loss (``l_pix``) per logged iteration of run ``name``."""
    text = read_log(experiment, name).replace(',', '')
    return [(int(i), float(v)) for i, v in re.findall(r'iter:\s*(\d+).*?l_pix: ([-\d.e+]+)', text)]


def psnr_points(experiment: str):
    """(iteration, PSNR, PSNR-Y) of each validation of a run."""
    return [(v['iter'], v['mean']['psnr'], v['mean']['psnr_y']) for v in read_validations(experiment)]


def run_table1(args: argparse.Namespace):
    rows = [
        '| network | blocks | params (paper) | params (counted, effective) | PSNR paper (DIV2K val, RGB) '
        '| PSNR here (RGB) | PSNR here (Y) |',
        '|---|---:|---:|---:|---:|---:|---:|',
    ]
    for net in args.nets:
        for blocks in args.blocks:
            stem = f'table1_{net}_b{blocks}_x2'
            opt = budget_options(stem, args, val_points=1)
            params = count_parameters(build_described(opt['network_g']), 'effective')
            vals = psnr_points(train(opt, args.work))
            rows.append(
                f'| {net} | {blocks} | {PAPER_PARAMS[net][blocks]:.2f} M | {params / 1e6:.3f} M | '
                f'{PAPER_PSNR[net][blocks]:.3f} | {vals[-1][1]:.2f} | {vals[-1][2]:.2f} |'
            )
            print(rows[-1], flush=True)
    return rows


def run_norm(args: argparse.Namespace):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (loss_ax, psnr_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = ['| run | final loss | final PSNR (RGB) | best PSNR (RGB) |', '|---|---:|---:|---:|']
    for stem in NORM_RUNS:
        opt = budget_options(stem, args, val_points=10)
        experiment = train(opt, args.work)
        curve, vals = losses(experiment, opt['name']), psnr_points(experiment)
        label = stem.replace('norm_', '').replace('_x2', '')
        loss_ax.plot([i for i, _ in curve], [v for _, v in curve], label=label)
        psnr_ax.plot([i for i, _, _ in vals], [p for _, p, _ in vals], marker='o', label=label)
        rows.append(f'| {label} | {curve[-1][1]:.4f} | {vals[-1][1]:.2f} | {max(p for _, p, _ in vals):.2f} |')
        print(rows[-1], flush=True)
    loss_ax.set(xlabel='iteration', ylabel='L1 loss', yscale='log', title='training loss')
    psnr_ax.set(xlabel='iteration', ylabel='PSNR (dB)', title='validation PSNR')
    for ax in (loss_ax, psnr_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(osp.join(args.out, 'norm_curves.png'), dpi=110)
    plt.close(fig)
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train and evaluate the paper's Table 1 sweep and norm ablation.")
    parser.add_argument('--mode', nargs='+', choices=['table1', 'norm'], default=['table1', 'norm'])
    parser.add_argument(
        '--options',
        default='options/paper',
        help='Folder of the paper option files. Default: options/paper (run from the repository).',
    )
    parser.add_argument(
        '--data', default=DEMO_DATA, help=f'Folder of the DIV2K x2 LMDBs. Default: {DEMO_DATA} (built when missing).'
    )
    parser.add_argument('--iters', type=int, default=1000, help='Iterations per run. Default: 1000.')
    parser.add_argument('--patch', type=int, default=64, help='HR patch size. Default: 64.')
    parser.add_argument('--batch', type=int, default=16, help='Batch size. Default: 16.')
    parser.add_argument('--workers', type=int, default=1, help='Loader workers per run. Default: 1.')
    parser.add_argument('--blocks', type=int, nargs='+', default=[1, 3, 5, 8], choices=[1, 3, 5, 8])
    parser.add_argument('--nets', nargs='+', default=['edsr', 'wdsr_a', 'wdsr_b'], choices=['edsr', 'wdsr_a', 'wdsr_b'])
    parser.add_argument('--out', default='docs/reproduce', help='Folder for the tables and plot.')
    parser.add_argument('--work', default='experiments/repro_options', help='Folder for the derived option files.')
    args = parser.parse_args(argv)
    if not osp.isdir(args.options):
        parser.error(
            f'--options {args.options} is not a folder: run from the repository (its options/paper) or '
            'pass the folder of the paper option files.'
        )
    return args


def main(argv=None):
    show_messages()
    args = parse_args(argv)
    if args.data == DEMO_DATA:
        make_demo_data(DEMO_DATA, scales=(2,))
    os.makedirs(args.out, exist_ok=True)
    budget = f'{args.iters} iterations, {args.patch} px patches, batch {args.batch}, data {args.data}'
    if 'table1' in args.mode:
        rows = run_table1(args)
        with open(osp.join(args.out, 'table1.md'), 'w') as f:
            f.write(f'Table 1 sweep (x2) at {budget}.\n\n' + '\n'.join(rows) + '\n')
    if 'norm' in args.mode:
        rows = run_norm(args)
        with open(osp.join(args.out, 'norm.md'), 'w') as f:
            f.write(f'Normalisation ablation (WDSR-A, x2) at {budget}.\n\n' + '\n'.join(rows) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
