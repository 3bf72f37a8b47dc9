"""The README's main job: build the demo set, train the demo WDSR-B x2 on it, and say where everything is.

1. scikit-image's photographs are prepared like DIV2K into datasets/demo (skipped when present);
2. python wdsr_basicsr/train.py -opt options/demo_wdsr_b_x2.yml (about 1.5 minutes on 2 CPU cores);
3. the validation PSNR of the trained network is printed beside MATLAB-bicubic upscaling of the same
   LR images, with the paths of the log, checkpoints and SR images.

Usage: python scripts/run_demo.py [--force_yml key:sub=value ...]   (passed to the training, e.g. a shorter run)
"""

import argparse
import os
import sys
from os import path as osp

from wdsr_basicsr.prepare.demo import bicubic_baseline, make_demo_data
from wdsr_basicsr.runs import read_validations, run_entry

OPTIONS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'options', 'demo_wdsr_b_x2.yml')
DATA = 'datasets/demo'
NAME = 'demo_wdsr_b_x2'
SCALE = 2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--force_yml', nargs='+', default=[], help='Options of the training changed, as train.py takes them.'
    )
    args = parser.parse_args(argv)
    make_demo_data(DATA, scales=(SCALE,))
    extra = ('--force_yml', *args.force_yml) if args.force_yml else ()
    run_entry('train', OPTIONS, cwd=os.getcwd(), capture=False, extra=extra).check_returncode()
    exp = osp.join('experiments', NAME)
    last = read_validations(exp)[-1]['mean']
    bic, bic_y = bicubic_baseline(DATA, SCALE)
    print()
    print(f'Validation on the held-out photographs (x{SCALE}, border {SCALE}):')
    print(f'  WDSR-B demo: PSNR {last["psnr"]:.2f} dB (RGB), {last["psnr_y"]:.2f} dB (Y)')
    print(f'  bicubic:     PSNR {bic:.2f} dB (RGB), {bic_y:.2f} dB (Y)')
    print(f'Log:         {exp}/train_{NAME}_<time>.log; validations: {osp.join(exp, "validation.jsonl")}')
    print(
        f'Checkpoints: {osp.join(exp, "models")} (net_g_latest.pth holds params, network_g, and params_ema when '
        'train:ema_decay > 0)'
    )
    print(f'SR images:   {osp.join(exp, "visualization")}/<image>/<image>_<iter>.png')
    print(f'TensorBoard: tensorboard --logdir {osp.join("tb_logger", NAME)}')
    return 0 if last['psnr'] > bic else 1


if __name__ == '__main__':
    sys.exit(main())
