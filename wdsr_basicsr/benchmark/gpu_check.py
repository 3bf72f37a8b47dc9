"""GPU check: distributed training paths, mixed precision, resume and speed, in under 10 minutes on one GPU.

Runs, each through ``torchrun --standalone --nproc_per_node 1 wdsr_basicsr/train.py --launcher pytorch``
(NCCL on a GPU, world size 1) from the shipped option files with only the data paths, sizes and lengths
changed, on the demo LMDBs (built if missing):

1. ``train_wdsr_b_x2.yml`` in fp32;
2. the same with ``use_amp`` (bf16) and ``use_channels_last``;
3. ``paper/norm_batch_lr1e-4_x2.yml`` (BatchNorm, converted to SyncBatchNorm under DDP on a GPU);
4. fp16 (``amp_bf16: false``, GradScaler) for half the iterations, then ``--auto_resume`` to the end.

Each must end, validate at least twice and save; each part logs a line when it ends. Then it times (a) training
iterations/s of WDSR-B 16x32, WDSR-A 16x32 and EDSR 16x64 (batch 16, 96 px HR, x2) in fp32 and bf16 + channels-last,
eager and with ``use_compile`` (CUDA graphs), (b) the training loader from the LMDB and from ``cache_data``, and (c)
inference of the paper's Table 1 WDSR-B (8 blocks, 64 features) x2 on a 1020x678 LR image, weight norm folded, bf16,
channels-last, eager and ``torch.compile``. A markdown report goes to ``--out``.

``--device cpu`` runs the same steps with tiny sizes (gloo instead of NCCL, no fp16, no compiled inference): the test
suite runs it so that this script cannot rot.

Usage: python scripts/check_gpu.py [--device cuda|cpu] [--iters 300] [--data datasets/demo]
       [--options options] [--work /tmp/wdsr_check_gpu] [--out docs/gpu_check.md]

The option files are shrunk by :func:`wdsr_basicsr.runs.shrink_options` and run by
:func:`wdsr_basicsr.runs.run_entry`; each run's PSNR comes from its ``validation.jsonl``, its timing,
backend and resume from its log.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import logging
import os
import re
import sys
import time
from os import path as osp
from typing import Any

import torch

from ..archs import fold_weight_norm
from ..compat import entry_install
from ..loading import build_described
from ..options import load_options
from ..prepare.demo import make_demo_data
from ..runs import read_log, read_validations, run_entry, shrink_options, write_options
from ..utils.messages import show_messages
from ..utils.timing import interleaved_median_ms
from .measure import prepare_for_timing
from .training import LOADERS, NETS, loader_seconds_per_batch, step_timings

logger = logging.getLogger(__name__)

# What the CPU mode shrinks (sizes only; the GPU mode keeps the shipped networks and patches).
CPU_NET = {'num_feat': 8, 'num_block': 1}
SIZES: dict[str, dict[str, Any]] = {
    'cuda': {'gt_size': 96, 'batch': 16, 'lr_size': (678, 1020), 'workers': 4},
    'cpu': {'gt_size': 24, 'batch': 2, 'lr_size': (24, 36), 'workers': 0},
}


def shrink(
    options: str, opt_file: str, name: str, data: str, device: str, iters: int, *, top: dict | None = None
) -> dict:
    """A shipped option file with only paths, sizes, lengths (and the precision keys ``top``) changed."""
    sizes = SIZES[device]
    opt = shrink_options(
        load_options(osp.join(options, opt_file)),
        data=data,
        name=name,
        iters=iters,
        gt_size=sizes['gt_size'],
        batch=sizes['batch'],
        workers=sizes['workers'],
        network=CPU_NET if device == 'cpu' else None,
        enlarge=10,
        validations=2,
        checkpoints=2,
    )
    opt.update(num_gpu='auto' if device == 'cuda' else 0)
    opt['logger']['use_tb_logger'] = False
    opt.update(top or {})
    return opt


def torchrun(opt: dict, work: str, *extra, validations: int = 2) -> dict:
    """Train ``opt`` through torchrun (one process); return the run's record for the report.

    It passed when it ended at its last iteration (its checkpoint ``net_g_<total_iter>.pth`` saved), and validated
    ``validations`` times at least (one row per iteration in ``validation.jsonl``, the earlier half's included
    after a resume).
    """
    start = time.perf_counter()
    result = run_entry('train', write_options(opt, work), cwd=work, nproc=1, extra=extra)
    wall = time.perf_counter() - start
    experiment = osp.join(work, 'experiments', opt['name'])
    log = read_log(experiment, opt['name'])
    psnr = [v['mean']['psnr'] for v in read_validations(experiment)]
    iter_times = re.findall(r'time \(data\): ([0-9.]+)', log)
    record = {
        'name': opt['name'],
        'network': f'{opt["network_g"]["type"]} {opt["network_g"]["num_block"]}x'
        f'{opt["network_g"]["num_feat"]} norm={opt["network_g"].get("norm", "-")}',
        'precision': ('bf16' if opt.get('amp_bf16') else 'fp16') if opt.get('use_amp') else 'fp32',
        'channels_last': bool(opt.get('use_channels_last')),
        'iters': opt['train']['total_iter'],
        'wall_s': wall,
        's_per_iter': float(iter_times[-1]) if iter_times else None,
        'validations': len(psnr),
        'psnr': float(psnr[-1]) if psnr else None,
        'backend': (re.findall(r'torch.distributed: backend (\w+)', log) or ['?'])[0],
        'resumed': 'resumed at iteration' in log,
        'syncbn': 'SyncBatchNorm' in log,
        'ok': result.returncode == 0
        and 'End of training' in log
        and osp.isfile(osp.join(experiment, 'models', f'net_g_{opt["train"]["total_iter"]}.pth'))
        and len(psnr) >= validations,
    }
    if not record['ok']:
        logger.error('%s\n%s', result.stdout[-3000:], result.stderr[-5000:])
    logger.info(f'{record["name"]}: {"ok" if record["ok"] else "FAILED"} ({wall:.0f} s)')
    return record


def training_runs(options: str, device: str, data: str, work: str, iters: int) -> list[dict]:
    runs = [
        torchrun(shrink(options, 'train_wdsr_b_x2.yml', 'check_fp32', data, device, iters), work),
        torchrun(
            shrink(
                options,
                'train_wdsr_b_x2.yml',
                'check_bf16_cl',
                data,
                device,
                iters,
                top={'use_amp': True, 'amp_bf16': True, 'use_channels_last': True},
            ),
            work,
        ),
        torchrun(shrink(options, 'paper/norm_batch_lr1e-4_x2.yml', 'check_batchnorm', data, device, iters), work),
    ]
    # resume: fp16 with its GradScaler on GPU (bf16 on CPU, where fp16 training is refused), half then the rest
    amp = {'use_amp': True, 'amp_bf16': device != 'cuda'}
    half = shrink(options, 'train_wdsr_b_x2.yml', 'check_resume', data, device, iters, top=amp)
    half['train']['total_iter'] = iters // 2
    first = torchrun(half, work, validations=1)  # half the run: one validation
    rest = torchrun(
        shrink(options, 'train_wdsr_b_x2.yml', 'check_resume', data, device, iters, top=amp), work, '--auto_resume'
    )
    rest['ok'] = rest['ok'] and first['ok'] and rest['resumed']
    rest['wall_s'] += first['wall_s']
    return runs + [rest]


#: The training-speed columns: (key, precision, step mode); ``use_compile: auto``, as shipped, captures on a GPU.
SPEED_COLUMNS = (
    ('fp32_eager', False, 'eager'),
    ('fp32_compiled', False, 'compiled'),
    ('fp32_captured', False, 'captured'),
    ('bf16_cl_captured', True, 'captured'),
)
#: The columns timed for the networks other than WDSR-B 16x32 (each compiled column costs a compile: the
#: check must fit a lent GPU's minutes).
BASELINE_COLUMNS = ('fp32_eager', 'fp32_captured')
#: The columns whose warm-up (compile) seconds the report shows.
SPEED_COLUMNS_WARM_UP = ('fp32_captured', 'bf16_cl_captured')


def training_speed(device: str, iters: int) -> list[dict]:
    """basicsr's loop body with each step of :data:`SPEED_COLUMNS` (WDSR-B 16x32; the other networks
    :data:`BASELINE_COLUMNS`): it/s, kernels and host syncs per iteration."""
    rows = []
    for name, network in NETS.items():
        row: dict[str, object] = {'network': name if device == 'cuda' else 'WDSR-B 1x8 (CPU smoke run)'}
        if device == 'cpu':  # the suite's smoke run: one tiny network is enough to exercise the code
            network = {'type': 'WDSR_B', 'upscale': 2, **CPU_NET}
        wanted = [c for c in SPEED_COLUMNS if name == 'WDSR-B 16x32' or device == 'cpu' or c[0] in BASELINE_COLUMNS]
        for bf16 in (False, True):
            columns = [(key, mode) for key, half, mode in wanted if half == bf16]
            if not columns:
                continue
            timed = step_timings(
                network,
                device=device,
                bf16=bf16,
                channels_last=bf16,
                modes=tuple(mode for _, mode in columns),
                iters=iters,
                rounds=min(5, iters),
                batch=SIZES[device]['batch'],
                gt_size=SIZES[device]['gt_size'],
            )
            row.update((key, t) for (key, _), t in zip(columns, timed))
        rows.append(row)
        eager: Any = row['fp32_eager']
        logger.info(f'training speed, {row["network"]}: {1 / eager["seconds"]:.1f} it/s (fp32, eager)')
        if device == 'cpu':
            break
    return rows


def loader_speed(data: str, device: str) -> list[dict]:
    """Patches/s of the training loaders (:data:`~.training.LOADERS`)."""
    sizes = SIZES[device]
    rows = []
    for loader, label in LOADERS.items():
        rows.append(
            {
                'loader': label,
                'patches_s': 16 / loader_seconds_per_batch(data, loader, sizes['workers'], 50, sizes['gt_size']),
            }
        )
        logger.info(f'training loader, {label}: {rows[-1]["patches_s"]:.0f} patches/s')
    return rows


def inference_speed(options: str, device: str, compile_net: bool) -> list[dict]:
    """Latency of the Table 1 WDSR-B 8x64 x2, folded, on a 1020x678 LR image (tiny on CPU)."""
    torch.backends.cudnn.benchmark = True  # as basicsr's pipelines and scripts/benchmark.py time
    network = dict(load_options(osp.join(options, 'paper', 'table1_wdsr_b_b8_x2.yml'))['network_g'])
    net = fold_weight_norm(build_described(network).eval())
    h, w = SIZES[device]['lr_size']
    x = torch.rand(1, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)
    variants = [
        ('bf16, channels-last', 'bf16', True, False),
        ('fp32, channels-last', 'fp32', True, False),
        ('fp32, NCHW', 'fp32', False, False),
    ]
    if compile_net:
        variants.append(('bf16, channels-last, torch.compile', 'bf16', True, True))
    rows = []
    for label, dtype, channels_last, compiled in variants:
        forward = prepare_for_timing(copy.deepcopy(net), device, dtype, channels_last, compiled)
        xi = x if channels_last else x.contiguous()
        ms = interleaved_median_ms([(forward, xi)], device, warmup=5 if compiled else 3, runs=20)[0]
        rows.append({'variant': label, 'ms': ms, 'lr_size': f'{w}x{h}'})
        logger.info(f'inference, {label}: {ms:.2f} ms')
    return rows


def report(
    device: str, runs: list[dict], speed: list[dict], loader: list[dict], inference: list[dict], total_s: float
) -> str:
    name = torch.cuda.get_device_name() if device == 'cuda' else 'CPU'
    lines = [
        f'# GPU check: {name}',
        '',
        f'`python scripts/check_gpu.py --device {device}`, {datetime.date.today()}, torch {torch.__version__}, '
        f'{total_s / 60:.1f} min in all.',
        '',
        '## Training through torchrun (world size 1)',
        '',
        '| run | network | precision | channels-last | backend | iterations | s/iter (log) | validations | '
        'last PSNR (dB) | passed |',
        '|---|---|---|---|---|---:|---:|---:|---:|---|',
    ]
    for r in runs:
        lines.append(
            f'| {r["name"]}{" (resumed)" if r["resumed"] else ""} | {r["network"]}'
            f'{" (SyncBN)" if r["syncbn"] else ""} | {r["precision"]} | {r["channels_last"]} | '
            f'{r["backend"]} | {r["iters"]} | {r["s_per_iter"] or float("nan"):.3f} | {r["validations"]} | '
            f'{r["psnr"] or float("nan"):.2f} | {"yes" if r["ok"] else "**no**"} |'
        )
    lines += [
        '',
        "## Training speed: basicsr's loop body (rate, feed, WDSRModel step), batch 16, 96 px HR, x2 (fused Adam, L1)",
        '',
        'it/s (CUDA events over the timed iterations) / kernels per iteration / host syncs per iteration '
        '(torch.profiler); eager, forward and losses compiled, the whole step captured (`use_compile`, as '
        'shipped: auto), and captured in bf16 + channels-last. Warm-up (compile) s of the captured step.',
        '',
        '| network | fp32 eager | fp32 compiled | fp32 captured (as shipped) | bf16 + channels-last captured | '
        'warm-up s, fp32 / bf16 |',
        '|---|---:|---:|---:|---:|---:|',
    ]
    for r in speed:
        cells = [
            f'{1 / r[key]["seconds"]:.1f} / {r[key]["kernels"]:.0f} / {r[key]["syncs"]:.1f}' if key in r else '-'
            for key, _, _ in SPEED_COLUMNS
        ]
        warm_up = ' / '.join(f'{r[key]["first_s"]:.0f}' if key in r else '-' for key in SPEED_COLUMNS_WARM_UP)
        lines.append(f'| {r["network"]} | {" | ".join(cells)} | {warm_up} |')
    lines += [
        '',
        f'## Training loader: patches/s, batch 16, {SIZES[device]["gt_size"]} px HR patches of the demo set',
        '',
        '| loader | patches/s |',
        '|---|---:|',
    ]
    lines += [f'| {r["loader"]} | {r["patches_s"]:.0f} |' for r in loader]
    lines += [
        '',
        '## Inference: Table 1 WDSR-B, 8 blocks, 64 features, x2, weight norm folded',
        '',
        '| variant | LR size | ms (median of 20) |',
        '|---|---|---:|',
    ]
    lines += [f'| {r["variant"]} | {r["lr_size"]} | {r["ms"]:.2f} |' for r in inference]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    show_messages()
    entry_install()  # it runs basicsr's models and loaders in this process
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument(
        '--iters', type=int, default=None, help='Training iterations per run. Default: 300 on cuda, 4 on cpu.'
    )
    parser.add_argument('--data', default='datasets/demo', help='Demo LMDBs (built if missing).')
    parser.add_argument(
        '--options', default='options', help='The shipped option files. Default: options (run from the repository).'
    )
    parser.add_argument('--work', default=None, help='Scratch folder. Default: a new folder under /tmp.')
    parser.add_argument(
        '--out', default=None, help='Markdown report. Default: docs/gpu_check.md on cuda, WORK/gpu_check.md on cpu.'
    )
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch sees no CUDA GPU; use --device cpu for the smoke run.')
    if not osp.isdir(args.options):
        parser.error(
            f'--options {args.options} is not a folder: run from the repository (its options/) or pass the '
            'folder of the shipped option files.'
        )
    iters = args.iters or (300 if args.device == 'cuda' else 4)
    work = osp.abspath(args.work or f'/tmp/wdsr_check_gpu_{os.getpid()}')
    os.makedirs(work, exist_ok=True)
    data = osp.abspath(args.data)
    if not osp.isdir(osp.join(data, 'DIV2K_train_HR_sub.lmdb')):
        make_demo_data(data, scales=(2,))
    out = args.out or (osp.join('docs', 'gpu_check.md') if args.device == 'cuda' else osp.join(work, 'gpu_check.md'))

    start = time.perf_counter()
    runs = training_runs(args.options, args.device, data, work, iters)
    speed = training_speed(args.device, 200 if args.device == 'cuda' else 2)
    loader = loader_speed(data, args.device)
    inference = inference_speed(args.options, args.device, args.device == 'cuda')
    text = report(args.device, runs, speed, loader, inference, time.perf_counter() - start)
    with open(out, 'w') as f:
        f.write(text)
    print(text)
    print(f'report: {out}')
    return 0 if all(r['ok'] for r in runs) else 1


if __name__ == '__main__':
    sys.exit(main())
