"""Every option file parses, builds its network and its datasets (data roots pointed at a fixture)."""
import copy
from pathlib import Path

import pytest
import yaml

from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.options import ordered_yaml
from conftest import make_lmdbs

OPTIONS = Path(__file__).resolve().parent.parent / 'options'
ALL = sorted(OPTIONS.rglob('*.yml'))


@pytest.fixture(scope='module')
def lmdb_root(tmp_path_factory):
    return make_lmdbs(tmp_path_factory.mktemp('div2k'), (2, 3, 4))


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def test_the_expected_files_exist():
    names = {str(p.relative_to(OPTIONS)) for p in ALL}
    expected = {f'{kind}_wdsr_{n}_x{s}.yml' for kind in ('train', 'test') for n in 'ab' for s in (2, 3, 4)}
    expected |= {f'train_{n}_x{s}.yml' for n in ('edsr', 'rdn') for s in (2, 3, 4)}
    expected |= {f'paper/table1_{n}_b{b}_x2.yml' for n in ('edsr', 'wdsr_a', 'wdsr_b') for b in (1, 3, 5, 8)}
    expected |= {f'dist/train_wdsr_{n}_x2_{g}gpu.yml' for n in 'ab' for g in (4, 8)}
    expected |= {'demo_wdsr_b_x2.yml'}
    assert expected <= names
    assert any(n.startswith('paper/norm_batch') for n in names) and any(n.startswith('paper/norm_none') for n in names)


@pytest.mark.parametrize('path', ALL, ids=lambda p: str(p.relative_to(OPTIONS)))
def test_option_file_builds(path, lmdb_root):
    opt = load(path)
    for key in ('name', 'model_type', 'scale', 'num_gpu', 'datasets', 'network_g', 'path', 'val'):
        assert key in opt, key
    assert opt['model_type'] == 'WDSRModel'
    assert opt['network_g']['upscale'] == opt['scale']
    build_network(copy.deepcopy(opt['network_g']))
    for phase, ds in opt['datasets'].items():
        ds = dict(ds, phase=phase.split('_')[0], scale=opt['scale'])
        split, suffix = ('train', '_sub') if ds['phase'] == 'train' else ('valid', '')
        ds['dataroot_gt'] = str(lmdb_root / f'DIV2K_{split}_HR{suffix}.lmdb')
        ds['dataroot_lq'] = str(lmdb_root / f'DIV2K_{split}_LR_bicubic_X{opt["scale"]}{suffix}.lmdb')
        if ds['phase'] == 'train':
            ds['gt_size'] = 48 // 12 * 12  # the fixture's sub-images are 48 px
            assert opt['train']['total_iter'] > 0
        assert len(build_dataset(ds)) > 0


def test_recipe_numbers_follow_the_paper():
    opt = load(OPTIONS / 'train_wdsr_b_x2.yml')
    train = opt['datasets']['train']
    assert (train['gt_size'], train['batch_size_per_gpu'], train['use_hflip'], train['use_rot']) == (96, 16, True, True)
    optim = opt['train']['optim_g']
    assert (optim['type'], optim['lr'], optim['betas'], optim['eps']) == ('Adam', 1e-3, [0.9, 0.999], 1e-8)
    assert opt['train']['scheduler']['gamma'] == 0.5 and opt['train']['scheduler']['milestones'][0] == 200000
    assert opt['network_g']['rgb_mean'] == [0.4488, 0.4371, 0.4040]
    for gpus in (4, 8):
        dist = load(OPTIONS / 'dist' / f'train_wdsr_b_x2_{gpus}gpu.yml')
        assert dist['num_gpu'] * dist['datasets']['train']['batch_size_per_gpu'] == 16
