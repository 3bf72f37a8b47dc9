"""A training patch drawn by one rule: basicsr's draws and values on the host, the same values gathered on a device."""

import random

import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.data.transforms import augment, paired_random_crop
from test_sampling import lmdb_train

from helpers import photo
from wdsr_basicsr.data.patches import DevicePatches, cut_patch, draw_patch

FLIPS = [(True, True), (True, False), (False, True), (False, False)]


@pytest.mark.parametrize('use_hflip, use_rot', FLIPS)
@pytest.mark.parametrize('scale', [2, 3])
def test_draws_and_cuts_are_basicsrs(use_hflip, use_rot, scale):
    """From the same state of Python's random: basicsr's paired_random_crop + augment and draw_patch + cut_patch
    give the same patches and leave the same state (the same calls)."""
    gt = photo('astronaut', 60 * scale, 50 * scale)
    lq = photo('coffee', 60, 50)
    gt_size = 8 * scale
    for seed in range(40):
        random.seed(seed)
        theirs = paired_random_crop(gt.copy(), lq.copy(), gt_size, scale, 'gt.png')
        theirs = augment([theirs[0].copy(), theirs[1].copy()], use_hflip, use_rot)
        after_theirs = random.random()
        random.seed(seed)
        draw = draw_patch(random, lq.shape[:2], gt_size // scale, use_hflip, use_rot)
        ours = cut_patch(gt, draw, gt_size, scale), cut_patch(lq, draw, gt_size // scale)
        assert random.random() == after_theirs
        for a, b in zip(ours, theirs):
            assert np.array_equal(a, b)


@pytest.mark.parametrize('use_hflip, use_rot', FLIPS)
def test_device_patches_equal_the_loaders_samples(lmdb_root, tmp_path, use_hflip, use_rot):
    """The demo file's training set with cache_data (whole images put back from the sub-image LMDBs): each sample
    the dataset gives after random.seed(s), gathered on a device from the draws of random.Random(s)."""
    dataset = build_dataset(lmdb_train(lmdb_root, tmp_path, use_hflip=use_hflip, use_rot=use_rot))
    assert dataset.images is not None  # whole images
    scale, gt_size = dataset.opt['scale'], dataset.opt['gt_size']
    on_device = {
        side: DevicePatches([dataset.caches[side][image] for image in dataset.images], 'cpu') for side in ('gt', 'lq')
    }
    indices, draws, expected = [], [], []
    for seed in range(12):
        index = seed % len(dataset)
        random.seed(seed)
        expected.append(dataset[index])
        shape = dataset.caches['lq'][dataset.images[index]].shape[:2]
        draws.append(draw_patch(random.Random(seed), shape, gt_size // scale, use_hflip, use_rot))
        indices.append(index)
    images, rows = torch.tensor(indices), torch.tensor(draws, dtype=torch.int64)
    gt = on_device['gt'].gather(images, rows, gt_size, scale)
    lq = on_device['lq'].gather(images, rows, gt_size // scale)
    assert torch.equal(gt, torch.stack([e['gt'] for e in expected]))
    assert torch.equal(lq, torch.stack([e['lq'] for e in expected]))
    assert any(d.rot90 for d in draws) == use_rot  # the flips were exercised where allowed
