"""CheckedPairedImageDataset: same samples as basicsr's PairedImageDataset, errors that name the fault."""

import gc
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils.lmdb_util import LmdbMaker

from wdsr_basicsr.data.lmdb_util import shared_lmdb


def train_opt(root, scale=2, **extra):
    """A training set's section over the fixture's sub-image LMDBs under ``root`` (``extra`` overrides)."""
    opt = dict(
        name='demo_train',
        type='CheckedPairedImageDataset',
        phase='train',
        scale=scale,
        io_backend=dict(type='lmdb'),
        gt_size=32,
        use_hflip=True,
        use_rot=True,
    )
    if root is not None:
        opt.update(
            dataroot_gt=str(root / 'DIV2K_train_HR_sub.lmdb'),
            dataroot_lq=str(root / f'DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'),
        )
    opt.update(extra)
    return opt


def sample(dataset, index, seed):
    random.seed(seed)
    return dataset[index]


def test_same_samples_as_basicsr(lmdb_root):
    # lmdb allows one open environment per path and process: read basicsr's samples first, then close them.
    theirs = PairedImageDataset(train_opt(lmdb_root, scale=3, gt_size=36))
    expected = {index: sample(theirs, index, index) for index in (0, 7, 30)}
    assert len(theirs) == 31
    del theirs
    gc.collect()
    ours = build_dataset(train_opt(lmdb_root, scale=3, gt_size=36))
    assert len(ours) == 31
    for index, b in expected.items():
        a = sample(ours, index, index)
        assert a['gt'].shape == (3, 36, 36) and a['lq'].shape == (3, 12, 12)
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq']) and a['gt_path'] == b['gt_path']


def test_validation_lmdb_whole_images(lmdb_root):
    opt = train_opt(
        lmdb_root,
        phase='val',
        dataroot_gt=str(lmdb_root / 'DIV2K_valid_HR.lmdb'),
        dataroot_lq=str(lmdb_root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
    )
    item = build_dataset(opt)[0]
    # 0801 is 101x97: LR 50x48, GT cropped by basicsr to 100x96
    assert item['lq'].shape == (3, 50, 48) and item['gt'].shape == (3, 100, 96)


def rewrite_lmdb(src, dst, drop=(), corrupt=()):
    """Copy an LMDB record by record, leaving out or garbling some keys."""
    env = shared_lmdb(str(src))  # py-lmdb opens an environment once a process; other tests may hold it
    meta = {line.split('.')[0]: line for line in open(src / 'meta_info.txt')}
    maker = LmdbMaker(str(dst))
    with env.begin() as txn:
        for key, value in txn.cursor():
            key = key.decode()
            if key in drop:
                continue
            shape = tuple(int(v) for v in meta[key].split()[1].strip('()').split(','))
            maker.put(b'not a png' if key in corrupt else value, key, shape)
    maker.close()


def test_key_mismatch_lists_examples(lmdb_root, tmp_path):
    lq = tmp_path / 'lq.lmdb'
    rewrite_lmdb(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', lq, drop={'0001_s003', '0002_s010'})
    with pytest.raises(ValueError) as info:
        build_dataset(train_opt(lmdb_root, dataroot_lq=str(lq)))
    message = str(info.value)
    assert '2 only in dataroot_gt' in message and "'0001_s003', '0002_s010'" in message and 'demo_train' in message


def test_corrupt_record_names_lmdb_and_key(lmdb_root, tmp_path):
    lq = tmp_path / 'lq.lmdb'
    rewrite_lmdb(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', lq, corrupt={'0001_s002'})
    ours = build_dataset(train_opt(lmdb_root, dataroot_lq=str(lq)))
    assert ours[0]['lq'].shape[0] == 3  # other records still load
    with pytest.raises(ValueError, match=r"'0001_s002' in .*lq\.lmdb"):
        ours[1]
    del ours
    gc.collect()
    with pytest.raises(ValueError, match=r"'0001_s002' in .*lq\.lmdb"):  # basicsr's own type too (not 'NoneType')
        PairedImageDataset(train_opt(lmdb_root, dataroot_lq=str(lq)))[1]


def test_missing_record_named(lmdb_root, tmp_path):
    lq = tmp_path / 'lq.lmdb'
    rewrite_lmdb(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', lq, drop={'0002_s001'})
    with open(lq / 'meta_info.txt', 'a') as f:  # listed, but not stored
        f.write('0002_s001.png (24,24,3) 1\n')
    with pytest.raises(
        LookupError,
        match=r'lq\.lmdb/meta_info\.txt lists 1 keys that the LMDB does not hold '
        r"\(e\.g\. \['0002_s001'\]\)",
    ):  # before any sample is read
        build_dataset(train_opt(lmdb_root, dataroot_lq=str(lq)))


def test_scale_mismatch_named(lmdb_root):
    with pytest.raises(ValueError, match=r'scale 3 does not match the data: 0001_s001 is 48x48.*24x24'):
        build_dataset(
            train_opt(lmdb_root, scale=3, gt_size=36, dataroot_lq=str(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb'))
        )


def test_missing_dataroot_named(lmdb_root):
    with pytest.raises(FileNotFoundError, match=r'dataroot_lq .*nowhere\.lmdb does not exist'):
        build_dataset(train_opt(lmdb_root, dataroot_lq=str(lmdb_root / 'nowhere.lmdb')))


def test_folder_without_meta_info_named(lmdb_root, tmp_path):
    (tmp_path / 'empty.lmdb').mkdir()
    with pytest.raises(FileNotFoundError, match='dataroot_gt .*empty.lmdb has no meta_info.txt'):
        build_dataset(train_opt(lmdb_root, dataroot_gt=str(tmp_path / 'empty.lmdb')))


def test_sample_pixels_come_from_the_records(lmdb_root):
    """Without augmentation, the LR patch is the bicubic of the GT patch's area (checked on values)."""
    ds = build_dataset(train_opt(lmdb_root, use_hflip=False, use_rot=False, gt_size=48))
    item = ds[0]
    gt, lq = item['gt'].numpy(), item['lq'].numpy()
    # bicubic LR of a patch is close to its box-average (independent of the code under test)
    box = gt.reshape(3, 24, 2, 24, 2).mean(axis=(2, 4))
    assert np.abs(box - lq)[:, 2:-2, 2:-2].mean() < 0.03


def test_gt_size_not_multiple_of_scale_named(lmdb_root):
    # basicsr would silently return GT patches of varying size (e.g. 32x30 at x3)
    with pytest.raises(ValueError, match='gt_size=32 is not a multiple of scale=3'):
        build_dataset(train_opt(lmdb_root, scale=3, gt_size=32))


def test_lmdb_cut_short_is_refused_at_open(lmdb_root, tmp_path):
    import shutil

    lq = tmp_path / 'cut.lmdb'
    shutil.copytree(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', lq)
    data = lq / 'data.mdb'
    size = data.stat().st_size
    with open(data, 'r+b') as f:  # an interrupted copy
        f.truncate(size // 2)
    with pytest.raises(OSError, match=rf'LMDB {lq} is cut short: data.mdb has {size // 2} bytes, its pages need'):
        build_dataset(train_opt(lmdb_root, dataroot_lq=str(lq)))
    # basicsr's own type opens the LMDB in the loader's worker: the worker raises the same error (no SIGBUS)
    loader = torch.utils.data.DataLoader(PairedImageDataset(train_opt(lmdb_root, dataroot_lq=str(lq))), num_workers=1)
    with pytest.raises(OSError, match=rf'LMDB {lq} is cut short'):
        next(iter(loader))


def basicsr_style_pair(tmp_path, scale=4, names=('baboon', 'comic')):
    """GT and LQ LMDBs made by basicsr's make_lmdb_from_imgs, as BasicSR's tests/data/gt.lmdb and lq.lmdb are."""
    import cv2
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    from helpers import photo

    roots = {}
    for kind, factor in (('gt', 1), ('lq', scale)):
        folder = tmp_path / kind
        folder.mkdir()
        for name, (photo_name, h, w) in zip(names, (('astronaut', 96, 100), ('coffee', 72, 48))):
            img = photo(photo_name, h, w)
            cv2.imwrite(str(folder / f'{name}.png'), cv2.resize(img, (w // factor, h // factor), cv2.INTER_AREA))
        make_lmdb_from_imgs(
            str(folder),
            str(tmp_path / f'{kind}.lmdb'),
            [f'{name}.png' for name in names],
            list(names),
            map_size=1 << 24,
        )
        roots[kind] = tmp_path / f'{kind}.lmdb'
    return roots


def pair_opt(roots, scale=4, **extra):
    """``train_opt`` over the two LMDBs of :func:`basicsr_style_pair`: small patches, no flips."""
    opt = dict(dataroot_gt=str(roots['gt']), dataroot_lq=str(roots['lq']), gt_size=16, use_hflip=False, use_rot=False)
    return train_opt(None, scale, **dict(opt, name='pair', **extra))


def test_meta_info_with_a_wrong_size_is_read_from_the_records(tmp_path, monkeypatch):
    """BasicSR's own lq.lmdb records comic as (80,60,3) while the image stored is 90x60: the records decide."""
    from wdsr_basicsr.data import pair_sizes

    roots = basicsr_style_pair(tmp_path)
    meta = roots['lq'] / 'meta_info.txt'
    assert meta.read_text().splitlines()[1] == 'comic.png (18,12,3) 1'  # written by basicsr: 72x48 / 4
    meta.write_text(meta.read_text().replace('comic.png (18,12,3)', 'comic.png (16,12,3)'))
    warnings = []
    monkeypatch.setattr(pair_sizes, 'warn', warnings.append)
    dataset = build_dataset(pair_opt(roots))
    assert warnings == [
        f'datasets:pair: {meta}, line 2: records comic as 12x16, but the image stored is 12x18; the record is used.'
    ]
    item = dataset[1]
    assert item['gt'].shape == (3, 16, 16) and item['lq'].shape == (3, 4, 4)

    # a pair whose records themselves disagree is refused with the records' sizes
    import cv2
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    bad = tmp_path / 'bad'
    bad.mkdir()
    cv2.imwrite(str(bad / 'baboon.png'), np.zeros((24, 25, 3), np.uint8))
    cv2.imwrite(str(bad / 'comic.png'), np.zeros((20, 12, 3), np.uint8))
    make_lmdb_from_imgs(
        str(bad), str(tmp_path / 'bad.lmdb'), ['baboon.png', 'comic.png'], ['baboon', 'comic'], map_size=1 << 24
    )
    with pytest.raises(
        ValueError,
        match=r'scale 4 does not match the data: comic is 48x72 in dataroot_gt .* and '
        r'12x20 in dataroot_lq .*bad\.lmdb \(expected 12x18\)',
    ):
        build_dataset(pair_opt(dict(roots, lq=tmp_path / 'bad.lmdb')))


def test_two_datasets_over_one_lmdb_share_it(tmp_path):
    """Train and validation on one LMDB in one process, and a forked worker after the parent read it."""
    roots = basicsr_style_pair(tmp_path)
    train = build_dataset(pair_opt(roots))
    val = PairedImageDataset(pair_opt(roots, phase='val'))
    assert val[0]['gt'].shape == (3, 96, 100)  # basicsr's own type opens the LMDB in this process
    assert train[0]['gt'].shape == (3, 16, 16)  # a second dataset over it
    loader = torch.utils.data.DataLoader(val, num_workers=1)  # a worker forked from a process that has it open
    assert [tuple(batch['lq'].shape) for batch in loader] == [(1, 3, 24, 25), (1, 3, 18, 12)]


def test_keys_with_spaces_are_read_as_basicsr_reads_them(tmp_path):
    """basicsr's make_lmdb_from_imgs writes 'my img.png (96,100,3) 1'; its PairedImageDataset trains on it."""
    roots = basicsr_style_pair(tmp_path, names=('my img', 'comic'))
    assert (roots['gt'] / 'meta_info.txt').read_text().splitlines()[0] == 'my img.png (96,100,3) 1'
    theirs, ours = PairedImageDataset(pair_opt(roots)), build_dataset(pair_opt(roots))
    assert [p['gt_path'] for p in ours.paths] == [p['gt_path'] for p in theirs.paths] == ['comic', 'my img']
    for index in range(2):
        a, b = sample(theirs, index, seed=index), sample(ours, index, seed=index)
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])


def test_checking_the_data_leaves_basicsr_s_log_file_to_the_run(tmp_path):
    """The data check runs before basicsr's pipeline sets up its logger (with the run's log file): a warning of
    the check must not set that logger up first, or basicsr's later call returns it without the file."""
    roots = basicsr_style_pair(tmp_path)
    meta = roots['lq'] / 'meta_info.txt'
    meta.write_text(meta.read_text().replace('comic.png (18,12,3)', 'comic.png (16,12,3)'))  # a warning
    code = (
        'import wdsr_basicsr\n'
        'from basicsr.utils import get_root_logger\n'
        'from wdsr_basicsr.data.paired_dataset import CheckedPairedImageDataset\n'
        f'CheckedPairedImageDataset.check_data({pair_opt(roots)!r})\n'
        f'get_root_logger(log_file={str(tmp_path / "train.log")!r}).info("the run starts")\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'records comic as 12x16' in result.stderr  # the warning is shown
    assert 'the run starts' in (tmp_path / 'train.log').read_text()  # and the run's log file is written
