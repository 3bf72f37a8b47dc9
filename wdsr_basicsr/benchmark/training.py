"""Training speed: iteration time of WDSR-A, WDSR-B and EDSR, and whether LMDB loading keeps up.

Measures

* one training iteration (forward, L1 loss, backward, Adam step) at batch 16,
  96 px HR patches, x2, for the 16-block WDSR-A (32 features, x4 wide),
  WDSR-B (32 features, x6 wide) and EDSR (64 features), on ``--device``, with
  optional bf16 autocast and channels-last;
* the training loader (CheckedPairedImageDataset on the demo LMDBs, BasicSR's
  dataloader, random 96 px crops, flips and rotations, batch 16) in patches
  per second with ``--workers`` processes, and the share of a WDSR-B iteration
  the trainer would wait for data.

Usage: python scripts/bench_train.py [--device cpu|cuda] [--bf16] [--channels-last] [--root datasets/demo]
       [--workers 2]
"""
from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from basicsr.archs.edsr_arch import EDSR
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler

from ..archs import WDSR_A, WDSR_B
from ..prepare.demo import make_demo_data

NETS = {
    'WDSR-A 16x32': lambda: WDSR_A(num_feat=32, num_block=16, expansion=4, upscale=2),
    'WDSR-B 16x32': lambda: WDSR_B(num_feat=32, num_block=16, expansion=6, upscale=2),
    'EDSR 16x64': lambda: EDSR(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=2),
}


def iteration_seconds(net: nn.Module, device: str, bf16: bool, channels_last: bool, iters: int) -> float:
    """Median seconds of one Adam training iteration at batch 16, 48 px LR / 96 px HR."""
    net = net.to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    lq = torch.rand(16, 3, 48, 48, device=device).contiguous(memory_format=memory_format)
    gt = torch.rand(16, 3, 96, 96, device=device)
    times = []
    for i in range(iters + 2):
        start = time.perf_counter()
        optimizer.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.l1_loss(net(lq).float(), gt)
        loss.backward()
        optimizer.step()
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def loader_seconds_per_batch(root: str, workers, batches: int) -> float:
    """Seconds per batch of 16 random 96 px patches from the demo LMDBs."""
    if not os.path.isdir(os.path.join(root, 'DIV2K_train_HR_sub.lmdb')):
        make_demo_data(root, scales=(2, ))
    opt = dict(
        name='bench',
        type='CheckedPairedImageDataset',
        phase='train',
        scale=2,
        dataroot_gt=os.path.join(root, 'DIV2K_train_HR_sub.lmdb'),
        dataroot_lq=os.path.join(root, 'DIV2K_train_LR_bicubic_X2_sub.lmdb'),
        io_backend=dict(type='lmdb'),
        gt_size=96,
        use_hflip=True,
        use_rot=True,
        num_worker_per_gpu=workers,
        batch_size_per_gpu=16,
        dataset_enlarge_ratio=100)
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    loader = iter(build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0))
    next(loader)  # start the workers
    start = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return (time.perf_counter() - start) / batches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast.')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--iters', type=int, default=5, help='Timed iterations per network. Default: 5.')
    parser.add_argument('--root', default='datasets/demo', help='Demo LMDBs (built if missing).')
    parser.add_argument('--workers', type=int, default=2, help='Loader worker processes. Default: 2.')
    parser.add_argument('--batches', type=int, default=30, help='Loader batches to time. Default: 30.')
    args = parser.parse_args(argv)

    print(f'device {args.device}, torch threads {torch.get_num_threads()}, bf16 {args.bf16}, '
          f'channels-last {args.channels_last}; batch 16, 96 px HR, x2')
    seconds = {}
    for name, make in NETS.items():
        seconds[name] = iteration_seconds(make(), args.device, args.bf16, args.channels_last, args.iters)
        print(f'  {name}: {seconds[name] * 1000:.0f} ms per training iteration')
    load_s = loader_seconds_per_batch(args.root, args.workers, args.batches)
    iter_s = seconds['WDSR-B 16x32']
    print(f'loader ({args.workers} workers): {16 / load_s:.0f} patches/s, {load_s * 1000:.1f} ms per batch of 16')
    print(f'data wait if loading runs beside training: {max(0.0, load_s - iter_s) / iter_s * 100:.1f}% of a WDSR-B '
          f'iteration (loading a batch takes {load_s / iter_s * 100:.1f}% of one)')
    return 0
