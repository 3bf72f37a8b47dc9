"""``cache_data``: samples cropped from images decoded once, drawn as the authors draw them; a cache that never lies."""

import json
import os
import pickle
import random
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from helpers import OPTIONS, TRAIN, photo, run, write_options
from wdsr_basicsr.data import decoded_cache
from wdsr_basicsr.data.lmdb_util import shared_lmdb
from wdsr_basicsr.options import load_options

DEMO = OPTIONS / 'demo_wdsr_b_x2.yml'


def train_options(gt, lq, **changes):
    """The demo file's training set (its own switches), on other data."""
    opt = dict(
        load_options(DEMO)['datasets']['train'],
        phase='train',
        scale=2,
        dataroot_gt=str(gt),
        dataroot_lq=str(lq),
        gt_size=24,
    )
    opt.update(changes)
    return opt


def lmdb_options(lmdb_root, tmp_path, **changes):
    return train_options(
        lmdb_root / 'DIV2K_train_HR_sub.lmdb',
        lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb',
        io_backend={'type': 'lmdb'},
        cache_dir=str(tmp_path / 'cache'),
        **changes,
    )


def find(patch, image):
    """Every (top, left) where ``patch`` lies in ``image`` exactly."""
    ph, pw = patch.shape[:2]
    return [
        (top, left)
        for top in range(image.shape[0] - ph + 1)
        for left in range(image.shape[1] - pw + 1)
        if np.array_equal(image[top : top + ph, left : left + pw], patch)
    ]


def to_bgr_uint8(t):
    return cv2.cvtColor((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR)


def test_demo_file_samples_from_the_cache_as_the_authors():
    train = load_options(DEMO)['datasets']['train']
    assert train['cache_data'] is True and train['sampling'] == 'image'


def test_samples_are_aligned_crops_of_the_whole_source_images(tmp_path):
    """From folders of whole images (DIV2K as downloaded), every sample is a crop of its image at aligned places."""
    hr, lr = tmp_path / 'HR', tmp_path / 'LR'
    hr.mkdir(), lr.mkdir()
    sources = {'0001': photo('astronaut', 131, 97), '0002': photo('coffee', 60, 200)}  # HR not a multiple of 2
    for stem, img in sources.items():
        cv2.imwrite(str(hr / f'{stem}.png'), img)
        small = cv2.resize(
            img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA
        )
        cv2.imwrite(str(lr / f'{stem}x2.png'), small)
    opt = train_options(hr, lr, io_backend={'type': 'disk'}, filename_tmpl='{}x2', use_hflip=False, use_rot=False)
    dataset = build_dataset(opt)
    assert len(dataset) == 2  # an epoch: each image once
    random.seed(0)
    for index in (0, 1, 0, 1, 1):
        sample = dataset[index]
        stem = os.path.basename(sample['gt_path'])[:4]
        gt, lq = to_bgr_uint8(sample['gt']), to_bgr_uint8(sample['lq'])
        lq_source = cv2.imread(str(lr / f'{stem}x2.png'))
        places = find(lq, lq_source)
        assert places, stem
        top, left = places[0]
        assert np.array_equal(gt, sources[stem][2 * top : 2 * top + 24, 2 * left : 2 * left + 24])


def sub_image_lmdbs(tmp_path):
    """Sub-image LMDBs (keys <image>_s<n>) of one large image (9 sub-images) and one small one (1)."""
    hr, lq = {}, {}
    big, small = photo('astronaut', 144, 144), photo('coffee', 48, 48)
    for n, (top, left) in enumerate(((top, left) for top in (0, 48, 96) for left in (0, 48, 96)), 1):
        hr[f'big_s{n:03d}'] = big[top : top + 48, left : left + 48]
    hr['small_s001'] = small
    for key, img in hr.items():
        lq[key] = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    roots = []
    for name, images in (('hr', hr), ('lq', lq)):
        folder = tmp_path / f'{name}_png'
        folder.mkdir()
        for key, img in images.items():
            cv2.imwrite(str(folder / f'{key}.png'), img)
        keys = sorted(images)
        make_lmdb_from_imgs(str(folder), str(tmp_path / f'{name}.lmdb'), [f'{k}.png' for k in keys], keys)
        roots.append(tmp_path / f'{name}.lmdb')
    return roots


def test_each_image_equally_often_not_each_sub_image(tmp_path):
    gt, lq = sub_image_lmdbs(tmp_path)
    common = dict(io_backend={'type': 'lmdb'}, cache_dir=str(tmp_path / 'cache'))
    by_image = build_dataset(train_options(gt, lq, **common))
    assert len(by_image) == 2  # big and small, once each per epoch
    picked = {by_image[i]['gt_path'].split('_')[0] for i in range(2)}
    assert picked == {'big', 'small'}
    # within an image each sub-image is weighted by its crop positions: (24 - 12 + 1) ** 2 each
    assert sorted(map(sorted, by_image.weights)) == [[169], [169] * 9]
    by_record = build_dataset(train_options(gt, lq, sampling='record', **common))
    assert len(by_record) == 10  # basicsr's: each stored record once per epoch (the big image 9 times as often)


def test_record_sampling_gives_basicsr_s_own_samples(lmdb_root, tmp_path):
    """With sampling: record the cache changes nothing but speed: basicsr's PairedImageDataset, same seed."""
    cached = build_dataset(lmdb_options(lmdb_root, tmp_path, sampling='record'))
    plain_opt = lmdb_options(lmdb_root, tmp_path)
    for key in ('cache_data', 'sampling', 'cache_dir', 'type'):
        plain_opt.pop(key, None)
    plain = PairedImageDataset(plain_opt)
    assert len(cached) == len(plain)
    for index in (0, 5, 17, 30):
        random.seed(index)
        ours = cached[index]
        random.seed(index)
        theirs = plain[index]
        assert ours['gt_path'] == theirs['gt_path']
        assert torch.equal(ours['gt'], theirs['gt']) and torch.equal(ours['lq'], theirs['lq'])


def test_validation_images_equal_basicsr_s(lmdb_root, tmp_path):
    opt = dict(
        name='val',
        type='CheckedPairedImageDataset',
        phase='val',
        scale=2,
        io_backend={'type': 'lmdb'},
        dataroot_gt=str(lmdb_root / 'DIV2K_valid_HR.lmdb'),
        dataroot_lq=str(lmdb_root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
    )
    cached = build_dataset(dict(opt, cache_data=True, cache_dir=str(tmp_path)))
    plain = PairedImageDataset({k: v for k, v in opt.items() if k != 'type'})
    assert len(cached) == len(plain)
    for ours, theirs in zip(cached, plain):
        assert torch.equal(ours['gt'], theirs['gt']) and torch.equal(ours['lq'], theirs['lq'])


def test_cache_is_reused_while_the_source_is_unchanged_and_rebuilt_after(lmdb_root, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(lmdb_root / 'DIV2K_train_HR_sub.lmdb', data / 'hr.lmdb')
    shutil.copytree(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', data / 'lq.lmdb')
    opt = train_options(data / 'hr.lmdb', data / 'lq.lmdb', io_backend={'type': 'lmdb'})
    build_dataset(dict(opt))
    pixels = data / 'hr.lmdb.decoded' / 'images.u8'  # beside the data by default
    first = os.stat(pixels).st_mtime_ns
    build_dataset(dict(opt))
    assert os.stat(pixels).st_mtime_ns == first  # reused, not written again
    os.utime(data / 'hr.lmdb' / 'data.mdb', ns=(1, 1))  # the source changed
    build_dataset(dict(opt))
    index = json.loads((data / 'hr.lmdb.decoded' / 'index.json').read_text())
    assert index['source']['files']['data.mdb'][1] == 1  # rebuilt from the source as it is now


@pytest.mark.parametrize('leftover', ['no index', 'half an index', 'pixels cut short'])
def test_cache_left_by_a_killed_run_is_rebuilt(lmdb_root, tmp_path, leftover):
    opt = lmdb_options(lmdb_root, tmp_path)
    reference = build_dataset(dict(opt)).caches['gt']
    folder = reference.folder
    expected = {key: np.array(reference[key]) for key in reference.index}
    if leftover == 'no index':
        os.remove(os.path.join(folder, 'index.json'))
    elif leftover == 'half an index':
        with open(os.path.join(folder, 'index.json'), 'r+') as f:
            f.truncate(os.path.getsize(f.name) // 2)
    else:
        with open(os.path.join(folder, 'images.u8'), 'r+') as f:
            f.truncate(100)
    rebuilt = build_dataset(dict(opt)).caches['gt']
    assert all(np.array_equal(rebuilt[key], value) for key, value in expected.items())


def test_records_decode_to_the_lmdb_s_images(lmdb_root, tmp_path):
    cache = build_dataset(lmdb_options(lmdb_root, tmp_path)).caches['gt']
    with shared_lmdb(str(lmdb_root / 'DIV2K_train_HR_sub.lmdb')).begin() as txn:  # py-lmdb: one handle a process
        for key in cache.index:
            img = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_COLOR)
            assert np.array_equal(cache[key], img)


def test_too_little_memory_is_refused_before_anything_is_written(lmdb_root, tmp_path, monkeypatch):
    monkeypatch.setattr(decoded_cache, 'available_memory', lambda: 1000)
    with pytest.raises(MemoryError, match=r'DIV2K_train_HR_sub.lmdb need 0\.00 GiB of memory and 0\.00 GiB'):
        build_dataset(lmdb_options(lmdb_root, tmp_path))
    assert not list((tmp_path / 'cache').rglob('images.u8*'))


def test_workers_get_the_file_not_a_copy(lmdb_root, tmp_path):
    cache = build_dataset(lmdb_options(lmdb_root, tmp_path)).caches['gt']
    key = next(iter(cache.index))
    cache[key]  # mapped in this process
    state = pickle.dumps(cache)
    assert len(state) < cache.nbytes / 10
    assert np.array_equal(pickle.loads(state)[key], cache[key])


def test_sampling_without_cache_data_is_refused(lmdb_root, tmp_path):
    opt = lmdb_options(lmdb_root, tmp_path, cache_data=False, sampling='image')
    with pytest.raises(ValueError, match='sampling is read with cache_data: true only'):
        build_dataset(opt)
    with pytest.raises(ValueError, match="sampling='area'; use image"):
        build_dataset(lmdb_options(lmdb_root, tmp_path, sampling='area'))


def test_a_turned_jpeg_is_cached_as_basicsr_reads_it(tmp_path):
    """A JPEG whose EXIF says 'rotate 90': OpenCV (so basicsr) turns it; the cache holds it turned, not refused."""
    from basicsr.utils import imfrombytes
    from PIL import Image

    hr, lr = tmp_path / 'HR', tmp_path / 'LR'
    hr.mkdir(), lr.mkdir()
    img = photo('astronaut', 64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to view
    Image.fromarray(img[:, :, ::-1]).save(hr / '0001.jpg', exif=exif, quality=95)
    turned = imfrombytes((hr / '0001.jpg').read_bytes())  # basicsr's own reading
    assert turned.shape[:2] == (48, 64)
    cv2.imwrite(str(lr / '0001x2.jpg'), cv2.resize(turned, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    opt = train_options(hr, lr, io_backend={'type': 'disk'}, filename_tmpl='{}x2', phase='val')
    cache = build_dataset(dict(opt, cache_data=True)).caches['gt']
    assert np.array_equal(cache['0001.jpg'], turned)


def test_gt_and_lq_together_must_fit(lmdb_root, tmp_path, monkeypatch):
    """Each set alone fits, both together do not: refused at the LQ set, naming what is held already."""
    cache_dir = tmp_path / 'cache'
    gt = build_dataset(lmdb_options(lmdb_root, tmp_path)).caches['gt'].nbytes
    shutil.rmtree(cache_dir)
    monkeypatch.setattr(decoded_cache, 'available_memory', lambda: gt + 1000)  # GT fits, LQ (a quarter) not beside
    with pytest.raises(MemoryError, match=r'DIV2K_train_LR_bicubic_X2_sub.lmdb need .* \(and .* GiB held already\)'):
        build_dataset(lmdb_options(lmdb_root, tmp_path))


@pytest.mark.parametrize(
    'change, message',
    [
        ({'sampling': 'area'}, "datasets:train: sampling='area'; use image"),
        ({'cache_data': False}, 'datasets:train: sampling is read with cache_data: true only'),
        (
            {'io_backend': {'type': 'memcached'}},
            "datasets:train: cache_data reads io_backend lmdb or disk, not 'memcached'",
        ),
    ],
)
def test_bad_cache_options_stop_the_entry_before_any_work(tmp_path, change, message):
    opt = load_options(DEMO)
    opt['datasets']['train'].update(change)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'c.yml', opt)], tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / 'experiments').exists()
