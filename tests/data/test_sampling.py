"""How training samples are drawn: uniform positions over whole images (also from sub-image LMDBs), new each epoch."""

import json
import logging
import shutil

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler

from helpers import OPTIONS, TRAIN_CROPS
from wdsr_basicsr.data.lmdb_util import shared_lmdb
from wdsr_basicsr.options import load_options

DEMO = OPTIONS / 'demo_wdsr_b_x2.yml'
HR_LMDB, LQ_LMDB = 'DIV2K_train_HR_sub.lmdb', 'DIV2K_train_LR_bicubic_X2_sub.lmdb'


def lmdb_train(root, tmp_path, **changes):
    """The demo file's training set (its own switches) on the fixture's sub-image LMDBs, 24 px HR patches."""
    opt = dict(
        load_options(DEMO)['datasets']['train'],
        phase='train',
        scale=2,
        dataroot_gt=str(root / HR_LMDB),
        dataroot_lq=str(root / LQ_LMDB),
        io_backend={'type': 'lmdb'},
        gt_size=24,
        cache_dir=str(tmp_path / 'cache'),
    )
    opt.pop('filename_tmpl')
    opt.update(changes)
    return opt


def to_bgr_uint8(t):
    return cv2.cvtColor((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)


def test_prepare_records_where_each_sub_image_lies(lmdb_root):
    """Each record of every training LMDB is the source image's pixels at the place sub_images.json gives."""
    for name, source, s in ((HR_LMDB, 'DIV2K_train_HR/{}.png', 1), (LQ_LMDB, 'DIV2K_train_LR_bicubic/X2/{}x2.png', 2)):
        record = json.loads((lmdb_root / name / 'sub_images.json').read_text())
        assert sorted(record['images']) == sorted(TRAIN_CROPS)
        with shared_lmdb(str(lmdb_root / name)).begin() as txn:
            for stem, entry in record['images'].items():
                image = cv2.imread(str(lmdb_root / source.format(stem)))
                _, h, w = TRAIN_CROPS[stem]
                assert entry['size'] == [h // 12 * 12 // s, w // 12 * 12 // s]  # cropped to a multiple of 12
                for key, (top, left) in entry['sub_images'].items():
                    part = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_COLOR)
                    assert np.array_equal(part, image[top : top + part.shape[0], left : left + part.shape[1]]), key


def test_sub_images_are_put_back_into_their_images(lmdb_root, tmp_path):
    dataset = build_dataset(lmdb_train(lmdb_root, tmp_path))
    assert len(dataset) == len(TRAIN_CROPS)  # an epoch: each image once
    for stem, (_, h, w) in TRAIN_CROPS.items():
        hr = cv2.imread(str(lmdb_root / 'DIV2K_train_HR' / f'{stem}.png'))
        lr = cv2.imread(str(lmdb_root / 'DIV2K_train_LR_bicubic' / 'X2' / f'{stem}x2.png'))
        h, w = h // 12 * 12, w // 12 * 12
        assert np.array_equal(dataset.caches['gt'][stem], hr[:h, :w])
        assert np.array_equal(dataset.caches['lq'][stem], lr[: h // 2, : w // 2])


def position_density(dataset, lr, draws, grid=4):
    """Max / min over a grid x grid split of the LQ crop positions of image 0, of draws per position."""
    lq_size = dataset.opt['gt_size'] // dataset.opt['scale']
    rows, cols = lr.shape[0] - lq_size + 1, lr.shape[1] - lq_size + 1
    counts = np.zeros((rows, cols))
    for _ in range(draws):
        lq = to_bgr_uint8(dataset[0]['lq'])
        match = cv2.matchTemplate(lr, lq, cv2.TM_SQDIFF)
        top, left = np.unravel_index(np.argmin(match), match.shape)
        assert np.array_equal(lr[top : top + lq_size, left : left + lq_size], lq)  # an exact crop of the source
        counts[top, left] += 1
    bands = [np.array_split(np.arange(n), grid) for n in (rows, cols)]
    density = [[counts[np.ix_(r, c)].mean() for c in bands[1]] for r in bands[0]]
    return np.max(density) / np.min(density)


def test_positions_are_uniform_over_the_whole_image_from_sub_images(lmdb_root, tmp_path, caplog):
    """Located in the source image (cv2.matchTemplate), 6000 sampled patches fall evenly on a 4x4 grid; the
    same LMDBs without their record of places draw the overlaps more often, and a warning says so."""
    torch.manual_seed(0)
    lr = cv2.imread(str(lmdb_root / 'DIV2K_train_LR_bicubic' / 'X2' / '0001x2.png'))
    lr = lr[: TRAIN_CROPS['0001'][1] // 12 * 6, : TRAIN_CROPS['0001'][2] // 12 * 6]
    opt = lmdb_train(lmdb_root, tmp_path, use_hflip=False, use_rot=False)
    assert position_density(build_dataset(opt), lr, 6000) <= 1.5
    bare = tmp_path / 'bare'
    for name in (HR_LMDB, LQ_LMDB):
        shutil.copytree(lmdb_root / name, bare / name)
        (bare / name / 'sub_images.json').unlink()
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        uneven = build_dataset(lmdb_train(bare, tmp_path, use_hflip=False, use_rot=False))
    assert f'2 images of {bare / LQ_LMDB} are stored as sub-images with no complete sub_images.json' in caplog.text
    assert position_density(uneven, lr, 6000) > 1.5


@pytest.mark.parametrize(
    'hostile, message',
    [
        ('not json', r'sub_images.json is not a record of sub-images'),
        ('a key missing', r'sub_images.json places no sub-image for 1 keys \(e.g. \[.0001_s001.\]\)'),
        ('moved', r'the sub_images.json of dataroot_gt and dataroot_lq place 0001_s001 differently at scale 2'),
        ('outside', r'HR_sub.lmdb/sub_images.json places 0001_s001 \(48x48\) at 2000,0, outside 0001 \(108x120\)'),
    ],
)
def test_a_wrong_record_of_places_is_refused_naming_it(lmdb_root, tmp_path, hostile, message):
    data = tmp_path / 'data'
    for name in (HR_LMDB, LQ_LMDB):
        shutil.copytree(lmdb_root / name, data / name)
    path = data / LQ_LMDB / 'sub_images.json'
    record = json.loads(path.read_text())
    parts = record['images']['0001']['sub_images']
    if hostile == 'not json':
        path.write_text('{"version": 1, "images": ')
    else:
        if hostile == 'a key missing':
            del parts['0001_s001']
        elif hostile == 'moved':
            parts['0001_s001'] = [parts['0001_s001'][0] + 1, parts['0001_s001'][1]]
        else:
            parts['0001_s001'] = [0, 1000]
            hr_path = data / HR_LMDB / 'sub_images.json'
            hr = json.loads(hr_path.read_text())
            hr['images']['0001']['sub_images']['0001_s001'] = [0, 2000]
            hr_path.write_text(json.dumps(hr))
        path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message):
        build_dataset(lmdb_train(data, tmp_path))


def expected_distinct(outcomes, draws):
    """Expected number of distinct values among ``draws`` independent uniform draws from ``outcomes`` values."""
    return outcomes * (1 - (1 - 1 / outcomes) ** draws)


@pytest.mark.parametrize('dataset_type', ['cached', 'basicsr'])
@pytest.mark.parametrize('persistent', [False, True])
def test_every_epoch_draws_new_patches(lmdb_root, tmp_path, dataset_type, persistent):
    """basicsr's loader with 2 workers over 12 epochs: as many distinct patches of each image as independent
    draws give (8 flips and turns times the crop positions), not one epoch's patches repeated."""
    if dataset_type == 'cached':
        opt = lmdb_train(lmdb_root, tmp_path)
    else:  # basicsr's own dataset: each sub-image equally often, decoded per sample
        opt = {
            k: v for k, v in lmdb_train(lmdb_root, tmp_path).items() if k not in ('cache_data', 'sampling', 'cache_dir')
        }
        opt['type'] = 'PairedImageDataset'
    opt.update(name='train', num_worker_per_gpu=2, batch_size_per_gpu=4, persistent_workers=persistent)
    opt['dataset_enlarge_ratio'] = 8 if dataset_type == 'cached' else 1
    torch.manual_seed(0)
    dataset = build_dataset(opt)
    sampler = EnlargedSampler(dataset, 1, 0, opt['dataset_enlarge_ratio'])
    loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=0)
    patches: dict[str, list[bytes]] = {}
    for epoch in range(12):
        sampler.set_epoch(epoch)
        for batch in loader:
            for path, lq in zip(batch['gt_path'], batch['lq']):
                patches.setdefault(path, []).append(lq.numpy().tobytes())
    lq_size = opt['gt_size'] // 2
    distinct = expected = 0.0
    for path, seen in patches.items():
        key = path.split('/')[-1]
        h, w = dataset.caches['lq'].shape(key) if dataset_type == 'cached' else (24, 24)  # the fixture's sub-images
        distinct += len(set(seen))
        expected += expected_distinct(8 * (h - lq_size + 1) * (w - lq_size + 1), len(seen))
    assert distinct >= 0.97 * expected, (distinct, expected)
