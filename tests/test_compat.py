"""The compat layer: basicsr 1.4.2 importable beside today's torchvision, its files untouched, each patch explained."""

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import basicsr
import basicsr.train
import pytest
import torch
from basicsr.models import build_model
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.logger import MessageLogger

from helpers import OPTIONS, model_options
from wdsr_basicsr.options import OptionError, load_options
from wdsr_basicsr.runs import shrink_options


def without_hook(code, cwd):
    """``python -c code`` in a fresh interpreter with the start-up hook off (as from a source tree)."""
    env = dict(os.environ, WDSR_BASICSR_NO_HOOK='1')
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=cwd, env=env)


def test_basicsr_files_are_untouched(tmp_path):
    """From a source tree (no start-up hook), importing the package first makes basicsr importable and runnable,
    and every file of the installed basicsr stays as it was: its import of the vanished torchvision module is
    still there, so the in-memory alias is what makes it work."""
    root = Path(basicsr.__file__).parent

    def snapshot():
        return {
            p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts
        }

    before = snapshot()
    script = (
        'import wdsr_basicsr, torch; from basicsr.archs import build_network; '
        'import basicsr.data.degradations; import basicsr.train, basicsr.test; '
        'print(build_network({"type": "WDSR_B", "num_feat": 4, "num_block": 1})(torch.rand(1, 3, 8, 8)).shape)'
    )
    result = without_hook(script, tmp_path)
    assert result.returncode == 0 and 'torch.Size([1, 3, 16, 16])' in result.stdout, result.stderr
    assert snapshot() == before
    assert (
        'from torchvision.transforms.functional_tensor import rgb_to_grayscale'
        in (root / 'data' / 'degradations.py').read_text()
    )


#: What compat.install() replaces in basicsr 1.4.2 (read off basicsr's own modules, by hand): ``module[:class]``,
#: attribute.
PATCHED = [
    ('basicsr.utils.options', 'parse_options'),
    ('basicsr.train', 'parse_options'),
    ('basicsr.test', 'parse_options'),
    ('basicsr', 'parse_options'),
    ('basicsr.models.base_model:BaseModel', 'model_to_device'),
    ('basicsr.utils.file_client:LmdbBackend', '__init__'),
    ('basicsr.data', 'worker_init_fn'),
    ('basicsr.data.paired_image_dataset:PairedImageDataset', '__getitem__'),
    ('basicsr.train', 'load_resume_state'),
    ('basicsr.train', 'create_train_val_dataloader'),
    ('basicsr.utils.logger', 'init_wandb_logger'),
    ('basicsr.utils', 'init_wandb_logger'),
    ('basicsr.train', 'init_wandb_logger'),
    ('basicsr.models', 'build_model'),
    ('basicsr.train', 'build_model'),
    ('basicsr.test', 'build_model'),
    ('basicsr.utils.logger:MessageLogger', '__call__'),
    ('basicsr.models.sr_model:SRModel', '_log_validation_metric_values'),
]
WHERE = """
import importlib, inspect, json, pkgutil, sys, warnings
from torch import serialization
import wdsr_basicsr
for module in pkgutil.walk_packages(wdsr_basicsr.__path__, 'wdsr_basicsr.'):
    importlib.import_module(module.name)  # every module of the package, the entries and compat included

def where(target, attribute):
    module, _, cls = target.partition(':')
    owner = importlib.import_module(module)
    value = getattr(getattr(owner, cls) if cls else owner, attribute)
    # through basicsr's decorators (master_only) to the first function of ours, if any
    value = inspect.unwrap(value, stop=lambda f: 'wdsr_basicsr' in f.__code__.co_filename)
    return 'wdsr_basicsr' if 'wdsr_basicsr' in value.__code__.co_filename else value.__module__.split('.')[0]

def state():
    return {
        'defined in': sorted({where(*t) for t in PATCHED}),
        'excepthook': sys.excepthook is sys.__excepthook__,
        'Counter a safe global': any(getattr(g, '__name__', '') == 'Counter' for g in serialization.get_safe_globals()),
        'runpy filter': any(f[1] is not None and 'found in sys' in f[1].pattern for f in warnings.filters),
    }

before = state()
from wdsr_basicsr import compat
compat.install()
after = state()
patched = {t: where(*t) for t in map(tuple, PATCHED)}
compat.install()  # once: a second call changes nothing
again = {t: where(*t) for t in map(tuple, PATCHED)}
print(json.dumps([before, after, sorted(set(patched.values())), patched == again]))
"""


@pytest.mark.slow
def test_importing_patches_nothing_until_install(tmp_path):
    """A fresh interpreter without the start-up hook imports every package module: basicsr's functions are still
    basicsr's, torch and the process untouched; install() then replaces exactly the hand-listed ones, once."""
    result = without_hook(f'PATCHED = {PATCHED!r}\n' + WHERE, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    before, after, patched_into, idempotent = json.loads(result.stdout.splitlines()[-1])
    untouched = {'excepthook': True, 'Counter a safe global': False, 'runpy filter': False}
    assert before == {'defined in': ['basicsr'], **untouched}
    assert after == {'defined in': ['wdsr_basicsr'], **untouched, 'runpy filter': True}
    assert patched_into == ['wdsr_basicsr'] and idempotent


def test_another_basicsr_version_is_named_and_nothing_patched(monkeypatch):
    from wdsr_basicsr import compat

    monkeypatch.setattr(compat, '_installed', False)
    monkeypatch.setattr(basicsr, '__version__', '1.4.3')
    before = basicsr.train.build_model
    with pytest.raises(compat.CompatError, match='adapts basicsr 1.4.2, and basicsr 1.4.3 is installed: nothing was'):
        compat.install()
    with pytest.raises(SystemExit, match='^error: wdsr-basicsr adapts basicsr 1.4.2'):
        compat.entry_install()
    assert basicsr.train.build_model is before


@pytest.fixture
def basicsr_log():
    """The messages basicsr's root logger gives (it does not propagate to pytest's)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = get_root_logger()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize(
    'start_iter, clock_s, current_iter, eta',
    [
        (0, 9.0, 10, '0:01:30'),  # a new run: the clock starts after iteration 1, 9 iterations in 9 s, 90 left
        (50, 20.0, 60, '0:01:20'),  # resumed at 50: 10 iterations in 20 s, 40 left
        (0, 9.0, 100, '0:00:00'),  # the last line (basicsr: -1 day, 23:59:59)
    ],
)
def test_the_eta_counts_the_iterations_left(basicsr_log, start_iter, clock_s, current_iter, eta):
    opt = {'name': 'unit', 'logger': {'print_freq': 1, 'use_tb_logger': False}, 'train': {'total_iter': 100}}
    messages = MessageLogger(opt, start_iter=start_iter)
    messages.start_time = time.time() - clock_s
    messages({'epoch': 0, 'iter': current_iter, 'lrs': [1e-3], 'time': 5.0, 'data_time': 0.1, 'l_pix': 0.25})
    assert basicsr_log == [
        f'[unit..][epoch:  0, iter:{current_iter:8,d}, lr:(1.000e-03,)] [eta: {eta}, time (data): 5.000 (0.100)] '
        'l_pix: 2.5000e-01 '
    ]


@pytest.mark.parametrize('is_train', [True, False])
def test_only_training_logs_the_best(basicsr_log, is_train):
    """basicsr's test pipeline passes the run's name as the iteration: no "Best: ... @ <name> iter" there."""
    model = SimpleNamespace(
        opt={'is_train': is_train},
        metric_results={'psnr': 31.5},
        best_metric_results={'Set5': {'psnr': {'val': 32.25, 'iter': 2000}}},
    )
    SRModel._log_validation_metric_values(model, 2000 if is_train else 'demo_2000_iter', 'Set5', None)
    best = '\tBest: 32.2500 @ 2000 iter' if is_train else ''
    assert basicsr_log == [f'Validation Set5\n\t # psnr: 31.5000{best}\n']


class _Pairs(torch.utils.data.Dataset):
    opt = {'name': 'pairs'}

    def __len__(self):
        return 1

    def __getitem__(self, index):
        lq = torch.rand(3, 8, 8)
        return {'lq': lq, 'gt': torch.nn.functional.interpolate(lq[None], scale_factor=2)[0], 'lq_path': 'a.png'}


def test_the_last_iteration_is_validated_once(tmp_path, basicsr_log):
    """basicsr's pipeline validates after its loop again, at total_iter + the epochs left: the same weights."""
    opt = model_options(tmp_path, ema=0, val={'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}})
    opt['train']['total_iter'] = 7
    model = build_model(opt)
    loader = torch.utils.data.DataLoader(_Pairs(), batch_size=1)
    for current_iter in (5, 7, 9):  # a validation at 5 and at the end; then basicsr's after its loop
        model.validation(loader, current_iter=current_iter, tb_logger=None)
    assert [m.split('\n')[0] for m in basicsr_log if m.startswith('Validation')] == [
        'Validation pairs',
        'Validation pairs',
        'Validation pairs of iteration 7 is done already.',
    ]
    assert model.best_metric_results['pairs']['psnr']['iter'] in (5, 7)


ENLARGE = 3


def _samples(lmdb_root):
    """Samples an epoch of the shipped file's training set (one per image, sampling: image) times ENLARGE."""
    return len(list((lmdb_root / 'DIV2K_train_HR').glob('*.png'))) * ENLARGE


def _training_loaders(lmdb_root, batch, iters):
    """basicsr's create_train_val_dataloader on the shipped WDSR-B x2 file, shrunk to the fixture LMDBs."""
    opt = shrink_options(
        load_options(OPTIONS / 'train_wdsr_b_x2.yml'), data=str(lmdb_root), iters=iters, batch=batch, workers=0
    )
    opt.update(num_gpu=0, dist=False, rank=0, world_size=1)
    opt['datasets']['train'].update(dataset_enlarge_ratio=ENLARGE, gt_size=24)
    for phase, dataset in opt['datasets'].items():  # as basicsr's parse_options adds them
        dataset.update(phase=phase.split('_')[0], scale=opt['scale'])
    return basicsr.train.create_train_val_dataloader(opt, get_root_logger())


def test_the_epochs_reach_total_iter_when_the_batch_does_not_divide_the_samples(lmdb_root, basicsr_log):
    """basicsr counts ceil(samples / batch) iterations an epoch; its loader drops the incomplete batch."""
    samples = _samples(lmdb_root)
    batch = samples // 2 + 1  # one whole batch an epoch; basicsr counts two
    iters = 6
    loader, sampler, _, total_epochs, total_iters = _training_loaders(lmdb_root, batch, iters)
    assert total_iters == iters
    # basicsr's loop: epochs 0 .. total_epochs, each as many batches as the loader yields, until total_iter
    sampler.set_epoch(0)
    per_epoch = sum(1 for _ in loader)
    assert per_epoch == 1 and (total_epochs + 1) * per_epoch >= iters
    assert any(m.startswith('The training loader gives 1 iterations per epoch') for m in basicsr_log)


def test_a_batch_larger_than_the_training_set_is_refused(lmdb_root):
    samples = _samples(lmdb_root)
    with pytest.raises(OptionError, match=rf'datasets:train: {samples} samples per rank .* fewer than one batch'):
        _training_loaders(lmdb_root, samples + 1, 6)
