"""The embedded demo set: scikit-image photographs arranged and prepared like DIV2K."""

import os

import cv2
import numpy as np
from skimage import data as skimage_data

from wdsr_basicsr.prepare.demo import DEMO_CROP_SIZE, DEMO_STEP, TRAIN_PHOTOS, VALID_PHOTOS, make_demo_data
from wdsr_basicsr.prepare.lmdb import crop_positions


def test_demo_set(tmp_path):
    root = tmp_path / 'demo'
    written = make_demo_data(str(root), scales=(2,), workers=2)
    assert sorted(os.path.basename(p) for p in written) == [
        'DIV2K_train_HR_sub.lmdb',
        'DIV2K_train_LR_bicubic_X2_sub.lmdb',
        'DIV2K_valid_HR.lmdb',
        'DIV2K_valid_LR_bicubic_X2.lmdb',
    ]
    # the photographs, in DIV2K's numbering, validation ones kept out of training
    assert sorted(os.listdir(root / 'DIV2K_train_HR')) == [f'{i:04d}.png' for i in range(1, len(TRAIN_PHOTOS) + 1)]
    assert sorted(os.listdir(root / 'DIV2K_valid_HR')) == [f'{801 + i:04d}.png' for i in range(len(VALID_PHOTOS))]
    chelsea = cv2.imread(str(root / 'DIV2K_valid_HR' / '0801.png'))[:, :, ::-1]
    assert np.array_equal(chelsea, skimage_data.chelsea())
    # sub-image count by hand: each photo cropped to a multiple of 12, then BasicSR's crop rule
    expected = 0
    for name in TRAIN_PHOTOS:
        h, w = getattr(skimage_data, name)().shape[:2]
        expected += len(crop_positions(h // 12 * 12, DEMO_CROP_SIZE, DEMO_STEP)) * len(
            crop_positions(w // 12 * 12, DEMO_CROP_SIZE, DEMO_STEP)
        )
    lines = open(root / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt').read().splitlines()
    assert len(lines) == expected == 209
    assert make_demo_data(str(root), scales=(2,), workers=2) == []  # rerun: nothing to do
