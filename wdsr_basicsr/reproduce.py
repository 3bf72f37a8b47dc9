"""Reproduce the paper's Table 1 sweep and normalisation ablation through the training entry.

Usage: python scripts/reproduce_table1.py [--mode table1 norm] [--data datasets/demo] [--iters N]
[--patch P] [--batch B] [--blocks 1 3 5 8] [--nets edsr wdsr_a wdsr_b] [--out docs/reproduce]

Each run is ``options/paper/<file>.yml`` with the budget given here (iterations, patch size, batch; the
learning-rate milestones scaled to the same fractions of the run) and the data pointed at ``--data``
(DIV2K LMDBs, or the demo set, built when missing). The full paper budget is the option files as they
are: ``--iters 300000 --patch 96 --data datasets/DIV2K``.

Writes ``table1.md`` (parameters: paper and counted; PSNR: the paper's on DIV2K, and this run's on its
validation set) and, for the ablation,
``norm.md`` and ``norm_curves.png`` (training loss and validation PSNR against iterations).
"""
import argparse
import os
import re
import subprocess
import sys
from os import path as osp

import yaml

from basicsr.archs import build_network

from .archs import count_parameters
from .prepare.demo import make_demo_data
from .options import load_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAPER_OPTIONS = osp.join(REPO, 'options', 'paper')
TRAIN = osp.join(REPO, 'wdsr_basicsr', 'train.py')
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


def budget_options(stem, args, val_points):
    """The paper option file ``stem`` with the reduced budget and data of ``args``."""
    opt = load_options(osp.join(PAPER_OPTIONS, f'{stem}.yml'))
    total = opt['train']['total_iter']
    opt['name'] = f'repro_{stem}'
    opt['num_gpu'] = 'auto'
    opt['train']['total_iter'] = args.iters
    opt['train']['scheduler']['milestones'] = [max(1, round(m * args.iters / total))
                                               for m in opt['train']['scheduler']['milestones']]
    opt['val']['val_freq'] = max(1, args.iters // val_points)
    opt['logger'].update(print_freq=max(1, args.iters // 50), save_checkpoint_freq=args.iters, use_tb_logger=False)
    for phase, ds in opt['datasets'].items():
        split = ('train', '_sub') if phase == 'train' else ('valid', '')
        ds['dataroot_gt'] = osp.join(args.data, f'DIV2K_{split[0]}_HR{split[1]}.lmdb')
        ds['dataroot_lq'] = osp.join(args.data, f'DIV2K_{split[0]}_LR_bicubic_X2{split[1]}.lmdb')
        if phase == 'train':
            ds.update(gt_size=args.patch, batch_size_per_gpu=args.batch, num_worker_per_gpu=args.workers,
                      dataset_enlarge_ratio=10)
    return opt


def train(opt, work):
    """Run the training entry on ``opt``; return the text of its log."""
    os.makedirs(work, exist_ok=True)
    opt_file = osp.join(work, f"{opt['name']}.yml")
    with open(opt_file, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    subprocess.run([sys.executable, TRAIN, '-opt', opt_file], check=True, stdout=subprocess.DEVNULL)
    exp = osp.join('experiments', opt['name'])
    logs = sorted(n for n in os.listdir(exp) if n.startswith(f"train_{opt['name']}_") and n.endswith('.log'))
    with open(osp.join(exp, logs[-1])) as f:
        return f.read()


def parse_log(text, val_freq):
    """Training loss per logged iteration and validation (iteration, PSNR, PSNR-Y) from a basicsr log."""
    losses = [(int(i), float(v)) for i, v in re.findall(r'iter:\s*([\d,]+).*?l_pix: ([-\d.e+]+)', text.replace(',', ''))]
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', text)]
    psnr_y = [float(v) for v in re.findall(r'# psnr_y: ([\d.]+)', text)]
    total = losses[-1][0] if losses else val_freq * len(psnr)
    # basicsr validates every val_freq iterations, then once more after the last one (same weights)
    vals = [(min((i + 1) * val_freq, total), p, py) for i, (p, py) in enumerate(zip(psnr, psnr_y))]
    return losses, vals


def run_table1(args):
    rows = ['| network | blocks | params (paper) | params (counted, effective) | PSNR paper (DIV2K val, RGB) '
            '| PSNR here (RGB) | PSNR here (Y) |', '|---|---:|---:|---:|---:|---:|---:|']
    for net in args.nets:
        for blocks in args.blocks:
            stem = f'table1_{net}_b{blocks}_x2'
            opt = budget_options(stem, args, val_points=1)
            params = count_parameters(build_network(dict(opt['network_g'])), 'effective')
            _, vals = parse_log(train(opt, args.work), opt['val']['val_freq'])
            rows.append(f'| {net} | {blocks} | {PAPER_PARAMS[net][blocks]:.2f} M | {params / 1e6:.3f} M | '
                        f'{PAPER_PSNR[net][blocks]:.3f} | {vals[-1][1]:.2f} | {vals[-1][2]:.2f} |')
            print(rows[-1], flush=True)
    return rows


def run_norm(args):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (loss_ax, psnr_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = ['| run | final loss | final PSNR (RGB) | best PSNR (RGB) |', '|---|---:|---:|---:|']
    for stem in NORM_RUNS:
        opt = budget_options(stem, args, val_points=10)
        losses, vals = parse_log(train(opt, args.work), opt['val']['val_freq'])
        label = stem.replace('norm_', '').replace('_x2', '')
        loss_ax.plot([i for i, _ in losses], [v for _, v in losses], label=label)
        psnr_ax.plot([i for i, _, _ in vals], [p for _, p, _ in vals], marker='o', label=label)
        rows.append(f'| {label} | {losses[-1][1]:.4f} | {vals[-1][1]:.2f} | {max(p for _, p, _ in vals):.2f} |')
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
    parser.add_argument('--data', default=DEMO_DATA, help=f'Folder of the DIV2K x2 LMDBs. Default: {DEMO_DATA} '
                        '(built when missing).')
    parser.add_argument('--iters', type=int, default=1000, help='Iterations per run. Default: 1000.')
    parser.add_argument('--patch', type=int, default=64, help='HR patch size. Default: 64.')
    parser.add_argument('--batch', type=int, default=16, help='Batch size. Default: 16.')
    parser.add_argument('--workers', type=int, default=1, help='Loader workers per run. Default: 1.')
    parser.add_argument('--blocks', type=int, nargs='+', default=[1, 3, 5, 8], choices=[1, 3, 5, 8])
    parser.add_argument('--nets', nargs='+', default=['edsr', 'wdsr_a', 'wdsr_b'], choices=['edsr', 'wdsr_a',
                                                                                           'wdsr_b'])
    parser.add_argument('--out', default='docs/reproduce', help='Folder for the tables and plot.')
    parser.add_argument('--work', default='experiments/repro_options', help='Folder for the derived option files.')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.data == DEMO_DATA:
        make_demo_data(DEMO_DATA, scales=(2, ))
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
