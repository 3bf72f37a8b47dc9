"""Measure the peak memory (RSS) of the inference command on a huge image, for the docs.

Usage: python scripts/measure_inference_memory.py [--size 8000] [--tile 512] [--opt options/train_wdsr_b_x2.yml]
[--work DIR]

Writes an RGB photograph (scikit-image's astronaut, resized) of ``--size`` x ``--size`` px, a checkpoint of the
option file's network (random weights: memory and time do not depend on them), runs
``scripts/inference_wdsr.py --tile`` on it in a child process and prints its peak RSS (the kernel's
``ru_maxrss`` of the child), wall time, and the sizes of the 8-bit input and output arrays for comparison.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from os import path as osp

import cv2
import torch
from skimage import data as skimage_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from basicsr.archs import build_network  # noqa: E402

import wdsr_basicsr  # noqa: E402,F401  (compat first, then basicsr imports)
from wdsr_basicsr.options import load_options  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=8000, help='Input width and height. Default: 8000.')
    parser.add_argument('--tile', type=int, default=512, help='--tile of the inference command. Default: 512.')
    parser.add_argument(
        '--opt',
        default=osp.join(REPO, 'options', 'train_wdsr_b_x2.yml'),
        help='Option file whose network_g is run. Default: options/train_wdsr_b_x2.yml.',
    )
    parser.add_argument(
        '--work',
        default=None,
        help='New or empty folder for the image, checkpoint and output '
        '(default: a temporary folder, removed afterwards).',
    )
    args = parser.parse_args(argv)
    if args.work and osp.isdir(args.work) and os.listdir(args.work):
        parser.error(
            f'--work {args.work} is not empty: this script writes huge.png, net.pth and out/ there; give a '
            'new or empty folder.'
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        os.makedirs(work, exist_ok=True)
        image = osp.join(work, 'huge.png')
        cv2.imwrite(
            image,
            cv2.resize(
                cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR),
                (args.size, args.size),
                interpolation=cv2.INTER_CUBIC,
            ),
        )
        network_g = dict(load_options(args.opt)['network_g'])
        checkpoint = osp.join(work, 'net.pth')
        torch.save({'params': build_network(dict(network_g)).state_dict(), 'network_g': network_g}, checkpoint)
        out = osp.join(work, 'out')
        command = [
            sys.executable,
            osp.join(REPO, 'scripts', 'inference_wdsr.py'),
            '-i',
            image,
            '-o',
            out,
            '--model_path',
            checkpoint,
            '--device',
            'cpu',
            '--tile',
            str(args.tile),
            '--overwrite',
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode:
            print(result.stderr[-3000:], file=sys.stderr)
            return result.returncode
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # Linux: KiB
        scale = network_g['upscale']
        produced = cv2.imread(osp.join(out, 'huge.png'), cv2.IMREAD_UNCHANGED).shape
        print(
            f'| {osp.relpath(args.opt, REPO)} ({network_g["type"]}) | {args.size}x{args.size} RGB, 8 bit | '
            f'x{scale} -> {produced[1]}x{produced[0]} | --tile {args.tile} | {peak_gb:.2f} GB | {wall:.0f} s | '
            f'{args.size**2 * 3 / 1e9:.2f} GB / {(args.size * scale) ** 2 * 3 / 1e9:.2f} GB |'
        )
    return 0


if __name__ == '__main__':
    sys.exit(main())
