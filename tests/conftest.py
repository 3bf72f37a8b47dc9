"""Shared fixtures: small DIV2K-shaped folders made from scikit-image's photographs; running the entries."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml
from skimage import data as skimage_data

import wdsr_basicsr  # noqa: F401  (compat first: basicsr is importable in every test module)

REPO = Path(__file__).resolve().parent.parent
OPTIONS = REPO / 'options'
TRAIN = str(REPO / 'wdsr_basicsr' / 'train.py')
TEST = str(REPO / 'wdsr_basicsr' / 'test.py')

# HR crops of real photographs (BGR, uint8). Sizes are not multiples of 12 on purpose.
TRAIN_CROPS = {'0001': ('astronaut', 130, 110), '0002': ('coffee', 100, 150)}
VALID_CROPS = {'0801': ('chelsea', 101, 97)}


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: multi-process and end-to-end runs; pytest -m "not slow" leaves them out')


def photo(name, h, w):
    return cv2.cvtColor(getattr(skimage_data, name)()[:h, :w], cv2.COLOR_RGB2BGR)


def write_hr(root, split, crops):
    folder = root / f'DIV2K_{split}_HR'
    folder.mkdir(parents=True)
    for stem, (name, h, w) in crops.items():
        cv2.imwrite(str(folder / f'{stem}.png'), photo(name, h, w))


@pytest.fixture
def div2k_hr(tmp_path):
    """A DIV2K-shaped folder with HR images only."""
    root = tmp_path / 'DIV2K'
    write_hr(root, 'train', TRAIN_CROPS)
    write_hr(root, 'valid', VALID_CROPS)
    return root


def make_lmdbs(root, scales, valid=VALID_CROPS):
    """DIV2K-shaped LMDBs (48 px sub-images every 24 px) of the fixture photographs under ``root``."""
    from wdsr_basicsr.prepare.div2k import prepare
    write_hr(root, 'train', TRAIN_CROPS)
    write_hr(root, 'valid', valid)
    prepare(str(root), tuple(scales), crop_size=48, step=24, workers=2)
    return root


def write_options(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


def cpu_env(extra=None):
    """The environment of a command run on the CPU: no GPU visible, one thread per process, plus ``extra``."""
    return dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', **(extra or {}))


def run(args, cwd, timeout=300, env=None):
    """Run a command on the CPU (:func:`cpu_env`), capturing its output."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=cpu_env(env))


def popen(args, cwd, env=None):
    """Start a command on the CPU (:func:`cpu_env`) in the background, its output piped."""
    return subprocess.Popen(args, cwd=cwd, env=cpu_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def torchrun(*args, nproc=2):
    """``python -m torch.distributed.run --standalone --nproc_per_node=N`` + args."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', *args]
