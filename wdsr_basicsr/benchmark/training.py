"""Training speed: ms per iteration eager and compiled, and how fast the loader delivers patches.

Measures

* basicsr's loop body (``update_learning_rate``, ``feed_data``,
  ``optimize_parameters``: forward, L1 loss, backward, fused Adam step) at
  batch 16, 96 px HR patches, x2, for the 16-block WDSR-A (32 features, x4
  wide), WDSR-B (32 features, x6 wide) and EDSR (64 features), on
  ``--device``, optionally in bf16 and channels-last, with the step eager,
  compiled (forward and losses) and captured whole (medians of alternating
  rounds after warm-up, CUDA events on a GPU; the warm-up iterations, which
  compile, reported apart), and beside the wall time what ``torch.profiler``
  counts per iteration: the kernels and their summed device time, and the
  host syncs: the gap between wall time and kernel time is overhead;
* the training loader (CheckedPairedImageDataset, random 96 px crops, flips
  and rotations) in patches per second per worker process, decoding the demo
  LMDB sub-images (basicsr's way) and cropping from ``cache_data`` (the demo's
  whole images decoded once, or its sub-image LMDBs put back into their
  images), and with ``--workers`` processes the share of a WDSR-B iteration
  the trainer would wait for data;
* the first build of each cache of the demo set: checking and digesting the
  encoded images, then decoding them.

Usage: python scripts/bench_train.py [--device cpu|cuda] [--bf16] [--channels-last]
       [--modes eager compiled captured] [--iters N] [--root datasets/demo] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models import build_model

from ..compat import entry_install
from ..data.cache_open import open_cache
from ..data.paired_dataset import CheckedPairedImageDataset
from ..prepare.demo import make_demo_data
from ..prepare.layout import div2k_lmdbs, hr_dir, lr_dir
from ..utils.messages import show_messages

#: The 16-block networks of the recipes, as ``network_g`` sections.
NETS = {
    'WDSR-A 16x32': {'type': 'WDSR_A', 'num_feat': 32, 'num_block': 16, 'expansion': 4, 'upscale': 2},
    'WDSR-B 16x32': {'type': 'WDSR_B', 'num_feat': 32, 'num_block': 16, 'expansion': 6, 'upscale': 2},
    'EDSR 16x64': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 2},
}
WARMUP = 3  # iterations before timing (a compiled step compiles in the first)
#: How the step runs (:meth:`~wdsr_basicsr.models.WDSRModel.use_step`): eager; forward and losses compiled (what
#: DDP and fp16 get); the whole step captured in one graph (``use_compile`` on one GPU or the CPU).
MODES = ('eager', 'compiled', 'captured')
#: Profiler events that make the host wait for the device (``Tensor.item`` and the like end in the first).
SYNC_EVENTS = ('aten::_local_scalar_dense', 'cudaStreamSynchronize', 'cudaDeviceSynchronize', 'cudaEventSynchronize')


def training_model(network: dict, *, device: str, bf16: bool, channels_last: bool, mode: str, folder: str):
    """A ``WDSRModel`` in training mode for ``network`` (Adam, L1, no EMA) whose step runs as ``mode``."""
    opt = {
        'name': 'bench',
        'model_type': 'WDSRModel',
        'scale': network['upscale'],
        'num_gpu': int(device == 'cuda'),
        'is_train': True,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'use_amp': bf16,
        'amp_bf16': True,
        'use_channels_last': channels_last,
        'use_compile': False,
        'network_g': dict(network),
        'path': {'pretrain_network_g': None, 'models': folder, 'training_states': folder},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10**6], 'gamma': 0.5},
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
        },
        'val': {},
    }
    model = build_model(opt)
    model.use_step(mode)
    return model


def loop_body(model, data: dict, current_iter: int) -> None:
    """What basicsr's ``train_pipeline`` runs for one iteration between two batches: rate, feed, step."""
    model.update_learning_rate(current_iter, warmup_iter=-1)
    model.feed_data(data)
    model.optimize_parameters(current_iter)


def profile_counts(model, data: dict, device: str, first_iter: int, iters: int = 5) -> dict[str, float]:
    """Per iteration of :func:`loop_body`, from ``torch.profiler``: device work, its time, and host syncs.

    On CUDA the work is the kernels (and copies) the device ran, timed on the device; on the CPU, the
    top-level ATen operators called (what eager would launch as kernels on a GPU) and their CPU time. Host
    syncs are the :data:`SYNC_EVENTS` seen.

    Returns:
        dict[str, float]: ``kernels``, ``kernel_ms`` and ``syncs``, per iteration.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == 'cuda':
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        torch.cuda.synchronize()
    with torch.profiler.profile(activities=activities) as prof:
        for i in range(iters):
            loop_body(model, data, first_iter + i)
        if device == 'cuda':
            torch.cuda.synchronize()
    events = prof.events()
    syncs = sum(1 for e in events if e.name in SYNC_EVENTS)
    if device == 'cuda':
        work = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
        seconds = sum(e.device_time for e in work) / 1e6
    else:
        work = [
            e
            for e in events
            if e.name.startswith('aten::') and not (e.cpu_parent and e.cpu_parent.name.startswith('aten::'))
        ]
        seconds = sum(e.cpu_time_total for e in work) / 1e6
    return {'kernels': len(work) / iters, 'kernel_ms': seconds * 1000 / iters, 'syncs': syncs / iters}


def step_timings(
    network: dict,
    *,
    device: str,
    bf16: bool,
    channels_last: bool,
    modes: tuple[str, ...],
    iters: int,
    rounds: int = 5,
    batch: int = 16,
    gt_size: int = 96,
) -> list[dict[str, float]]:
    """Time basicsr's loop body (:func:`loop_body`) with the step run each way of ``modes``, and profile it.

    As basicsr's ``train_pipeline``: ``cudnn.benchmark`` on, a new rate, ``feed_data`` of a batch (pinned on
    CUDA, as the loader gives it with ``pin_memory``), the step. After :data:`WARMUP` iterations (compiling),
    the models run ``rounds`` alternating rounds of ``iters // rounds`` iterations, so a change of machine load
    slows them alike; on CUDA a round is timed by CUDA events around it (the device's time for the whole
    round, nothing synchronised inside), on the CPU by the wall clock.

    Args:
        network (dict): The ``network_g`` section (``upscale`` is the scale).
        device (str): 'cpu' or 'cuda'.
        bf16 (bool): ``use_amp`` with ``amp_bf16``.
        channels_last (bool): ``use_channels_last``.
        modes (tuple[str, ...]): How each model's step runs (:data:`MODES`).
        iters (int): Timed iterations per model (at least ``rounds``).
        rounds (int): Rounds the iterations are split in. Default: 5.
        batch (int): Batch size. Default: 16.
        gt_size (int): HR patch size. Default: 96.

    Returns:
        list[dict[str, float]]: Per mode: ``seconds`` (median per iteration over the rounds), ``first_s`` (the
        warm-up iterations), and :func:`profile_counts`'s figures.
    """
    torch.backends.cudnn.benchmark = True  # as basicsr's train_pipeline sets it
    scale = network['upscale']
    data = {
        'lq': torch.rand(batch, 3, gt_size // scale, gt_size // scale),
        'gt': torch.rand(batch, 3, gt_size, gt_size),
    }
    if device == 'cuda':
        data = {key: value.pin_memory() for key, value in data.items()}
    per_round = max(1, iters // rounds)

    def timed(model, first_iter, count):
        if device == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(count):
                loop_body(model, data, first_iter + i)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000
        begin = time.perf_counter()
        for i in range(count):
            loop_body(model, data, first_iter + i)
        return time.perf_counter() - begin

    with tempfile.TemporaryDirectory() as folder:
        models = [
            training_model(network, device=device, bf16=bf16, channels_last=channels_last, mode=m, folder=folder)
            for m in modes
        ]
        results = [{'first_s': timed(model, 1, WARMUP)} for model in models]
        spent: list[list[float]] = [[] for _ in models]
        for r in range(rounds):
            for model, seconds in zip(models, spent):
                seconds.append(timed(model, 1 + WARMUP + r * per_round, per_round) / per_round)
        for model, seconds, result in zip(models, spent, results):
            result['seconds'] = statistics.median(seconds)
            result.update(profile_counts(model, data, device, 1 + WARMUP + rounds * per_round))
    return results


#: The training loaders timed, by what they read: basicsr's (LMDB sub-images, a PNG decoded per sample), and
#: ``cache_data`` with the authors' sampling from the whole images (the demo's) or from the sub-image LMDBs put
#: back into their images (the main recipes').
LOADERS = {
    'lmdb': 'LMDB sub-images, PNG decoded per sample (basicsr)',
    'images': "cache_data from whole images, authors' sampling",
    'sub-images': "cache_data from LMDB sub-images put back, authors' sampling",
}


def loader_options(root: str, loader: str, workers: int, gt_size: int = 96) -> dict:
    """The demo training set read by ``loader`` (a key of :data:`LOADERS`)."""
    gt, lq = div2k_lmdbs(root, 'train', 2)
    source: dict = {'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'lmdb'}}
    if loader == 'images':
        source = {
            'dataroot_gt': hr_dir(root, 'train'),
            'dataroot_lq': lr_dir(root, 'train', 2),
            'filename_tmpl': '{}x2',
            'io_backend': {'type': 'disk'},
        }
    if loader != 'lmdb':
        source.update(cache_data=True, sampling='image')
    return dict(
        source,
        name='bench',
        type='CheckedPairedImageDataset',
        phase='train',
        scale=2,
        gt_size=gt_size,
        use_hflip=True,
        use_rot=True,
        num_worker_per_gpu=workers,
        batch_size_per_gpu=16,
        dataset_enlarge_ratio=1000,
    )


def loader_seconds_per_batch(root: str, loader: str, workers: int, batches: int, gt_size: int = 96) -> float:
    """Seconds per batch of 16 random ``gt_size`` px patches from the demo set, with ``workers`` loader processes."""
    if not os.path.isdir(os.path.join(root, 'DIV2K_train_HR_sub.lmdb')):
        make_demo_data(root, scales=(2,))
    opt = loader_options(root, loader, workers, gt_size)
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    loader_iter = iter(build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0))
    next(loader_iter)  # start the workers
    start = time.perf_counter()
    for _ in range(batches):
        next(loader_iter)
    return (time.perf_counter() - start) / batches


def cache_build_seconds(root: str, loader: str) -> tuple[float, float, int]:
    """The first build of ``loader``'s caches of the demo set in a fresh folder: digests, decoding, bytes read.

    Returns:
        tuple[float, float, int]: Seconds to digest every encoded image (finding the cache), seconds to decode
        and write them, and the encoded bytes.
    """
    if not os.path.isdir(os.path.join(root, 'DIV2K_train_HR_sub.lmdb')):
        make_demo_data(root, scales=(2,))
    with tempfile.TemporaryDirectory() as folder:
        opt = dict(loader_options(root, loader, 0), cache_dir=folder)
        start = time.perf_counter()
        plans = CheckedPairedImageDataset.check_data(opt)
        digest = time.perf_counter() - start
        start = time.perf_counter()
        for plan in plans.values():
            open_cache(plan)
        decode = time.perf_counter() - start
    encoded = sum(len(plan.read(key)) for plan in plans.values() for key in plan.keys)
    return digest, decode, encoded


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast (use_amp, amp_bf16).')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument(
        '--modes',
        nargs='+',
        choices=MODES,
        help='How the step runs: eager, compiled (forward and losses), captured (the whole step in one graph). '
        'Default: all on CUDA; eager and captured on the CPU.',
    )
    parser.add_argument(
        '--nets',
        nargs='+',
        default=list(NETS),
        choices=list(NETS),
        metavar='NET',
        help=f'Networks to time. Default: all ({", ".join(NETS)}).',
    )
    parser.add_argument(
        '--iters', type=int, help='Timed iterations per network and mode. Default: 200 on CUDA, 5 on the CPU.'
    )
    parser.add_argument('--root', default='datasets/demo', help='Demo set (built if missing).')
    parser.add_argument('--workers', type=int, default=2, help='Loader worker processes. Default: 2.')
    parser.add_argument('--batches', type=int, default=30, help='Loader batches to time. Default: 30.')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but torch sees no CUDA GPU.')
    if args.iters is not None and args.iters < 1:
        parser.error(f'--iters {args.iters}: time at least one iteration.')
    args.modes = tuple(args.modes or (MODES if args.device == 'cuda' else ('eager', 'captured')))
    args.iters = args.iters or (200 if args.device == 'cuda' else 5)
    return args


def _print_steps(args) -> dict[str, float]:
    """The training-step table; returns each network's fastest seconds per step."""
    work = 'kernels' if args.device == 'cuda' else 'top-level ATen ops (CPU time)'
    print(
        f'device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 {args.bf16}, '
        f"channels-last {args.channels_last}; basicsr's loop body (rate, feed, WDSRModel step), batch 16, 96 px HR, "
        f'x2, Adam, L1; median of 5 rounds, {args.iters} iterations each way after {WARMUP} of warm-up; '
        f'per iteration from torch.profiler over 5 more: {work} and host syncs'
    )
    print('| network | step | ms/iter | it/s | kernels/iter | kernel ms/iter | host syncs/iter | warm-up s |')
    print('|---|---|---:|---:|---:|---:|---:|---:|')
    step = {}
    for name in args.nets:
        timed = step_timings(
            NETS[name],
            device=args.device,
            bf16=args.bf16,
            channels_last=args.channels_last,
            modes=args.modes,
            iters=args.iters,
            rounds=min(5, args.iters),
        )
        step[name] = min(t['seconds'] for t in timed)
        for mode, t in zip(args.modes, timed):
            print(
                f'| {name} | {mode} | {t["seconds"] * 1000:.1f} | {1 / t["seconds"]:.1f} | {t["kernels"]:.0f} | '
                f'{t["kernel_ms"]:.1f} | {t["syncs"]:.1f} | {t["first_s"]:.1f} |',
                flush=True,
            )
    return step


def _print_loader(args) -> dict[str, float]:
    """The loader table; returns seconds per batch with the workers, by loader."""
    print(
        '| loader | patches/s, 1 process (no worker) | patches/s, '
        f'{args.workers} workers | ms per batch of 16 ({args.workers} workers) |'
    )
    print('|---|---:|---:|---:|')
    per_batch = {}
    for loader, label in LOADERS.items():
        single = loader_seconds_per_batch(args.root, loader, 0, args.batches)
        per_batch[loader] = loader_seconds_per_batch(args.root, loader, args.workers, args.batches)
        print(
            f'| {label} | {16 / single:.0f} | {16 / per_batch[loader]:.0f} | {per_batch[loader] * 1000:.1f} |',
            flush=True,
        )
    for loader in ('images', 'sub-images'):
        digest, decode, encoded = cache_build_seconds(args.root, loader)
        print(
            f'cache_data first build ({LOADERS[loader]}): {encoded / 2**20:.1f} MiB encoded, '
            f'checked and digested in {digest * 1000:.0f} ms, decoded in {decode * 1000:.0f} ms'
        )
    return per_batch


def main(argv=None):
    show_messages(information_to_stderr=True)  # stdout is the table
    entry_install()  # it runs basicsr's models and loaders in this process
    args = _arguments(argv)
    step = _print_steps(args)
    print()
    per_batch = _print_loader(args)
    if 'WDSR-B 16x32' in step:
        iter_s = step['WDSR-B 16x32']
        for loader, load_s in per_batch.items():
            label = LOADERS[loader]
            print(
                f'{label}: loading a batch with {args.workers} workers takes {load_s / iter_s * 100:.1f}% of the '
                f'fastest WDSR-B step ({iter_s * 1000:.0f} ms); data wait '
                f'{max(0.0, load_s - iter_s) / iter_s * 100:.1f}%'
            )
    return 0


if __name__ == '__main__':
    sys.exit(main())
