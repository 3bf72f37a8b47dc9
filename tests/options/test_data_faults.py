"""Data that cannot train is refused when the options are parsed: one line naming the dataset, file and fault.

Each case edits the shipped ``options/train_wdsr_b_x2.yml`` (paths pointed at small DIV2K-shaped LMDBs of
photographs, gt_size shrunk to their 48 px sub-images) and parses it as the entries do: nothing is written.
"""

import json
import shutil
import sys

import pytest

from helpers import OPTIONS, TRAIN, run, write_options
from wdsr_basicsr.options import OptionError, load_options
from wdsr_basicsr.options.parse import parse_options

LQ_LMDB = 'DIV2K_train_LR_bicubic_X2_sub.lmdb'


def source_images(lmdb_root):
    """How many images the shipped recipe samples from the training LMDB (each image once an epoch, its sub-images
    put back): the images its sub_images.json lists."""
    return len(json.loads((lmdb_root / LQ_LMDB / 'sub_images.json').read_text())['images'])


def shipped(lmdb_root, **train):
    """The shipped x2 recipe on the fixture's LMDBs, gt_size 48 (the sub-images' size), ``train`` changed."""
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    for phase, (gt, lq) in {
        'train': ('DIV2K_train_HR_sub.lmdb', LQ_LMDB),
        'val': ('DIV2K_valid_HR.lmdb', 'DIV2K_valid_LR_bicubic_X2.lmdb'),
    }.items():
        opt['datasets'][phase].update(dataroot_gt=str(lmdb_root / gt), dataroot_lq=str(lmdb_root / lq))
    opt['datasets']['train'].update(dict(gt_size=48, num_worker_per_gpu=0), **train)
    return opt


def parse(tmp_path, monkeypatch, opt):
    """``parse_options`` as ``train.py`` calls it, rooted at ``tmp_path``; nothing may be written there."""
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', write_options(tmp_path / 'o.yml', opt)])
    try:
        return parse_options(str(tmp_path), is_train=True)[0]
    finally:
        assert sorted(p.name for p in tmp_path.iterdir()) == ['o.yml']


def test_the_shipped_recipe_passes(lmdb_root, tmp_path, monkeypatch):
    opt = parse(tmp_path, monkeypatch, shipped(lmdb_root))
    assert opt['datasets']['train']['gt_size'] == 48


@pytest.mark.parametrize(
    'train, fault',
    [
        (
            {'gt_size': 96},
            r'datasets:DIV2K: image 0001_s001 of dataroot_lq .*X2_sub\.lmdb is 24x24, smaller than the LQ '
            r'patch \(48 px: gt_size 96 / scale 2\)\.',
        ),
        (
            {'dataset_enlarge_ratio': 1, 'batch_size_per_gpu': 'one more than the records'},
            r'datasets:DIV2K: (?P<n>\d+) samples x dataset_enlarge_ratio 1 give (?P=n) per epoch to each of 1 '
            r'processes, '
            r'fewer than batch_size_per_gpu \d+: no iteration would run; set dataset_enlarge_ratio to at least 2\.',
        ),
        ({'dataroot_lq': 'nowhere.lmdb'}, r'datasets:DIV2K: dataroot_lq nowhere\.lmdb does not exist\.'),
        (
            {'dataroot_lq': 'X3'},
            r'datasets:DIV2K: scale 2 does not match the data: 0001_s001 is 48x48 in dataroot_gt '
            r'.*HR_sub\.lmdb and 16x16 in dataroot_lq .*X3_sub\.lmdb \(expected 24x24\)\.',
        ),
    ],
)
def test_a_data_fault_is_one_line_before_any_work(lmdb_root, tmp_path, monkeypatch, train, fault):
    train = dict(train)
    if train.get('dataroot_lq') == 'X3':
        train['dataroot_lq'] = str(lmdb_root / 'DIV2K_train_LR_bicubic_X3_sub.lmdb')
    if 'batch_size_per_gpu' in train:
        train['batch_size_per_gpu'] = source_images(lmdb_root) + 1
    with pytest.raises(OptionError, match=f'^{fault}$'):
        parse(tmp_path, monkeypatch, shipped(lmdb_root, **train))


def test_a_key_listed_but_not_stored(lmdb_root, tmp_path, monkeypatch):
    data = tmp_path / 'data'
    for name in ('DIV2K_train_HR_sub.lmdb', LQ_LMDB):
        shutil.copytree(lmdb_root / name, data / name)
        with open(data / name / 'meta_info.txt', 'a') as f:
            f.write('0003_s001.png (48,48,3) 1\n')
    opt = shipped(lmdb_root, dataroot_gt=str(data / 'DIV2K_train_HR_sub.lmdb'), dataroot_lq=str(data / LQ_LMDB))
    monkeypatch.chdir(tmp_path)
    shutil.move(str(data), str(tmp_path.parent / f'{tmp_path.name}_data'))  # nothing but the options in tmp_path
    for key in ('dataroot_gt', 'dataroot_lq'):
        opt['datasets']['train'][key] = opt['datasets']['train'][key].replace(str(data), f'{tmp_path}_data')
    with pytest.raises(
        OptionError,
        match=r'DIV2K_train_HR_sub\.lmdb/meta_info\.txt lists 1 keys that the LMDB does '
        r"not hold \(e\.g\. \['0003_s001'\]\)",
    ):
        parse(tmp_path, monkeypatch, opt)


def test_the_entry_says_it_in_one_line(lmdb_root, tmp_path):
    opt = shipped(lmdb_root, dataset_enlarge_ratio=1, batch_size_per_gpu=source_images(lmdb_root) + 1)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'o.yml', opt)], tmp_path, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and 'no iteration would run' in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['o.yml']
