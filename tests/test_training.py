"""Training through BasicSR: entry, checkpoints, resume on CPU, torchrun/gloo, bad input, crash safety."""

import json
import resource
import subprocess
import sys

import pytest
import torch

from helpers import REPO, TRAIN, cpu_env, run, write_options
from wdsr_basicsr.runs import read_validations

pytestmark = pytest.mark.slow  # every test runs the training or test entry end to end


def fixture_set(name, gt, lq):
    """A dataset section over two of the fixture's LMDBs."""
    return {
        'name': name,
        'type': 'CheckedPairedImageDataset',
        'dataroot_gt': str(gt),
        'dataroot_lq': str(lq),
        'io_backend': {'type': 'lmdb'},
    }


def tiny_options(root, name='tiny', scale=2, total_iter=4, norm='weight', **network):
    return {
        'name': name,
        'model_type': 'WDSRModel',
        'scale': scale,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {
            'train': dict(
                fixture_set(
                    'fixture', root / 'DIV2K_train_HR_sub.lmdb', root / f'DIV2K_train_LR_bicubic_X{scale}_sub.lmdb'
                ),
                gt_size=24,
                use_hflip=True,
                use_rot=True,
                num_worker_per_gpu=0,
                batch_size_per_gpu=2,
                dataset_enlarge_ratio=1,
            ),
            'val': fixture_set(
                'fixture_valid', root / 'DIV2K_valid_HR.lmdb', root / f'DIV2K_valid_LR_bicubic_X{scale}.lmdb'
            ),
        },
        'network_g': dict({'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1, 'upscale': scale, 'norm': norm}, **network),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {
            'val_freq': 2,
            'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': False}},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }


def train(cwd, opt_file, *extra):
    return run([sys.executable, TRAIN, '-opt', opt_file, *extra], cwd)


def test_train_resume_and_checkpoints(lmdb_root, tmp_path):
    opt_file = write_options(tmp_path / 'tiny.yml', tiny_options(lmdb_root))
    result = train(tmp_path, opt_file)
    assert result.returncode == 0, result.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'tiny'
    models = sorted(p.name for p in (exp / 'models').iterdir())
    assert models == ['net_g_2.pth', 'net_g_4.pth', 'net_g_best.pth', 'net_g_latest.pth']  # best: val:best_metric
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']
    checkpoint = torch.load(exp / 'models' / 'net_g_4.pth', weights_only=True)
    assert checkpoint['network_g'] == {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'norm': 'weight'}
    assert set(checkpoint) == {'network_g', 'params', 'params_ema'}
    assert any('parametrizations.weight.original1' in k for k in checkpoint['params_ema'])
    log = next(exp.glob('train_tiny_*.log')).read_text()
    assert '# psnr:' in log

    # resume on CPU from the newest state; a damaged newest state is skipped
    resumed = tiny_options(lmdb_root, total_iter=8)
    opt_file = write_options(tmp_path / 'tiny.yml', resumed)
    (exp / 'training_states' / '6.state').write_bytes(b'truncated')
    result = train(tmp_path, opt_file, '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f'Skipping {tmp_path}/experiments/tiny/training_states/6.state: path:resume_state'
        in result.stdout + result.stderr
    )
    log = sorted(exp.glob('train_tiny_*.log'))[-1].read_text()
    assert 'Resuming training from epoch' in log and 'iter: 4.' in log
    assert (exp / 'models' / 'net_g_8.pth').exists()
    assert not list((exp / 'training_states').glob('.*tmp'))


def test_auto_resume_takes_the_newest_consistent_state(lmdb_root, tmp_path):
    opt = tiny_options(lmdb_root, name='trust')
    assert train(tmp_path, write_options(tmp_path / 'r.yml', opt)).returncode == 0
    exp = tmp_path / 'experiments' / 'trust'
    for path in (exp / 'models' / 'net_g_4.pth', exp / 'training_states' / '4.state'):
        assert path.stat().st_mode & 0o777 == 0o644  # what torch.save gives under the default umask
    (exp / 'models' / 'net_g_4.pth').write_bytes((exp / 'models' / 'net_g_4.pth').read_bytes()[:300])  # cut short
    (exp / 'training_states' / 'notes.state').write_text('mine')
    (exp / 'models' / '.net_g_6.pth.k3j2.partial').write_bytes(b'half a save')
    opt['train']['total_iter'] = 6
    result = train(tmp_path, write_options(tmp_path / 'r.yml', opt), '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert (
        f'Skipping {tmp_path}/experiments/trust/training_states/4.state: the network file of' in out
        and 'net_g_4.pth' in out
    )
    assert 'notes.state is not a training state (<iter>.state); ignored' in out
    assert f'Removed {tmp_path}/experiments/trust/models/.net_g_6.pth.k3j2.partial, left by an interrupted save' in out
    assert 'iter: 2.' in sorted(exp.glob('train_trust_*.log'))[-1].read_text()  # resumed from 2, not 4
    assert not (exp / 'models' / '.net_g_6.pth.k3j2.partial').exists() and (exp / 'models' / 'net_g_6.pth').exists()

    # every state damaged: stop with the list instead of starting again from 0
    for state in (exp / 'training_states').glob('*.state'):
        state.write_bytes(b'damaged')
    opt['train']['total_iter'] = 8
    result = train(tmp_path, write_options(tmp_path / 'r.yml', opt), '--auto_resume')
    assert result.returncode != 0
    assert (
        (
            f'--auto_resume: none of the 3 training state(s) in {tmp_path}/experiments/trust/training_states can be '
            'resumed'
        )
        in result.stderr
        and '6.state' in result.stderr
        and 'Start training' not in result.stdout + result.stderr
    )


def test_resume_state_that_is_a_network_file_is_named(lmdb_root, tmp_path):
    opt = tiny_options(lmdb_root, name='wrongfile')
    assert train(tmp_path, write_options(tmp_path / 'w.yml', opt)).returncode == 0
    opt['path']['resume_state'] = 'experiments/wrongfile/models/net_g_4.pth'
    result = train(tmp_path, write_options(tmp_path / 'w.yml', opt))
    assert result.returncode != 0
    assert 'net_g_4.pth is not a training state' in result.stderr and 'path:pretrain_network_g' in result.stderr


def test_resume_with_another_network_names_the_option_and_the_state(lmdb_root, tmp_path):
    opt = tiny_options(lmdb_root, name='grown')
    assert train(tmp_path, write_options(tmp_path / 'g.yml', opt)).returncode == 0
    models = tmp_path / 'experiments' / 'grown' / 'models'
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    opt['network_g']['num_feat'] = 16
    opt['train']['total_iter'] = 8
    result = train(tmp_path, write_options(tmp_path / 'g.yml', opt), '--auto_resume')
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]  # after basicsr's log of the options: one message, no traceback
    assert 'Traceback' not in result.stderr and 'size mismatch' not in result.stderr, result.stderr[-3000:]
    assert last.startswith('error: resume_state ') and '4.state' in last and 'num_feat: 8 there, 16 here' in last
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before  # nothing overwritten


def test_test_entry_writes_results_under_cwd(lmdb_root, tmp_path):
    opt = tiny_options(lmdb_root, name='first')
    assert train(tmp_path, write_options(tmp_path / 'first.yml', opt)).returncode == 0
    test_opt = {
        'name': 'tiny_test',
        'model_type': 'WDSRModel',
        'scale': 2,
        'num_gpu': 0,
        'datasets': {'test_1': dict(opt['datasets']['val'])},
        'network_g': opt['network_g'],
        'path': {
            'pretrain_network_g': 'experiments/first/models/net_g_latest.pth',
            'param_key_g': 'params_ema',
            'strict_load_g': True,
        },
        'val': {'save_img': True, 'suffix': None, 'tile': 16, 'tile_pad': 4, 'metrics': opt['val']['metrics']},
    }
    result = run(
        [
            sys.executable,
            str(REPO / 'wdsr_basicsr' / 'test.py'),
            '-opt',
            write_options(tmp_path / 'test.yml', test_opt),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / 'results' / 'tiny_test' / 'visualization' / 'fixture_valid' / '0801_tiny_test.png').exists()


@pytest.mark.parametrize(
    'change, message',
    [
        (lambda o: o['network_g'].update(num_feats=8), 'num_feats'),
        (lambda o: o['network_g'].update(norm='layer'), "norm='layer'"),
        (lambda o: o['datasets']['train'].update(dataroot_gt='/nowhere/x.lmdb'), 'dataroot_gt /nowhere/x.lmdb'),
        (lambda o: o.update(scale=3) or o['network_g'].update(upscale=3), 'scale 3 does not match the data'),
        (lambda o: o['path'].update(pretrain_network_g='bad.pth'), 'path:pretrain_network_g bad.pth cannot be loaded'),
        (lambda o: o['path'].update(resume_state='bad.pth'), 'path:resume_state bad.pth cannot be loaded'),
    ],
)
def test_bad_input_stops_before_training(lmdb_root, tmp_path, change, message):
    (tmp_path / 'bad.pth').write_bytes(b'PK\x03\x04 truncated')
    opt = tiny_options(lmdb_root, name='bad')
    if message.startswith('scale 3'):  # x2 data with a x3 option file
        opt['datasets']['train']['dataroot_lq'] = str(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb')
    change(opt)
    result = train(tmp_path, write_options(tmp_path / 'bad.yml', opt))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
    assert 'Start training' not in result.stdout + result.stderr


def test_a_run_stopped_between_save_and_validation_validates_on_resume(lmdb_root, tmp_path):
    """basicsr saves iteration 4, then validates it: stopped in between, the resumed run records that row first."""
    opt = tiny_options(lmdb_root, name='stopped')
    assert train(tmp_path, write_options(tmp_path / 's.yml', opt)).returncode == 0
    exp = tmp_path / 'experiments' / 'stopped'
    rows = read_validations(str(exp))
    assert [r['iter'] for r in rows] == [2, 4]
    (exp / 'validation.jsonl').write_text(json.dumps(rows[0]) + '\n')  # as it was when the run stopped
    opt['train']['total_iter'] = 6
    result = train(tmp_path, write_options(tmp_path / 's.yml', opt), '--auto_resume')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Validating fixture_valid at iteration 4: the run stopped after saving' in result.stdout + result.stderr
    resumed = read_validations(str(exp))
    assert [r['iter'] for r in resumed] == [2, 4, 6]
    assert resumed[1]['mean']['psnr'] == pytest.approx(rows[1]['mean']['psnr'], abs=1e-9)  # the same weights


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(lmdb_root, tmp_path):
    """A file size limit (ulimit -f) below one checkpoint, from the resumed run on: it stops at its first save with
    one line naming the file; the checkpoint it resumed from stays whole, nothing half-written is left."""
    opt = tiny_options(lmdb_root, name='full', num_feat=32, num_block=4)
    opt_file = write_options(tmp_path / 'full.yml', opt)
    assert train(tmp_path, opt_file).returncode == 0
    exp = tmp_path / 'experiments' / 'full'
    before = {p.name: p.read_bytes() for p in (exp / 'models').iterdir()}
    assert min(len(data) for data in before.values()) > 400_000
    opt['train']['total_iter'] = 6
    limit = 300_000  # bytes a file may grow to: the log and the records, not a network file

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, TRAIN, '-opt', write_options(tmp_path / 'full.yml', opt), '--auto_resume'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=cpu_env(),
        preexec_fn=limited,
        timeout=300,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: {exp}/models/net_g_6.pth could not be written (File too large)'), last
    assert 'Traceback' not in result.stderr
    assert {p.name: p.read_bytes() for p in (exp / 'models').iterdir()} == before
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == ['2.state', '4.state']
    torch.load(exp / 'training_states' / '4.state', weights_only=True)
