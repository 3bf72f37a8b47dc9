"""``cache_data``: samples cropped from images decoded once, drawn as the authors draw them; a cache that never lies."""

import copy
import gc
import os
import pickle
import random
import shutil
import subprocess
import sys

import cv2
import lmdb as lmdb_module
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

from helpers import OPTIONS, TRAIN, TRAIN_CROPS, photo, run, write_options
from wdsr_basicsr.cache import main as cache_cli
from wdsr_basicsr.data import cache_admin, cache_open, decoded_cache
from wdsr_basicsr.data.lmdb_util import shared_lmdb
from wdsr_basicsr.data.paired_dataset import CheckedPairedImageDataset
from wdsr_basicsr.options import OptionError, load_options, parse_options

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


def test_cache_is_reused_while_the_source_is_unchanged_and_another_made_after(lmdb_root, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(lmdb_root / 'DIV2K_train_HR_sub.lmdb', data / 'hr.lmdb')
    shutil.copytree(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', data / 'lq.lmdb')
    opt = train_options(data / 'hr.lmdb', data / 'lq.lmdb', io_backend={'type': 'lmdb'}, sampling='record')
    first = build_dataset(dict(opt)).caches['gt'].folder
    assert os.path.dirname(first) == str(data)  # beside the data by default
    pixels = os.path.join(first, 'images.u8')
    written = os.stat(pixels).st_mtime_ns
    del first
    gc.collect()
    assert build_dataset(dict(opt)).caches['gt'].folder == os.path.join(str(data), os.path.basename(pixels[:-10]))
    assert os.stat(pixels).st_mtime_ns == written  # reused, not written again
    gc.collect()
    rewrite_record(data / 'hr.lmdb', changed=True)  # the content changed: another cache, the old one removed
    dataset = build_dataset(dict(opt))
    assert dataset.caches['gt'].folder != os.path.dirname(pixels) and not os.path.exists(pixels)
    assert_basicsr_s_samples(dataset, opt)
    del dataset
    gc.collect()
    with pytest.raises(ValueError, match=r'hr.lmdb/sub_images.json: 0001_s002 at 24,0 differs from the sub-images'):
        build_dataset(dict(opt, sampling='image'))  # a flipped sub-image no longer fits its neighbours


def rewrite_record(lmdb, changed):
    """Rewrite one record of an LMDB in place: its pixels flipped left-right (or the same bytes), mtime put back."""
    meta = (lmdb / 'meta_info.txt').read_text().splitlines()
    key = meta[0].split('.')[0]
    stat = os.stat(lmdb / 'data.mdb')
    shared_lmdb(str(lmdb)).close()  # py-lmdb: one environment a process; the shared one reopens when needed
    env = lmdb_module.open(str(lmdb), map_size=1 << 30)
    with env.begin(write=True) as txn:
        img = cv2.imdecode(np.frombuffer(txn.get(key.encode()), np.uint8), cv2.IMREAD_COLOR)
        txn.put(key.encode(), cv2.imencode('.png', img[:, ::-1] if changed else img)[1].tobytes())
    env.close()
    os.utime(lmdb / 'data.mdb', ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return key


def basicsr_dataset(opt):
    """basicsr's own PairedImageDataset over the same files, read afresh."""
    plain = {k: copy.deepcopy(v) for k, v in opt.items() if k not in ('cache_data', 'sampling', 'cache_dir', 'type')}
    return PairedImageDataset(dict(plain, phase='val'))


def assert_basicsr_s_samples(dataset, opt):
    """Every cached image equals the image basicsr's PairedImageDataset reads from the files now (whole images)."""
    theirs = basicsr_dataset(opt)
    for index, pair in enumerate(theirs.paths):
        sample = theirs[index]
        for side in ('gt', 'lq'):
            key = dataset._cache_key(pair[f'{side}_path'], getattr(dataset, f'{side}_folder'))
            assert np.array_equal(
                to_bgr_uint8(sample[side]), dataset.caches[side][key][: sample[side].shape[1], : sample[side].shape[2]]
            ), key


def whole_image_folders(root, photos, ext='.png'):
    """HR and LR (x2, INTER_AREA) folders of whole images, DIV2K's names; returns (hr, lr)."""
    hr, lr = root / 'HR', root / 'LR'
    hr.mkdir(parents=True), lr.mkdir(parents=True)
    for stem, (name, h, w) in photos.items():
        img = photo(name, h, w)
        cv2.imwrite(str(hr / f'{stem}{ext}'), img)
        cv2.imwrite(str(lr / f'{stem}x2{ext}'), cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return hr, lr


def folder_options(hr, lr, **changes):
    return train_options(hr, lr, io_backend={'type': 'disk'}, filename_tmpl='{}x2', phase='val', **changes)


def test_two_roots_with_one_last_name_under_one_cache_dir(tmp_path):
    """dsA/data/HR and dsB/data/HR (DIV2K's and Flickr2K's .../X2): each dataset reads its own files."""
    cache_dir = tmp_path / 'cache'
    a = folder_options(
        *whole_image_folders(tmp_path / 'dsA' / 'data', {'0001': ('astronaut', 64, 48)}), cache_dir=str(cache_dir)
    )
    b = folder_options(
        *whole_image_folders(tmp_path / 'dsB' / 'data', {'0001': ('coffee', 64, 48)}), cache_dir=str(cache_dir)
    )
    first, second = build_dataset(dict(a, cache_data=True)), build_dataset(dict(b, cache_data=True))
    assert first.caches['gt'].folder != second.caches['gt'].folder
    assert_basicsr_s_samples(first, a)
    assert_basicsr_s_samples(second, b)
    del first, second
    gc.collect()
    again = build_dataset(dict(a, cache_data=True))  # no rebuild either: both caches stay
    assert len(list(cache_dir.glob('*.decoded'))) == 4
    assert_basicsr_s_samples(again, a)


def subset_options(tmp_path, stems):
    hr, lr = tmp_path / 'HR', tmp_path / 'LR'
    if not hr.exists():
        whole_image_folders(
            tmp_path, {'0001': ('astronaut', 64, 48), '0002': ('coffee', 40, 60), '0003': ('chelsea', 50, 50)}
        )
    meta = tmp_path / f'meta_{"".join(stems)}.txt'
    meta.write_text(''.join(f'{stem}.png\n' for stem in stems))
    return folder_options(hr, lr, meta_info_file=str(meta), cache_dir=str(tmp_path / 'cache'), cache_data=True)


def test_two_subsets_of_one_root_each_read_their_own_images(tmp_path):
    """Train and val on one folder with different meta_info_files, built one after the other, then both read."""
    one, two = subset_options(tmp_path, ['0001', '0002']), subset_options(tmp_path, ['0003', '0002'])
    first = build_dataset(dict(one))
    mapped = {key: first.caches['gt'][key] for key in first.caches['gt'].index}  # read before the second build
    stat = os.stat(os.path.join(first.caches['gt'].folder, 'images.u8'))
    second = build_dataset(dict(two))
    assert set(second.caches['gt'].index) == {'0002.png', '0003.png'}
    after = os.stat(os.path.join(first.caches['gt'].folder, 'images.u8'))
    assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # never rewritten
    assert_basicsr_s_samples(first, one)
    assert_basicsr_s_samples(second, two)
    assert all(np.array_equal(mapped[key], cv2.imread(str(tmp_path / 'HR' / key))) for key in mapped)
    same = build_dataset(dict(subset_options(tmp_path, ['0002', '0001'])))  # the same files in another order
    assert same.caches['gt'].folder == first.caches['gt'].folder


@pytest.mark.slow  # two processes
def test_a_second_process_building_while_a_first_reads(tmp_path):
    """Process 1 maps its subset; process 2 builds another subset of the root meanwhile: 1's pixels hold."""
    one, two = subset_options(tmp_path, ['0001', '0002']), subset_options(tmp_path, ['0002', '0003'])
    reader = build_dataset(dict(one))
    script = (
        'import sys, yaml, wdsr_basicsr; from basicsr.data import build_dataset; '
        'd = build_dataset(yaml.safe_load(open(sys.argv[1]))); print(d.caches["gt"].folder)'
    )
    options = write_options(tmp_path / 'two.yml', two)
    result = subprocess.run([sys.executable, '-c', script, options], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() != reader.caches['gt'].folder
    assert_basicsr_s_samples(reader, one)


def test_a_file_rewritten_with_its_size_and_time_put_back(tmp_path):
    """BMP files keep their byte size whatever the pixels: the content's digest, not the stat, names the cache."""
    hr, lr = whole_image_folders(tmp_path, {'0001': ('astronaut', 64, 48)}, ext='.bmp')
    opt = dict(folder_options(hr, lr), cache_data=True)
    first = build_dataset(dict(opt))
    path = lr / '0001x2.bmp'
    stat = os.stat(path)
    cv2.imwrite(str(path), cv2.imread(str(path))[::-1])  # upside down: same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size
    second = build_dataset(dict(opt))
    assert second.caches['lq'].folder != first.caches['lq'].folder
    assert_basicsr_s_samples(second, opt)


DROP_WRITE = ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-all']


def read_only_run(opt_file, tmp_path):
    """Build the dataset in a process that cannot write where the files' modes forbid (root without DAC_OVERRIDE)."""
    script = (
        'import sys, yaml, logging, wdsr_basicsr; logging.basicConfig(level=logging.INFO); '
        'from basicsr.data import build_dataset; '
        'd = build_dataset(yaml.safe_load(open(sys.argv[1]))); '
        'print(d.caches["gt"].folder); print(d.caches["lq"].folder)'
    )
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / 'user_cache'))
    return subprocess.run(
        DROP_WRITE + [sys.executable, '-c', script, opt_file], capture_output=True, text=True, env=env, timeout=120
    )


def snapshot(folder):
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob('*')}


@pytest.mark.slow  # a process without the capability to write anywhere
@pytest.mark.skipif(shutil.which('setpriv') is None, reason='needs setpriv (util-linux)')
@pytest.mark.parametrize('ready', [True, False])
def test_a_read_only_tree(tmp_path, ready):
    """A dataset on storage this user cannot write: its ready cache is used as it is; without one the cache
    goes to the user's cache folder, and the log says where."""
    data = tmp_path / 'data'
    hr, lr = whole_image_folders(data, {'0001': ('astronaut', 64, 48), '0002': ('coffee', 40, 60)})
    opt = dict(folder_options(hr, lr), cache_data=True)
    if ready:
        built = build_dataset(dict(opt))
        folders = {built.caches['gt'].folder, built.caches['lq'].folder}
        del built
        gc.collect()
    before = snapshot(data)
    for path in [data, *data.rglob('*')]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = read_only_run(write_options(tmp_path / 'o.yml', opt), tmp_path)
    finally:
        for path in [data, *data.rglob('*')]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stderr[-3000:]
    used = set(result.stdout.split())
    assert snapshot(data) == before  # nothing written, not even a lock
    user = tmp_path / 'user_cache' / 'wdsr_basicsr'
    if ready:
        assert used == folders and not user.exists()
    else:
        assert {os.path.dirname(folder) for folder in used} == {str(user)}
        assert f'cannot be written: the cache goes to {user}' in result.stderr
        assert_basicsr_s_samples(build_dataset(dict(opt)), opt)  # the user's cache, found again


@pytest.mark.parametrize('leftover', ['no index', 'half an index', 'pixels cut short', 'a killed build'])
def test_cache_left_damaged_or_half_built_is_never_served(lmdb_root, tmp_path, leftover):
    opt = lmdb_options(lmdb_root, tmp_path, sampling='record')
    reference = build_dataset(dict(opt)).caches['gt']
    folder = reference.folder
    del reference
    gc.collect()
    if leftover == 'no index':
        os.remove(os.path.join(folder, 'index.json'))
    elif leftover == 'half an index':
        with open(os.path.join(folder, 'index.json'), 'r+') as f:
            f.truncate(os.path.getsize(f.name) // 2)
    elif leftover == 'pixels cut short':
        with open(os.path.join(folder, 'images.u8'), 'r+') as f:
            f.truncate(100)
    else:  # killed after decoding half into its hidden folder, before the rename
        parent, name = os.path.split(folder)
        shutil.rmtree(folder)
        partial = os.path.join(parent, f'.{name}.x1y2z3.partial')
        os.makedirs(partial)
        open(os.path.join(partial, 'images.u8'), 'wb').close()
    rebuilt = build_dataset(dict(opt))
    assert rebuilt.caches['gt'].folder == folder
    assert not [p for p in os.listdir(os.path.dirname(folder)) if p.endswith(('.partial', '.removed'))]
    assert_basicsr_s_samples(rebuilt, opt)


def test_records_decode_to_the_lmdb_s_images(lmdb_root, tmp_path):
    cache = build_dataset(lmdb_options(lmdb_root, tmp_path, sampling='record')).caches['gt']
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
    with pytest.raises(ValueError, match="datasets:DIV2K:sampling='area' must be one of image, record."):
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


def demo_on(lmdb_root, tmp_path, **changes):
    """The demo file with its training set on the fixture's whole images (as its own are laid out), ``changes``
    in it (a None value removes the key)."""
    opt = load_options(DEMO)
    opt['datasets']['train'].update(
        dataroot_gt=str(lmdb_root / 'DIV2K_train_HR'), dataroot_lq=str(lmdb_root / 'DIV2K_train_LR_bicubic' / 'X2')
    )
    opt['datasets']['val'].update(
        dataroot_gt=str(lmdb_root / 'DIV2K_valid_HR.lmdb'),
        dataroot_lq=str(lmdb_root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
    )
    opt['datasets']['train'].update(gt_size=24, **changes)
    opt['datasets']['train'] = {k: v for k, v in opt['datasets']['train'].items() if v is not None}
    return write_options(tmp_path / 'c.yml', opt)


SIBLING_TRAIN = """import os.path as osp
from basicsr.train import train_pipeline

if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir)))
"""


def entry_command(entry, tmp_path):
    """wdsr-train, ``python -m basicsr.train``, or a sibling plugin's train.py (Real-ESRGAN's, in four lines)."""
    if entry == 'wdsr':
        return [sys.executable, TRAIN]
    if entry == 'basicsr':
        return [sys.executable, '-m', 'basicsr.train']
    (tmp_path / 'sibling_train.py').write_text(SIBLING_TRAIN)
    return [sys.executable, str(tmp_path / 'sibling_train.py')]


def one_line(result):
    # (runpy warns that basicsr's __init__ imported basicsr.train before running it as __main__: basicsr's own)
    return [line for line in result.stderr.splitlines() if "RuntimeWarning: 'basicsr.train' found" not in line]


CACHE_FAULTS = [
    ({'sampling': 'area'}, "datasets:train:sampling='area' must be one of image, record."),
    ({'cache_data': False}, 'datasets:train: sampling is read with cache_data: true only'),
    (
        {'io_backend': {'type': 'memcached'}},
        "datasets:train: cache_data reads io_backend lmdb or disk, not 'memcached'",
    ),
    ({'cache_dir': 5}, 'datasets:train:cache_dir=5 must be a string.'),
    (
        {'cache_data': False, 'sampling': None, 'cache_dir': 'c'},
        'datasets:train: cache_dir is read with cache_data: true only',
    ),
    ({'cache_dir': 'c.yml'}, 'datasets:DIV2K: cache_data: cache_dir c.yml is a file, not a folder.'),
]


def parse_in_process(options, tmp_path, monkeypatch):
    """The entries' own parse_options, in this process (so that the machine can be made small)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', options])
    try:
        return parse_options(str(tmp_path), is_train=True)
    finally:
        assert sorted(p.name for p in tmp_path.iterdir()) == ['c.yml']  # nothing written


@pytest.mark.parametrize('change, message', CACHE_FAULTS)
def test_bad_cache_options_are_one_line_before_any_work(lmdb_root, tmp_path, monkeypatch, change, message):
    with pytest.raises(OptionError) as caught:
        parse_in_process(demo_on(lmdb_root, tmp_path, **change), tmp_path, monkeypatch)
    assert message in str(caught.value) and '\n' not in str(caught.value)


def test_the_entries_data_check_is_not_repeated_by_the_dataset(lmdb_root, tmp_path, monkeypatch):
    """parse_options hashes each side of the training set once; the dataset basicsr builds from those options (a
    deep copy, as basicsr's build_dataset makes) takes what it found; a later dataset of the same options hashes
    again (the data may have changed since)."""
    hashed = []
    identity = decoded_cache.cache_identity

    def counted(root, *rest):
        hashed.append(root)
        return identity(root, *rest)

    monkeypatch.setattr(decoded_cache, 'cache_identity', counted)
    opt, _ = parse_in_process(demo_on(lmdb_root, tmp_path), tmp_path, monkeypatch)
    train = opt['datasets']['train']
    assert sorted(hashed) == sorted([train['dataroot_gt'], train['dataroot_lq']])
    dataset = build_dataset(train)
    assert len(hashed) == 2 and len(dataset.caches['gt'].index) == len(dataset)
    build_dataset(train)
    assert len(hashed) == 4


ENTRY_CASES = [
    pytest.param(entry, *fault, marks=() if (entry, n) == ('wdsr', 3) else pytest.mark.slow, id=f'{entry}-{n}')
    for entry in ('wdsr', 'basicsr', 'sibling')
    for n, fault in ((3, CACHE_FAULTS[3]), (5, CACHE_FAULTS[5]))
]


@pytest.mark.parametrize('entry, change, message', ENTRY_CASES)
def test_cache_faults_are_one_line_through_every_entry(lmdb_root, tmp_path, entry, change, message):
    """wdsr-train, python -m basicsr.train and a sibling's train.py (one case in the fast suite, the rest slow)."""
    result = run(entry_command(entry, tmp_path) + ['-opt', demo_on(lmdb_root, tmp_path, **change)], tmp_path)
    lines = one_line(result)
    assert result.returncode == 1 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / 'experiments').exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('setpriv') is None, reason='needs setpriv (util-linux)')
def test_nowhere_to_write_the_cache_is_one_line_before_any_work(lmdb_root, tmp_path):
    """Data, cache_dir and the user's cache folder all read-only: one line naming the dataset and cache_dir."""
    data = tmp_path / 'data'
    shutil.copytree(lmdb_root, data)
    (tmp_path / 'user_cache').mkdir()
    locked = [data, *data.rglob('*'), tmp_path / 'user_cache']
    for path in locked:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        env = {'XDG_CACHE_HOME': str(tmp_path / 'user_cache')}
        result = subprocess.run(
            DROP_WRITE + [sys.executable, TRAIN, '-opt', demo_on(data, tmp_path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, CUDA_VISIBLE_DEVICES='', **env),
        )
    finally:
        for path in locked:
            path.chmod(0o755 if path.is_dir() else 0o644)
    lines = one_line(result)
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith('error: datasets:DIV2K: cache_data: the decoded images of ') and (
        "can be written; set the dataset's cache_dir to a folder you can write." in lines[0]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.yml', 'data', 'user_cache']


@pytest.mark.parametrize('fault', ['memory', 'disk'])
def test_too_little_memory_or_disk_is_one_line_before_any_work(lmdb_root, tmp_path, monkeypatch, fault):
    """Through the entries' own parse_options (in this process, so that the machine can be made small)."""
    if fault == 'memory':
        monkeypatch.setattr(decoded_cache, 'available_memory', lambda: 1000)
        message = r'datasets:DIV2K: cache_data: the decoded images of .*DIV2K_train_HR need 0\.00 GiB of memory'
    else:
        monkeypatch.setattr(decoded_cache.shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(10, 10, 10))
        message = r"datasets:DIV2K: cache_data: the decoded images of .* need 0\.00 GiB on disk in .* set the dataset's"
    with pytest.raises(OptionError, match=message) as caught:
        parse_in_process(demo_on(lmdb_root, tmp_path, cache_dir=str(tmp_path / 'cd')), tmp_path, monkeypatch)
    assert '\n' not in str(caught.value)


def test_prune_removes_the_caches_nobody_holds(lmdb_root, tmp_path, capsys):
    """A live dataset holds its caches; the others go, each removal logged; the CLI says the same."""
    held = build_dataset(lmdb_options(lmdb_root, tmp_path))
    pixels = {key: np.array(held.caches['gt'][key]) for key in held.caches['gt'].index}
    other = build_dataset(lmdb_options(lmdb_root, tmp_path, sampling='record'))
    unheld = {other.caches['gt'].folder, other.caches['lq'].folder}
    del other
    gc.collect()
    listed = {cache['folder']: cache['held'] for cache in cache_admin.list_caches(str(tmp_path / 'cache'))}
    assert listed == {held.caches['gt'].folder: True, held.caches['lq'].folder: True, **dict.fromkeys(unheld, False)}
    assert cache_cli(['list', str(tmp_path / 'cache')]) == 0  # wdsr-cache list
    rows = dict(line.split('\t', 1) for line in capsys.readouterr().out.splitlines())
    assert set(rows) == set(listed) and all(rows[f].endswith('\tnot held') for f in unheld)
    root = os.path.realpath(lmdb_root / 'DIV2K_train_HR_sub.lmdb')
    assert rows[held.caches['gt'].folder].startswith(f'{root}\t{len(TRAIN_CROPS)} images\t')
    assert cache_cli(['prune', str(tmp_path / 'cache')]) == 0  # wdsr-cache prune
    out = capsys.readouterr().out
    assert f'{tmp_path / "cache"}: 2 cache(s) removed.' in out
    assert all(f'removed {folder} (pruned; nobody holds it)' in out for folder in unheld)
    assert sorted(str(p) for p in (tmp_path / 'cache').glob('*.decoded')) == sorted(
        [held.caches['gt'].folder, held.caches['lq'].folder]
    )
    assert all(np.array_equal(held.caches['gt'][key], value) for key, value in pixels.items())


def test_a_file_changed_between_the_check_and_the_build_names_no_cache(tmp_path):
    """The cache is named by the digests taken at the check; the bytes decoded must be those, or nothing is kept."""
    hr, lr = whole_image_folders(tmp_path, {'0001': ('astronaut', 64, 48)})
    opt = dict(folder_options(hr, lr), cache_data=True)
    plans = CheckedPairedImageDataset.check_data(dict(opt))
    cv2.imwrite(str(lr / '0001x2.png'), cv2.imread(str(lr / '0001x2.png'))[::-1])  # between check and build
    cache_open.open_cache(plans['gt'])  # the GT did not change
    with pytest.raises(ValueError, match=r'the images of .*LR changed while this run was starting'):
        cache_open.open_cache(plans['lq'])
    assert not os.path.exists(plans['lq'].folder)
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.partial')]  # no half-built folder left
