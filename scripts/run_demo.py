"""The README's main job: build the demo set, train the demo WDSR-B x2 on it, and say where everything is.

1. scikit-image's photographs are prepared like DIV2K into datasets/demo (skipped when present);
2. python wdsr_basicsr/train.py -opt options/demo_wdsr_b_x2.yml (about 4 minutes on 2 CPU cores);
3. the validation PSNR of the trained network is printed beside MATLAB-bicubic upscaling of the same
   LR images, with the paths of the log, checkpoints and SR images.

Usage: python scripts/run_demo.py
"""
import glob
import re
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np

import wdsr_basicsr  # noqa: F401  (compat first)
from basicsr.metrics import calculate_psnr
from basicsr.utils.matlab_functions import imresize
from wdsr_basicsr.prepare.demo import make_demo_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS = osp.join(REPO, 'options', 'demo_wdsr_b_x2.yml')
DATA = 'datasets/demo'
NAME = 'demo_wdsr_b_x2'
SCALE = 2


def bicubic_psnr(root, scale):
    """Mean RGB and Y PSNR of MATLAB-bicubic upscaling of the validation LR images (border crop = scale)."""
    rgb, y = [], []
    for hr_path in sorted(glob.glob(osp.join(root, 'DIV2K_valid_HR', '*.png'))):
        stem = osp.splitext(osp.basename(hr_path))[0]
        lr = cv2.imread(osp.join(root, 'DIV2K_valid_LR_bicubic', f'X{scale}', f'{stem}x{scale}.png'))
        up = np.clip(np.round(imresize(lr / 255., scale) * 255.), 0, 255)
        hr = cv2.imread(hr_path)[:up.shape[0], :up.shape[1]]
        rgb.append(calculate_psnr(up, hr, scale))
        y.append(calculate_psnr(up, hr, scale, test_y_channel=True))
    return float(np.mean(rgb)), float(np.mean(y))


def main():
    make_demo_data(DATA, scales=(SCALE, ))
    subprocess.run([sys.executable, osp.join(REPO, 'wdsr_basicsr', 'train.py'), '-opt', OPTIONS], check=True)
    exp = osp.join('experiments', NAME)
    log = sorted(glob.glob(osp.join(exp, f'train_{NAME}_*.log')))[-1]
    text = open(log).read()
    psnr = re.findall(r'# psnr: ([\d.]+)', text)[-1]
    psnr_y = re.findall(r'# psnr_y: ([\d.]+)', text)[-1]
    bic, bic_y = bicubic_psnr(DATA, SCALE)
    print()
    print(f'Validation on the held-out photographs (x{SCALE}, border {SCALE}):')
    print(f'  WDSR-B demo: PSNR {float(psnr):.2f} dB (RGB), {float(psnr_y):.2f} dB (Y)')
    print(f'  bicubic:     PSNR {bic:.2f} dB (RGB), {bic_y:.2f} dB (Y)')
    print(f'Log:         {log}')
    print(f'Checkpoints: {osp.join(exp, "models")} (net_g_latest.pth holds params, network_g, and params_ema when train:ema_decay > 0)')
    print(f'SR images:   {osp.join(exp, "visualization")}/<image>/<image>_<iter>.png')
    print(f'TensorBoard: tensorboard --logdir {osp.join("tb_logger", NAME)}')
    return 0 if float(psnr) > bic else 1


if __name__ == '__main__':
    sys.exit(main())
