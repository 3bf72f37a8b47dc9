"""Does LMDB loading keep up with training? Patches/s of the training loader vs. WDSR-B iteration time.

Builds the demo LMDBs if missing, then measures

* the training loader (CheckedPairedImageDataset on LMDB, BasicSR's
  dataloader, random 96 px HR crops, flips and rotations, batch 16) in
  patches per second, with ``--workers`` loader processes;
* one training iteration (forward, L1 loss, backward, Adam step) of a
  16-block, 32-feature WDSR-B x2 at batch 16;

and prints the share of an iteration the trainer would wait for data, when
loading runs in worker processes beside training.

Usage: python scripts/bench_loader.py [--root datasets/demo] [--workers 2] [--batches 30]
"""
import argparse
import os
import time

import torch

import wdsr_basicsr  # noqa: F401  (compat and registration)
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.data.demo_data import make_demo_data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='datasets/demo')
    parser.add_argument('--workers', type=int, default=2, help='Loader worker processes. Default: 2.')
    parser.add_argument('--batches', type=int, default=30, help='Batches to time. Default: 30.')
    parser.add_argument('--iters', type=int, default=5, help='Training iterations to time. Default: 5.')
    args = parser.parse_args()

    if not os.path.isdir(os.path.join(args.root, 'DIV2K_train_HR_sub.lmdb')):
        make_demo_data(args.root, scales=(2, ))
    opt = dict(
        name='bench',
        type='CheckedPairedImageDataset',
        phase='train',
        scale=2,
        dataroot_gt=os.path.join(args.root, 'DIV2K_train_HR_sub.lmdb'),
        dataroot_lq=os.path.join(args.root, 'DIV2K_train_LR_bicubic_X2_sub.lmdb'),
        io_backend=dict(type='lmdb'),
        gt_size=96,
        use_hflip=True,
        use_rot=True,
        use_shuffle=True,
        num_worker_per_gpu=args.workers,
        batch_size_per_gpu=16,
        dataset_enlarge_ratio=100)
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0)
    batches = iter(loader)
    next(batches)  # start the workers
    start = time.perf_counter()
    for _ in range(args.batches):
        next(batches)
    load_s = (time.perf_counter() - start) / args.batches

    net = WDSR_B(num_feat=32, num_block=16, expansion=6, upscale=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    lq, gt = torch.rand(16, 3, 48, 48), torch.rand(16, 3, 96, 96)

    def step():
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(net(lq), gt).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    iter_s = (time.perf_counter() - start) / args.iters

    print(f'torch threads: {torch.get_num_threads()}, loader workers: {args.workers}')
    print(f'loader: {16 / load_s:.0f} patches/s ({load_s * 1000:.1f} ms per batch of 16, 96 px HR)')
    print(f'WDSR-B 16x32 x2 training iteration, batch 16: {iter_s * 1000:.0f} ms')
    print(f'data wait if loading runs beside training: {max(0.0, load_s - iter_s) / iter_s * 100:.1f}% of an '
          f'iteration (a batch takes {load_s / iter_s * 100:.1f}% of an iteration to load)')


if __name__ == '__main__':
    main()
