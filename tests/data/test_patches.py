"""A training patch drawn by one rule: basicsr's draws and values on the host, the same values gathered on a device."""

import logging
import random

import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.models import build_model
from test_sampling import lmdb_train

from helpers import OPTIONS, model_options, photo
from wdsr_basicsr.data.patches import DevicePatches, cut_patch, draw_patch
from wdsr_basicsr.options import load_options
from wdsr_basicsr.options.parse import derive_options

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


def test_a_loader_of_draws_feeds_the_model_the_loaders_patches(lmdb_root, tmp_path):
    """cache_device (here 'cpu', as 'cuda' on a GPU run): the samples are draws (the same, from the same worker
    seeds: 2 workers) and WDSRModel.feed_data cuts the very patches the pixel loader gives."""
    batches = {}
    for device in (None, 'cpu'):
        opt = lmdb_train(lmdb_root, tmp_path, cache_device=device, num_worker_per_gpu=2, batch_size_per_gpu=4)
        dataset = build_dataset(opt)
        assert (dataset.device_set is not None) == (device is not None)
        sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
        sampler.set_epoch(3)
        torch.manual_seed(5)  # the loader draws its workers' seeds from torch's generator
        loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0)
        batches[device] = [batch for _, batch in zip(range(3), loader)]
    model = build_model(model_options(tmp_path / 'model'))
    for pixels, draws in zip(batches[None], batches['cpu']):
        assert 'lq' not in draws and draws['patch_draw'].shape == (4, 5)
        model.feed_data(draws)
        assert torch.equal(model.lq, pixels['lq']) and torch.equal(model.gt, pixels['gt'])


def test_cache_device_stays_on_the_host_where_only_the_host_can_sample(lmdb_root, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger='basicsr'):
        dataset = build_dataset(lmdb_train(lmdb_root, tmp_path, cache_device='cpu', color='y'))
    assert dataset.device_set is None
    assert 'patches are cut on the host: color: y and mean/std are applied on the host' in caplog.text


@pytest.mark.parametrize('num_gpu', [0, 1])
def test_a_gpu_run_pins_batches_and_keeps_a_cached_set_on_the_gpu(num_gpu):
    """derive_options on the x2 recipe: on GPUs its training set gets pin_memory and cache_device: cuda (where
    the file says nothing); its validation set and a CPU run get neither."""
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt['num_gpu'] = num_gpu
    derive_options(opt, '/tmp', is_train=True)
    train, val = opt['datasets']['train'], opt['datasets']['val']
    assert (train.get('pin_memory'), train.get('cache_device')) == ((True, 'cuda') if num_gpu else (None, None))
    assert 'pin_memory' not in val and 'cache_device' not in val
