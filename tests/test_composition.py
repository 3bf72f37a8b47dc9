"""A plugin that composes: the start-up hook, other projects' option files, classes registered by anyone."""

import copy
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import basicsr
import basicsr.test
import pytest
from basicsr.archs import build_network
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

from helpers import OPTIONS, REPO, run, torchrun, write_options
from wdsr_basicsr.data import CheckedPairedImageDataset
from wdsr_basicsr.declare import Rule, declared_hook, relations_fault
from wdsr_basicsr.options import OptionError, check_options, load_options, parse_options
from wdsr_basicsr.options.parse import check_data
from wdsr_basicsr.runs import read_validations, shrink_options

DATA = Path(__file__).resolve().parent / 'assets'
# Made by scripts/sample_option_files.py from XPixelGroup/BasicSR@8d56e3a options/ and xinntao/Real-ESRGAN options/.
SAMPLES = {
    f'{project}/{name}': opt
    for project, file in (('BasicSR', 'basicsr_options.json'), ('Real-ESRGAN', 'realesrgan_options.json'))
    for name, opt in json.loads((DATA / file).read_text()).items()
}
# Files that basicsr itself cannot run (checked below with basicsr's own functions): refused, with the reason.
BROKEN = {
    'BasicSR/train/EDVR/train_EDVR_L_x4_SR_REDS.yml': 'unknown option network_g:ema_decay; EDVR takes type, num_in_ch',
    'BasicSR/train/EDVR/train_EDVR_L_x4_SR_REDS_woTSA.yml': 'unknown option network_g:ema_decay; EDVR takes',
    'BasicSR/train/HiFaceGAN/train_hifacegan.yml': "train:feature_matching_opt:type='GANFeatLoss' is not registered",
    'BasicSR/test/RCAN/test_RCAN.yml': 'option val:save_img (true or false) is missing',
}
SITE_PACKAGES = Path(basicsr.__file__).resolve().parent.parent


def is_train(name):
    return '/train/' in name or name.split('/')[-1].startswith(('train_', 'finetune_'))


@pytest.fixture
def vgg_on_disk(tmp_path, monkeypatch):
    """A working directory where basicsr's VGGFeatureExtractor finds its weights file (the check needs it)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'experiments' / 'pretrained_models').mkdir(parents=True)
    (tmp_path / 'experiments' / 'pretrained_models' / 'vgg19-dcbb9e9d.pth').write_bytes(b'')
    return tmp_path


def parse(monkeypatch, path, train, *extra):
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(path), '--force_yml', 'num_gpu=auto', *extra])
    return parse_options(os.getcwd(), is_train=train)[0]


@pytest.mark.parametrize('name', sorted(SAMPLES))
def test_other_projects_files_get_past_the_options(name, vgg_on_disk, monkeypatch):
    path = write_options(vgg_on_disk / 'opt.yml', SAMPLES[name])
    if name in BROKEN:
        with pytest.raises(OptionError, match=BROKEN[name].replace('(', r'\(').replace(')', r'\)')):
            parse(monkeypatch, path, is_train(name))
        return
    opt = parse(monkeypatch, path, is_train(name))
    root = opt['path']['experiments_root' if is_train(name) else 'results_root']
    assert Path(root) == vgg_on_disk / ('experiments' if is_train(name) else 'results') / opt['name']


def test_the_refused_files_fail_in_basicsr_too():
    edvr = SAMPLES['BasicSR/train/EDVR/train_EDVR_L_x4_SR_REDS.yml']['network_g']
    with pytest.raises(TypeError, match='ema_decay'):
        build_network(edvr)
    hifacegan = SAMPLES['BasicSR/train/HiFaceGAN/train_hifacegan.yml']['train']['feature_matching_opt']
    with pytest.raises(KeyError, match='GANFeatLoss'):
        build_loss(hifacegan)
    assert 'val' not in SAMPLES['BasicSR/test/RCAN/test_RCAN.yml']
    assert "opt['val']['save_img']" in inspect.getsource(basicsr.test.test_pipeline)


@pytest.mark.parametrize(
    'name, change, message',
    [
        (
            'train/EDSR/train_EDSR_Mx2.yml',
            lambda o: o['val'].update(val_frq=5),
            'unknown option val:val_frq (did you mean val_freq?)',
        ),
        (
            'train/BasicVSR/train_BasicVSR_Vimeo90K_BIx4.yml',
            lambda o: o['datasets']['train'].update(num_fram=7),
            'datasets:train:num_fram (did you mean num_frame?)',
        ),
        (
            'train/ESRGAN/train_ESRGAN_x4.yml',
            lambda o: o['train'].update(net_d_iter=1),
            'train:net_d_iter (did you mean net_d_iters?)',
        ),
        (
            'train/ESRGAN/train_ESRGAN_x4.yml',
            lambda o: o.update(network_dd=o.pop('network_d')),
            'network_dd (did you mean network_d?)',
        ),
        (
            'train/RealESRGAN/train_realesrgan_x4plus.yml',
            lambda o: o.update(jpeg_rang=[30, 95]),
            'jpeg_rang (did you mean jpeg_range?)',
        ),
        (
            'train/EDSR/train_EDSR_Mx2.yml',
            lambda o: o.update(model_type='HATModel'),
            "model_type='HATModel' is not registered",
        ),
        (
            'train/EDSR/train_EDSR_Mx2.yml',
            lambda o: o['train']['optim_g'].update(type='AdamW'),
            "train:optim_g:type='AdamW' is not built by SRModel.get_optimizer (it builds Adam)",
        ),
        (
            'train/EDSR/train_EDSR_Mx2.yml',
            lambda o: o['train']['scheduler'].update(type='CosineAnnealingLR'),
            "type='CosineAnnealingLR' is not built by SRModel.setup_schedulers (it builds CosineAnnealingRestartLR, "
            'MultiStepLR, MultiStepRestartLR)',
        ),
    ],
)
def test_typos_in_other_projects_files_are_still_refused(name, change, message, vgg_on_disk):
    opt = copy.deepcopy(SAMPLES[f'BasicSR/{name}'])
    change(opt)
    with pytest.raises(OptionError) as error:
        check_options(opt, name, is_train(name))
    assert message in str(error.value)


def test_basicsr_builds_only_adam():
    """The refusal of AdamW for SRModel above is basicsr's own behaviour; WDSRModel builds it."""
    with pytest.raises(NotImplementedError):
        BaseModel.get_optimizer(None, 'AdamW', [], 1e-3)
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt['train']['optim_g'] = {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-2, 'amsgrad': False}
    check_options(opt, 'x.yml', True)
    opt['train']['optim_g']['momentum'] = 0.9
    with pytest.raises(OptionError, match='unknown option train:optim_g:momentum; AdamW takes type, lr, betas'):
        check_options(opt, 'x.yml', True)


class _SiblingReads(SRModel):
    """What a model of another plugin reads beside SRModel's options (this base declares nothing of its own)."""

    option_keys: dict = {}

    def init_training_settings(self):
        self.sibling_strength = self.opt['sibling_strength']
        self.warmup = self.opt['train'].get('sibling_warmup', 0)
        super().init_training_settings()


@MODEL_REGISTRY.register()
class SiblingTestModel(_SiblingReads):
    """A sibling plugin's model that declares nothing: its keys are the run's to judge, never refused."""

    option_keys = None


@MODEL_REGISTRY.register()
class DeclaringSiblingTestModel(_SiblingReads):
    """A sibling plugin's model that declares what it reads (wdsr_basicsr.declare), as the option check's page shows."""

    option_keys = {'': ['sibling_strength'], 'train': {'sibling_warmup': Rule('int', 0)}}


def sibling_file(model_type, **top):
    opt = copy.deepcopy(SAMPLES['BasicSR/train/EDSR/train_EDSR_Mx2.yml'])
    opt.update(model_type=model_type, sibling_strength=0.5, **top)
    opt['train']['sibling_warmup'] = 10
    return opt


@DATASET_REGISTRY.register()
class SiblingNamesakeDataset(PairedImageDataset):
    """A sibling's dataset whose own methods happen to bear the declaration hooks' names, declaring no option_keys."""

    def check_data(self, sample):
        raise AssertionError('a sibling method called as our hook')

    @staticmethod
    def options_fault(section):
        return 'a sibling method called as our hook'


def test_a_siblings_methods_named_like_the_hooks_are_not_called():
    """Only a class that declares option_keys defines the hooks; a subclass of ours inherits them."""
    opt = copy.deepcopy(SAMPLES['BasicSR/train/EDSR/train_EDSR_Mx2.yml'])
    opt['datasets']['train']['type'] = 'SiblingNamesakeDataset'
    opt['datasets']['val']['type'] = 'SiblingNamesakeDataset'
    assert not any('hook' in warning for warning in check_options(opt, 'x.yml', True))
    check_data({'datasets': {'train': {'type': 'SiblingNamesakeDataset'}}, 'world_size': 1})  # nothing called
    assert declared_hook(SiblingNamesakeDataset, 'options_fault') is None
    inheriting = type('Inheriting', (CheckedPairedImageDataset,), {})
    assert relations_fault(inheriting, {'sampling': 'image'}) == (
        CheckedPairedImageDataset.options_fault({'sampling': 'image'})
    )
    assert relations_fault(inheriting, {'sampling': 'image'}) is not None  # sampling without cache_data


def test_what_nothing_declares_is_never_refused():
    """Keys: by basicsr's table and declarations, not by what else is registered in the process."""
    assert check_options(sibling_file('SRModel'), 'x.yml', True) == [
        "x.yml: option sibling_strength has no effect: SRModel, PairedImageDataset and basicsr's pipeline do not read "
        'it there.',
        "x.yml: option train:sibling_warmup has no effect: SRModel, PairedImageDataset and basicsr's pipeline do not "
        'read it there.',
    ]
    assert check_options(sibling_file('SiblingTestModel'), 'x.yml', True) == []  # left to the run: nothing known
    opt = sibling_file('SiblingTestModel', sibling_strenght=1)
    assert check_options(opt, 'x.yml', True) == []  # not a typo of anything known: the run names it if unread
    opt['val']['val_frq'] = 5  # beside val_freq: a likely typo of basicsr's key, but the model may read it
    assert check_options(opt, 'x.yml', True) == [
        'x.yml: option val:val_frq may be a typo of val_freq (SiblingTestModel declare no option_keys: the run '
        'names each key that nothing read).'
    ]


def test_a_declaring_sibling_gets_typos_and_values_refused():
    assert check_options(sibling_file('DeclaringSiblingTestModel'), 'x.yml', True) == []
    opt = sibling_file('DeclaringSiblingTestModel')
    opt['sibling_strenght'] = opt.pop('sibling_strength')
    with pytest.raises(OptionError, match='unknown option sibling_strenght \\(did you mean sibling_strength\\?\\)'):
        check_options(opt, 'x.yml', True)
    opt = sibling_file('DeclaringSiblingTestModel')
    opt['train']['sibling_warmup'] = -1
    with pytest.raises(OptionError, match='train:sibling_warmup=-1 must be at least 0'):
        check_options(opt, 'x.yml', True)


def test_perceptual_loss_without_its_weights_on_disk_is_a_warning(tmp_path, monkeypatch):
    """basicsr downloads the VGG weights when it can: a sibling's working file is never refused for them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    opt = copy.deepcopy(SAMPLES['BasicSR/train/ESRGAN/train_ESRGAN_x4.yml'])
    url = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
    assert (
        f'x.yml: train:perceptual_opt needs the VGG weights and they are not on disk: basicsr will download {url} '
        f'at start (offline, put the file at {tmp_path}/experiments/pretrained_models/vgg19-dcbb9e9d.pth or '
        f'{tmp_path}/torch_home/hub/checkpoints/vgg19-dcbb9e9d.pth).'
        in check_options(copy.deepcopy(opt), 'x.yml', True)
    )
    cached = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'vgg19-dcbb9e9d.pth'
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b'')
    assert not any('VGG' in warning for warning in check_options(opt, 'x.yml', True))


# ---------------------------------------------------------------- the start-up hook


def python(code, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, cwd=cwd, env=dict(os.environ, **(env or {}))
    )


@pytest.mark.slow
def test_installed_means_registered():
    result = python(
        'import basicsr, basicsr.utils.options as o\n'
        'from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY\n'
        'print(all(n in ARCH_REGISTRY for n in ("WDSR_A", "WDSR_B", "RDN")), "WDSRModel" in MODEL_REGISTRY,'
        ' "CheckedPairedImageDataset" in DATASET_REGISTRY, o.parse_options.__module__)'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True', 'True', 'wdsr_basicsr.compat']  # entry_parse_options


def test_start_up_imports_nothing_heavy():
    result = subprocess.run([sys.executable, '-X', 'importtime', '-c', 'pass'], capture_output=True, text=True)
    modules = [line.split('|')[-1].strip() for line in result.stderr.splitlines() if line.startswith('import time:')]
    assert 'wdsr_basicsr_startup' in modules
    assert not [m for m in modules if m.split('.')[0] in ('torch', 'basicsr', 'wdsr_basicsr', 'numpy', 'torchvision')]


@pytest.mark.slow
def test_hook_turned_off():
    result = python('import basicsr', env={'WDSR_BASICSR_NO_HOOK': '1'})
    assert result.returncode != 0 and 'functional_tensor' in result.stderr


@pytest.mark.slow
def test_a_broken_install_costs_one_line(tmp_path):
    broken = tmp_path / 'broken'
    (broken / 'wdsr_basicsr').mkdir(parents=True)
    (broken / 'wdsr_basicsr' / '__init__.py').write_text('raise ImportError("half-installed")\n')
    result = python('import basicsr.train; print("ran")', env={'PYTHONPATH': str(broken)}, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == 'ran\n'
    assert result.stderr.splitlines() == [
        'wdsr-basicsr: not registered with basicsr (ImportError: half-installed); WDSR_BASICSR_NO_HOOK=1 turns this '
        'hook off.'
    ]
    (broken / 'wdsr_basicsr_startup.py').write_text('raise RuntimeError("damaged")\n')
    result = python('print("ran")', env={'PYTHONPATH': str(broken)}, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == 'ran\n'
    assert result.stderr.splitlines() == ['wdsr-basicsr: start-up hook not loaded (RuntimeError: damaged)']


@pytest.mark.slow
def test_safety_holds_through_basicsr_entry(tmp_path):
    evil = tmp_path / 'evil.yml'
    evil.write_text(f"name: x\nmodel_type: !!python/object/apply:os.system ['touch {tmp_path}/owned']\n")
    result = run([sys.executable, '-m', 'basicsr.train', '-opt', str(evil)], tmp_path)
    assert result.returncode != 0 and not (tmp_path / 'owned').exists()
    assert f'{evil}, line 2: could not determine a constructor' in result.stderr


def shrunk(path, root):
    """A shipped option file with its data roots on the fixture, sizes and lengths shrunk."""
    opt = load_options(path)
    opt['datasets'] = {k: v for k, v in opt['datasets'].items() if k in ('train', 'val') or k.endswith('_6')}
    opt = shrink_options(
        opt,
        data=str(root),
        iters=2 if 'train' in opt else None,
        gt_size=24,
        batch=2,
        workers=0,
        network={'num_feat': 8, 'num_block': 1},
        validations=1,
    )
    opt['num_gpu'] = 0
    for dataset in opt['datasets'].values():
        dataset['type'] = 'CheckedPairedImageDataset'
    return opt


@pytest.mark.slow
def test_basicsr_own_entries_train_and_test(lmdb_root, tmp_path):
    """python -m basicsr.train / -m basicsr.test and a BasicSR clone's basicsr/train.py, on shipped files."""
    root = lmdb_root
    before = set(os.listdir(SITE_PACKAGES))
    train = write_options(tmp_path / 'train.yml', shrunk(OPTIONS / 'train_wdsr_b_x2.yml', root))
    result = run([sys.executable, '-m', 'basicsr.train', '-opt', train], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = tmp_path / 'experiments' / 'train_wdsr_b_x2'
    assert (experiment / 'models' / 'net_g_latest.pth').exists()
    assert (tmp_path / 'tb_logger' / 'train_wdsr_b_x2').is_dir()
    log = next(experiment.glob('train_*.log')).read_text()
    logged = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]  # basicsr's own logger, 4 decimals
    recorded = read_validations(str(experiment))  # what the demo, reproduce and the GPU check read
    # basicsr validates at val_freq (2) and asks once more at the end (also 2): that repeat is skipped and logged
    assert len(logged) == 1 and [r['iter'] for r in recorded] == [2]
    assert 'Validation DIV2K_valid of iteration 2 is done already.' in log
    assert [r['mean']['psnr'] for r in recorded] == pytest.approx(logged[-1:], abs=1e-4)

    test = shrunk(OPTIONS / 'test_wdsr_b_x2.yml', root)
    test['datasets'] = {
        'test_1': dict(
            test['datasets']['test_6'],
            dataroot_gt=str(root / 'DIV2K_valid_HR.lmdb'),
            dataroot_lq=str(root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
        )
    }
    test['path']['pretrain_network_g'] = str(experiment / 'models' / 'net_g_latest.pth')
    result = run([sys.executable, '-m', 'basicsr.test', '-opt', write_options(tmp_path / 'test.yml', test)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / 'results' / 'test_wdsr_b_x2' / 'metrics_DIV2K_valid.json').exists()

    clone = tmp_path / 'BasicSR'
    (clone / 'basicsr').mkdir(parents=True)
    shutil.copy(SITE_PACKAGES / 'basicsr' / 'train.py', clone / 'basicsr' / 'train.py')
    opt = shrunk(OPTIONS / 'train_wdsr_a_x2.yml', root)
    result = run([sys.executable, 'basicsr/train.py', '-opt', write_options(clone / 'a.yml', opt)], clone)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (clone / 'experiments' / 'train_wdsr_a_x2' / 'models' / 'net_g_latest.pth').exists()
    assert set(os.listdir(SITE_PACKAGES)) == before


@pytest.mark.slow
@pytest.mark.parametrize('entry', ['module', 'clone'])
def test_basicsr_own_entries_resume_on_the_cpu(lmdb_root, tmp_path, entry):
    """python -m basicsr.train --auto_resume and a clone's basicsr/train.py --auto_resume on a machine without CUDA
    (basicsr maps the state to torch.cuda.current_device() in its own __main__ copy); no runpy warning."""
    if entry == 'module':
        command, cwd = [sys.executable, '-m', 'basicsr.train'], tmp_path
    else:
        cwd = tmp_path / 'BasicSR'
        (cwd / 'basicsr').mkdir(parents=True)
        shutil.copy(SITE_PACKAGES / 'basicsr' / 'train.py', cwd / 'basicsr' / 'train.py')
        command = [sys.executable, 'basicsr/train.py']
    train = write_options(cwd / 'train.yml', shrunk(OPTIONS / 'train_wdsr_b_x2.yml', lmdb_root))
    first = run(command + ['-opt', train], cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run(command + ['-opt', train, '--auto_resume', '--force_yml', 'train:total_iter=4'], cwd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'found in sys.modules' not in first.stderr + resumed.stderr
    experiment = cwd / 'experiments' / 'train_wdsr_b_x2'
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']
    assert [r['iter'] for r in read_validations(str(experiment))] == [2, 4]


def _wandb_options(root, tmp_path, **logger):
    opt = shrunk(OPTIONS / 'train_wdsr_b_x2.yml', root)
    opt['logger']['wandb']['project'] = 'wdsr-test'
    opt['logger'].update(logger)
    return write_options(tmp_path / 'train.yml', opt)


@pytest.mark.parametrize(
    'logger, name, message',
    [
        ({}, 'train_wdsr_b_x2', "logger:wandb:project='wdsr-test' needs wandb, which is not installed: pip install"),
        ({'use_tb_logger': False}, 'train_wdsr_b_x2', 'logger:wandb:project is set, which needs logger:use_tb_logger'),
        ({}, 'debug_train_wdsr_b_x2', None),  # basicsr starts no wandb for a debug run
    ],
)
def test_wandb_that_cannot_start_is_refused_before_any_work(lmdb_root, tmp_path, monkeypatch, logger, name, message):
    """basicsr imports wandb after experiments/ and tb_logger/ exist, and asserts use_tb_logger there."""
    monkeypatch.setitem(sys.modules, 'wandb', None)  # what `import wandb` meets without wandb installed
    monkeypatch.chdir(tmp_path)
    opt_file = _wandb_options(lmdb_root, tmp_path, **logger)
    extra = ['--debug'] if name.startswith('debug') else []
    if message is None:
        assert parse(monkeypatch, opt_file, True, *extra)['name'] == name
        return
    with pytest.raises(OptionError, match=re.escape(f'{opt_file}: {message}')):
        parse(monkeypatch, opt_file, True, *extra)


@pytest.mark.slow
def test_wandb_with_basicsr_keys_runs_against_todays_wandb(lmdb_root, tmp_path):
    """logger:wandb:project as BasicSR's files write it, offline: a wandb run that follows the tensorboard losses
    (our entry); resume_id starts that run again (basicsr's own entry)."""
    opt_file = _wandb_options(lmdb_root, tmp_path, print_freq=1)
    env = {'WANDB_MODE': 'offline', 'WANDB_DIR': str(tmp_path), 'WANDB_SILENT': 'true'}
    result = run([sys.executable, '-m', 'wdsr_basicsr.train', '-opt', opt_file], tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'train_wdsr_b_x2').glob('train_*.log')).read_text()
    run_id = re.search(r'Use wandb logger with id=(\w+); project=wdsr-test\.', log).group(1)
    (run_dir,) = (tmp_path / 'wandb').glob(f'offline-run-*-{run_id}')
    assert b'losses/l_pix' in (run_dir / f'run-{run_id}.wandb').read_bytes()
    resumed = run(
        [sys.executable, '-m', 'basicsr.train', '-opt', opt_file, '--auto_resume', '--force_yml', 'train:total_iter=4']
        + ['--force_yml', f'logger:wandb:resume_id={run_id}'],
        tmp_path,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'Resume wandb logger with id={run_id}.' in resumed.stderr


@pytest.mark.slow
def test_torchrun_through_basicsr_entry(lmdb_root, tmp_path):
    root = lmdb_root
    opt = shrunk(OPTIONS / 'dist' / 'train_wdsr_b_x2_4gpu.yml', root)
    opt['num_gpu'] = 'auto'
    opt_file = write_options(tmp_path / 'dist.yml', opt)
    result = run(torchrun('-m', 'basicsr.train', '-opt', opt_file, '--launcher', 'pytorch'), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / opt['name']).glob('train_*.log')).read_text()
    assert 'torch.distributed: backend gloo, 2 ranks, device cpu' in log


@pytest.mark.slow
def test_wdsr_as_esrgan_generator(lmdb_root, tmp_path):
    """basicsr's ESRGANModel with WDSR_B and a basicsr discriminator, from BasicSR's ESRGAN recipe, on the CPU."""
    root = lmdb_root
    opt = copy.deepcopy(SAMPLES['BasicSR/train/ESRGAN/train_ESRGAN_x4.yml'])
    del opt['train']['perceptual_opt']  # VGG weights cannot be downloaded here
    opt.update(
        scale=2,
        num_gpu=0,
        network_g={'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1, 'upscale': 2},
        network_d={'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8},
    )
    for phase, kind, sub in (('train', 'train', '_sub'), ('val', 'valid', '')):
        opt['datasets'][phase].update(
            dataroot_gt=str(root / f'DIV2K_{kind}_HR{sub}.lmdb'),
            dataroot_lq=str(root / f'DIV2K_{kind}_LR_bicubic_X2{sub}.lmdb'),
            io_backend={'type': 'lmdb'},
        )
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt['path']['pretrain_network_g'] = None
    opt['train'].update(total_iter=2)
    opt['val'].update(val_freq=2, metrics={'psnr': dict(opt['val']['metrics']['psnr'], crop_border=2)})
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    result = run(
        [sys.executable, str(REPO / 'wdsr_basicsr' / 'train.py'), '-opt', write_options(tmp_path / 'esrgan.yml', opt)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / opt['name']).glob('train_*.log')).read_text()
    assert 'l_g_gan: ' in log and 'l_d_real: ' in log and '# psnr: ' in log
    models = tmp_path / 'experiments' / opt['name'] / 'models'
    assert (models / 'net_g_latest.pth').exists() and (models / 'net_d_latest.pth').exists()


@pytest.mark.slow
def test_wheel_install_and_uninstall(tmp_path):
    """A wheel (not editable) carries the hook; pip uninstall removes it."""
    source = tmp_path / 'source'  # pip builds in the tree it is given: a copy keeps build/ out of the checkout
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            '.venv', '.git', 'build', '*.egg-info', '__pycache__', 'experiments', 'results', 'tb_logger', 'datasets'
        ),
    )
    built = subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            'wheel',
            '--no-deps',
            '--no-build-isolation',
            '-q',
            '-w',
            str(tmp_path / 'dist'),
            str(source),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / 'dist').glob('wdsr_basicsr-*.whl'))
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(tmp_path / 'venv')], check=True)
    venv_python = tmp_path / 'venv' / 'bin' / 'python'
    site_dir = Path(
        subprocess.run(
            [str(venv_python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_dir / 'deps.pth').write_text(
        f'{SITE_PACKAGES}\n'
    )  # torch, basicsr, ...: a path entry (its .pth files unread)
    pip = [sys.executable, '-m', 'pip', '--python', str(venv_python)]
    installed = subprocess.run(
        pip + ['install', '--no-deps', '--no-index', '-q', str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert (site_dir / 'wdsr_basicsr.pth').is_file() and (site_dir / 'wdsr_basicsr_startup.py').is_file()
    assert (site_dir / 'wdsr_basicsr_shim.py').is_file()  # the hook's torchvision shim
    page = site_dir / 'wdsr_basicsr' / 'utils' / 'page'  # the results page's template, package data
    assert sorted(p.name for p in page.iterdir()) == ['index.html', 'page.css', 'page.js']
    result = subprocess.run(
        [
            str(venv_python),
            '-c',
            'import basicsr, wdsr_basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\n'
            'print("WDSR_B" in ARCH_REGISTRY, wdsr_basicsr.__file__)',
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ['True', str(site_dir / 'wdsr_basicsr' / '__init__.py')]
    removed = subprocess.run(pip + ['uninstall', '-y', '-q', 'wdsr-basicsr'], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr[-2000:]
    assert sorted(p.name for p in site_dir.iterdir()) == ['deps.pth']


# Made by scripts/sample_option_files.py's sample() from XPixelGroup/HAT@1638a9a, HVision-NKU/SRFormer@d0c2da6,
# sunny2109/SAFMN@68c2182, sczhou/CodeFormer@b33cc7d and zhengchen1999/DAT@1645c64 options/ (98 files; SRFormer's
# three that are not valid YAML, which basicsr cannot read either, are left out).
SIBLINGS = json.loads((DATA / 'siblings_options.json').read_text())


def register_siblings():
    """Each type the sibling files name that basicsr lacks, registered as the project's own train.py would, by a
    stand-in that declares nothing: a model or dataset reads what basicsr's base reads, a factory takes anything."""
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY

    def factory(**kwargs):
        return kwargs

    for opt in SIBLINGS.values():
        if opt['model_type'] not in MODEL_REGISTRY:
            MODEL_REGISTRY.register(type(opt['model_type'], (SRModel,), {}))
        for dataset in opt['datasets'].values():
            if dataset['type'] not in DATASET_REGISTRY:
                DATASET_REGISTRY.register(type(dataset['type'], (PairedImageDataset,), {}))
        built = [(ARCH_REGISTRY, v) for k, v in opt.items() if k.startswith('network_')]
        built += [(LOSS_REGISTRY, v) for k, v in opt.get('train', {}).items() if k.endswith('_opt') and v]
        for registry, section in built:
            if section['type'] not in registry:
                registry._do_register(section['type'], factory)


@pytest.mark.parametrize('name', sorted(SIBLINGS))
def test_sibling_projects_files_are_never_refused(name, vgg_on_disk):
    register_siblings()
    check_options(copy.deepcopy(SIBLINGS[name]), name, is_train(name))


def test_the_sibling_sample_holds_their_real_quirks():
    """The sample carries what refused them before: CodeFormer's never-validate frequency, SRFormer's top-level
    save_img beside val's with another value, in the projects' own words."""
    assert sum(1 for opt in SIBLINGS.values() if (opt.get('val') or {}).get('val_freq', 0) >= 5e10) >= 4
    assert any(
        isinstance(opt.get('save_img'), bool) and opt['save_img'] != opt['val']['save_img'] for opt in SIBLINGS.values()
    )
    assert {name.split('/')[0] for name in SIBLINGS} == {'HAT', 'SRFormer', 'SAFMN', 'CodeFormer', 'DAT'}


def test_wdsr_switches_under_another_model_have_no_effect(vgg_on_disk, monkeypatch):
    """use_compile / use_amp under ESRGANModel: warned as unread, and no compiler or GPU asked for."""
    monkeypatch.setenv('CXX', 'no-such-compiler')
    opt = copy.deepcopy(SAMPLES['BasicSR/train/ESRGAN/train_ESRGAN_x4.yml'])
    opt.update(use_compile=True, use_amp=True, amp_bf16=False, num_gpu=0)
    warnings = check_options(copy.deepcopy(opt), 'x.yml', True)
    assert [w for w in warnings if 'use_' in w] == [
        f"x.yml: option {key} has no effect: ESRGANModel, PairedImageDataset and basicsr's pipeline do not read it "
        'there.'
        for key in ('use_compile', 'use_amp')
    ]
    parse(monkeypatch, write_options(vgg_on_disk / 'opt.yml', opt), True)  # nothing refused


def test_a_word_beside_the_key_it_resembles_is_not_a_typo(vgg_on_disk):
    """`dataset: toy` beside `datasets:` cannot be a dataset section: a warning; `val_frq: 5` beside `val_freq`
    could be the frequency: refused as its typo."""
    opt = copy.deepcopy(SAMPLES['BasicSR/train/EDSR/train_EDSR_Mx2.yml'])
    assert check_options(dict(copy.deepcopy(opt), dataset='toy'), 'x.yml', True) == [
        "x.yml: option dataset has no effect: SRModel, PairedImageDataset and basicsr's pipeline do not read it there."
    ]
    opt['val']['val_frq'] = 5
    with pytest.raises(OptionError, match='unknown option val:val_frq \\(did you mean val_freq\\?\\)'):
        check_options(opt, 'x.yml', True)


@pytest.mark.parametrize(
    'edit, message',
    [
        (lambda o: o['datasets']['train'].update(color='Y'), "datasets:train:color='Y' must be one of y."),
        (lambda o: o['train']['pixel_opt'].update(loss_weight=-1.0), 'pixel_opt:loss_weight=-1.0 must be at least 0.'),
        (
            lambda o: o['val'].update(val_frq=o['val'].pop('val_freq')),
            'unknown option val:val_frq (did you mean val_freq?)',
        ),
        (
            lambda o: o['network_g'].update(rgb_mean=[0.4, 0.4]),
            'network_g:rgb_mean=[0.4, 0.4] must be a list of 3 values',
        ),
    ],
)
def test_bad_values_are_refused_through_basicsr_own_parse_options(lmdb_root, tmp_path, monkeypatch, edit, message):
    """As a sibling's train.py reaches it: basicsr.utils.options.parse_options (ours, through compat)."""
    import basicsr.utils.options

    opt = shrunk(OPTIONS / 'train_wdsr_b_x2.yml', lmdb_root)
    edit(opt)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', write_options(tmp_path / 'e.yml', opt)])
    with pytest.raises(SystemExit) as error:  # the entry ends in one line, as argparse ends a usage error
        basicsr.utils.options.parse_options(str(tmp_path), is_train=True)
    assert str(error.value).startswith('error: ') and message in str(error.value) and '\n' not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['e.yml']
