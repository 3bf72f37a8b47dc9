"""The embedded demo set: scikit-image's photographs arranged like DIV2K.

DIV2K (4 GB) cannot be fetched everywhere. scikit-image, installed with
basicsr, ships a handful of real photographs; this module writes them as a
small DIV2K-shaped folder (``DIV2K_train_HR/0001.png`` ...,
``DIV2K_valid_HR/0801.png`` ...) and runs the same preparation as DIV2K, so the
demo trains on LMDBs with DIV2K's names. Two photographs are kept out of
training for validation.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from os import path as osp

import cv2
import numpy as np
from basicsr.metrics import calculate_psnr
from skimage import data as skimage_data

from ..files import written_aside
from ..utils.messages import show_messages
from ..utils.resize import matlab_resize
from . import read_bgr, run_job
from .div2k import prepare
from .layout import hr_dir, lr_path

#: scikit-image photographs (RGB, real scenes) used for training, in order.
TRAIN_PHOTOS = ('astronaut', 'hubble_deep_field', 'immunohistochemistry', 'retina')
#: Held out for validation.
VALID_PHOTOS = ('chelsea', 'coffee')
#: Sub-image size and step of the demo (DIV2K uses 480/240; the photographs are small).
DEMO_CROP_SIZE = 240
DEMO_STEP = 120


def write_div2k_layout(root: str) -> dict[str, list[str]]:
    """Write the photographs as ``root/DIV2K_train_HR/0001.png`` ... and ``root/DIV2K_valid_HR/0801.png`` ...

    Existing files are kept, so a rerun changes nothing.

    Returns:
        dict[str, list[str]]: Written or existing paths per split.
    """
    layout = {
        'train': [(i + 1, n) for i, n in enumerate(TRAIN_PHOTOS)],
        'valid': [(801 + i, n) for i, n in enumerate(VALID_PHOTOS)],
    }
    paths: dict[str, list[str]] = {}
    for split, items in layout.items():
        folder = hr_dir(root, split)
        os.makedirs(folder, exist_ok=True)
        paths[split] = []
        for index, name in items:
            path = osp.join(folder, f'{index:04d}.png')
            if not osp.exists(path):
                rgb = getattr(skimage_data, name)()
                with written_aside(path, suffix='.png') as tmp:
                    cv2.imwrite(tmp, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            paths[split].append(path)
    return paths


def make_demo_data(root: str, scales: tuple[int, ...] = (2, 3, 4), workers: int | None = None) -> list[str]:
    """Build the demo DIV2K folder and its LMDBs under ``root``.

    Args:
        root (str): Output folder, e.g. ``datasets/demo``.
        scales (tuple[int]): LR scales. Default: (2, 3, 4).
        workers (int | None): Worker processes. Default: the CPU count.

    Returns:
        list[str]: LMDBs written by this call.
    """
    write_div2k_layout(root)
    return prepare(root, scales, crop_size=DEMO_CROP_SIZE, step=DEMO_STEP, workers=workers)


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(description='Build the demo set: scikit-image photographs as DIV2K LMDBs.')
    parser.add_argument('--root', default='datasets/demo', help='Output folder. Default: datasets/demo.')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4.')
    parser.add_argument('--workers', type=int, default=None, help='Worker processes. Default: CPU count.')
    args = parser.parse_args(argv)
    written, fault = run_job(lambda: make_demo_data(args.root, args.scales, args.workers))
    if fault:
        print(fault, file=sys.stderr)
        return 1
    for path in written:
        print(f'wrote {path}')
    return 0


def bicubic_baseline(root: str, scale: int) -> tuple[float, float]:
    """Mean PSNR (RGB and Y, border = ``scale``) of MATLAB-bicubic upscaling of the demo's validation LR images.

    The yardstick the demo network must beat: the same LR images, the same HR
    images, the same metric as the training run's validation.

    Args:
        root (str): The demo folder (:func:`make_demo_data`).
        scale (int): The scale.

    Returns:
        tuple[float, float]: PSNR on RGB and on Y, in dB.
    """
    rgb, y = [], []
    for hr_path in sorted(glob.glob(osp.join(hr_dir(root, 'valid'), '*.png'))):
        stem = osp.splitext(osp.basename(hr_path))[0]
        up = matlab_resize(read_bgr(lr_path(root, 'valid', scale, stem)), scale)
        hr = read_bgr(hr_path)[: up.shape[0], : up.shape[1]]
        rgb.append(calculate_psnr(up, hr, scale))
        y.append(calculate_psnr(up, hr, scale, test_y_channel=True))
    return float(np.mean(rgb)), float(np.mean(y))


if __name__ == '__main__':
    sys.exit(main())
