"""Every option file parses, builds its network and its datasets (data roots pointed at a fixture)."""

import copy

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.data import build_dataset
from basicsr.utils.options import ordered_yaml

from helpers import OPTIONS

ALL = sorted(OPTIONS.rglob('*.yml'))


@pytest.fixture(scope='module')
def benchmark_root(tmp_path_factory):
    """The five benchmark sets (one photograph each) prepared by prepare_benchmarks."""
    import cv2

    from helpers import photo
    from wdsr_basicsr.prepare.benchmarks import SETS, prepare_benchmarks

    src = tmp_path_factory.mktemp('bench_in')
    for name in SETS:
        (src / name).mkdir()
        cv2.imwrite(str(src / name / 'img.png'), photo('coffee', 40, 52))
    out = tmp_path_factory.mktemp('bench')
    prepare_benchmarks(str(src), str(out))
    return out


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def test_the_expected_files_exist():
    names = {str(p.relative_to(OPTIONS)) for p in ALL}
    expected = {
        f'{kind}_{n}_x{s}.yml'
        for kind in ('train', 'test')
        for n in ('wdsr_a', 'wdsr_b', 'edsr', 'rdn')
        for s in (2, 3, 4)
    }
    expected |= {f'paper/table1_{n}_b{b}_x2.yml' for n in ('edsr', 'wdsr_a', 'wdsr_b') for b in (1, 3, 5, 8)}
    expected |= {f'dist/train_wdsr_{n}_x2_{g}gpu.yml' for n in 'ab' for g in (4, 8)}
    expected |= {'demo_wdsr_b_x2.yml'}
    expected |= {
        f'authors/{kind}_{n}_x{s}.yml'
        for kind in ('train', 'test')
        for n in ('reloaded_wdsr', 'reloaded_wdsr_large')
        for s in (2, 3, 4)
    }
    expected |= {f'authors/{kind}_ntire2018_wdsr_baseline_x2.yml' for kind in ('train', 'test')}
    assert expected <= names
    assert any(n.startswith('paper/norm_batch') for n in names) and any(n.startswith('paper/norm_none') for n in names)


DEMO_TEST = OPTIONS / 'test_demo_wdsr_b_x2.yml'


@pytest.mark.parametrize('path', ALL, ids=lambda p: str(p.relative_to(OPTIONS)))
def test_option_file_builds(path, lmdb_root, benchmark_root, tmp_path):
    opt = load(path)
    for key in ('name', 'model_type', 'scale', 'num_gpu', 'datasets', 'network_g', 'path', 'val'):
        assert key in opt, key
    assert opt['model_type'] == 'WDSRModel'
    assert opt['network_g']['upscale'] == opt['scale']
    build_network(copy.deepcopy(opt['network_g']))
    for phase, ds in opt['datasets'].items():
        ds = dict(ds, phase=phase.split('_')[0], scale=opt['scale'])
        if ds['phase'] == 'train':  # every training file samples as the authors, from the decoded images
            assert ds['cache_data'] is True and ds['sampling'] == 'image'
            scale = opt['scale']
            root = ds['dataroot_gt'].rsplit('/', 1)[0]  # datasets/DIV2K, or the demo set's datasets/demo
            assert root in ('datasets/DIV2K', 'datasets/demo')
            if ds['io_backend']['type'] == 'disk':  # DIV2K's whole images, in its own layout
                assert (ds['dataroot_gt'], ds['dataroot_lq'], ds['filename_tmpl']) == (
                    f'{root}/DIV2K_train_HR',
                    f'{root}/DIV2K_train_LR_bicubic/X{scale}',
                    f'{{}}x{scale}',
                )
                gt, lq = lmdb_root / 'DIV2K_train_HR', lmdb_root / 'DIV2K_train_LR_bicubic' / f'X{scale}'
            else:  # prepare_div2k's sub-image LMDBs, put back into their images
                assert (ds['dataroot_gt'], ds['dataroot_lq']) == (
                    f'{root}/DIV2K_train_HR_sub.lmdb',
                    f'{root}/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb',
                )
                gt, lq = lmdb_root / 'DIV2K_train_HR_sub.lmdb', lmdb_root / f'DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'
            ds.update(dataroot_gt=str(gt), dataroot_lq=str(lq), cache_dir=str(tmp_path), gt_size=48 // 12 * 12)
            assert len(build_dataset(ds)) == 2  # an epoch: each of the two fixture images once
            assert opt['train']['total_iter'] > 0
            continue
        if ds['io_backend']['type'] == 'disk':  # the benchmark sets, in BasicSR's layout
            assert ds['dataroot_gt'] == f'datasets/{ds["name"]}/GTmod12'
            assert ds['dataroot_lq'] == f'datasets/{ds["name"]}/LRbicx{opt["scale"]}'
            ds['dataroot_gt'] = str(benchmark_root / ds['name'] / 'GTmod12')
            ds['dataroot_lq'] = str(benchmark_root / ds['name'] / f'LRbicx{opt["scale"]}')
            assert len(build_dataset(ds)) > 0
            continue
        ds['dataroot_gt'] = str(lmdb_root / 'DIV2K_valid_HR.lmdb')
        ds['dataroot_lq'] = str(lmdb_root / f'DIV2K_valid_LR_bicubic_X{opt["scale"]}.lmdb')
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


LR_PATCH = {'WDSR_A': 48, 'WDSR_B': 48, 'EDSR': 48, 'RDN': 32}  # official WDSR code, BasicSR EDSR, RDN paper


@pytest.mark.parametrize(
    'path', [p for p in ALL if not p.name.startswith(('test_', 'demo_'))], ids=lambda p: str(p.relative_to(OPTIONS))
)
def test_training_files_use_the_published_lr_patch(path):
    opt = load(path)
    assert opt['datasets']['train']['gt_size'] == LR_PATCH[opt['network_g']['type']] * opt['scale']


@pytest.mark.parametrize('path', sorted((OPTIONS / 'finetune').glob('*.yml')), ids=lambda p: p.name)
def test_finetune_files_start_from_the_x2_weights(path, tmp_path, monkeypatch):
    from basicsr.models import build_model

    finetune = load(path)
    short = path.stem[len('finetune_') : path.stem.index('_x')]
    x2 = load(OPTIONS / f'train_{short}_x2.yml')
    scratch = load(OPTIONS / f'train_{short}_x{finetune["scale"]}.yml')
    assert finetune['path']['pretrain_network_g'] == f'experiments/{x2["name"]}/models/net_g_latest.pth'
    assert finetune['path']['strict_load_g'] is False
    assert finetune['train'] == scratch['train'] and finetune['datasets'] == scratch['datasets']
    small = {'num_feat': 8, 'num_block': 1}
    torch.manual_seed(0)
    x2_net = build_network(dict(x2['network_g'], **small))
    weights = tmp_path / 'experiments' / x2['name'] / 'models' / 'net_g_latest.pth'
    weights.parent.mkdir(parents=True)
    torch.save({'params': x2_net.state_dict()}, weights)
    monkeypatch.chdir(tmp_path)
    model = build_model(
        {
            'name': 'ft',
            'model_type': 'WDSRModel',
            'scale': finetune['scale'],
            'num_gpu': 0,
            'is_train': False,
            'dist': False,
            'rank': 0,
            'world_size': 1,
            'network_g': dict(finetune['network_g'], **small),
            'path': dict(finetune['path']),
            'val': {},
        }
    )
    ours, theirs = model.net_g.state_dict(), x2_net.state_dict()
    loaded = [k for k in theirs if ours[k].shape == theirs[k].shape]
    assert any(k.startswith('body.') for k in loaded)
    assert all(torch.equal(ours[k], theirs[k]) for k in loaded)
    assert len(loaded) < len(ours)  # the scale-dependent layers start afresh


@pytest.mark.parametrize('path', sorted(set(OPTIONS.glob('test_*.yml')) - {DEMO_TEST}), ids=lambda p: p.name)
def test_test_files_cover_the_five_sets_and_div2k_on_y(path):
    opt = load(path)
    assert [d['name'] for d in opt['datasets'].values()] == [
        'Set5',
        'Set14',
        'B100',
        'Urban100',
        'Manga109',
        'DIV2K_valid',
    ]
    metrics = opt['val']['metrics']
    assert {m['type'] for m in metrics.values()} == {'calculate_psnr', 'calculate_ssim'}
    assert all(m['test_y_channel'] is True and m['crop_border'] == opt['scale'] for m in metrics.values())


def test_the_demo_test_file_scores_the_demo_as_it_validates():
    """options/test_demo_wdsr_b_x2.yml: the demo's network, its validation set and metrics, its latest weights."""
    demo, test = load(OPTIONS / 'demo_wdsr_b_x2.yml'), load(DEMO_TEST)
    assert test['network_g'] == demo['network_g'] and test['scale'] == demo['scale']
    (val,) = test['datasets'].values()
    assert {k: val[k] for k in ('dataroot_gt', 'dataroot_lq', 'io_backend')} == {
        k: demo['datasets']['val'][k] for k in ('dataroot_gt', 'dataroot_lq', 'io_backend')
    }
    assert test['val']['metrics'] == demo['val']['metrics']
    assert test['path']['pretrain_network_g'] == f'experiments/{demo["name"]}/models/net_g_latest.pth'


def test_make_options_writes_the_committed_files():
    """scripts/make_options.py is the one recipe: the files it writes are the files in options/."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('make_options', OPTIONS.parent / 'scripts' / 'make_options.py')
    make_options = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_options)
    written = make_options.files()
    assert {str(p.relative_to(OPTIONS)) for p in ALL} == set(written)
    for rel, text in written.items():
        assert (OPTIONS / rel).read_text() == text, rel
