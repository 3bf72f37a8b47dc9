"""Distributed training on 2 CPU processes (gloo), from the shipped option files with only paths, sizes and
lengths shrunk: every launcher users have, validation split across ranks, kill and resume, stalled ranks."""

import json
import os
import re
import signal
import sys
import time

import pytest
import torch
from basicsr.archs import build_network

from helpers import OPTIONS, TEST, TRAIN, VALID_CROPS, free_port, make_lmdbs, popen, run, torchrun, write_options
from wdsr_basicsr.options import load_options
from wdsr_basicsr.runs import shrink_options

pytestmark = pytest.mark.slow  # every test starts several processes

# three validation images: two ranks get an uneven split (2 + 1)
VALID = {'0801': ('chelsea', 101, 97), '0802': ('coffee', 90, 110), '0803': ('astronaut', 77, 83)}

# one file per shipped training family
FAMILIES = [
    'train_wdsr_a_x3.yml',
    'train_wdsr_b_x2.yml',
    'train_edsr_x4.yml',
    'train_rdn_x2.yml',
    'paper/table1_wdsr_b_b1_x2.yml',
    'paper/norm_batch_lr1e-4_x2.yml',
    'dist/train_wdsr_b_x2_4gpu.yml',
    'authors/train_reloaded_wdsr_x2.yml',
    'demo_wdsr_b_x2.yml',
]
SMALL_NETS = {
    'WDSR_A': {'num_feat': 8, 'num_block': 1},
    'WDSR_B': {'num_feat': 8, 'num_block': 1},
    'EDSR': {'num_feat': 8, 'num_block': 1},
    'RDN': {'num_feat': 8, 'num_block': 1, 'num_layer': 2, 'growth': 8},
}


@pytest.fixture(scope='module')
def valid3_root(tmp_path_factory):
    """LMDBs whose validation set has three images, split unevenly across two ranks."""
    return make_lmdbs(tmp_path_factory.mktemp('div2k'), (2, 3, 4), VALID)


def shipped(rel, root, name, total_iter=4, **top):
    """A shipped option file with only paths, sizes and lengths shrunk (and num_gpu 0: CI has no GPU)."""
    shipped_opt = load_options(OPTIONS / rel)
    opt = shrink_options(
        shipped_opt,
        data=str(root),
        name=name,
        iters=total_iter,
        gt_size=24,
        batch=2,
        workers=0,
        network=SMALL_NETS[shipped_opt['network_g']['type']],
        enlarge=4,
        validations=total_iter // 2,
        checkpoints=total_iter // 2,
    )
    opt.update(num_gpu=0, **top)
    return opt


def logs(cwd, name):
    return ''.join(p.read_text() for p in sorted((cwd / 'experiments' / name).glob('train_*.log')))


def check_trained(cwd, name, ema, world_size=2):
    log = logs(cwd, name)
    assert f'World size (gpu number): {world_size}' in log and 'End of training' in log
    assert len(re.findall(r'# psnr: ', log)) >= 2  # validated at 2 and 4 (and after the last save)
    models = cwd / 'experiments' / name / 'models'
    assert {'net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth'} <= {p.name for p in models.iterdir()}
    checkpoint = torch.load(models / 'net_g_latest.pth', weights_only=True)
    assert ('params_ema' in checkpoint) == (ema > 0)
    return log


@pytest.mark.parametrize('ema', [None, 0.999], ids=['shipped_ema', 'ema_0.999'])
@pytest.mark.parametrize('rel', FAMILIES)
def test_every_shipped_family_trains_validates_and_saves(lmdb_root, tmp_path, rel, ema):
    """One process: every family's network, dataset and schedule build and step, with and without EMA; whether DDP
    must broadcast its buffers is whether the network holds BatchNorm (the torchrun runs below take both kinds)."""
    opt = shipped(rel, lmdb_root, 'family')
    if ema is not None:
        opt['train']['ema_decay'] = ema
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'o.yml', opt)], tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    check_trained(tmp_path, 'family', opt['train']['ema_decay'], world_size=1)
    has_bn = any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in build_network(opt['network_g']).modules()
    )
    assert has_bn == (opt['network_g'].get('norm') == 'batch')


#: The families whose distributed runs differ: BatchNorm statistics broadcast and averaged by EMA, a network of
#: constant buffers with EMA, and the demo (every validation image saved once across ranks, whole images cached).
DISTRIBUTED = [('paper/norm_batch_lr1e-4_x2.yml', 0.999), ('train_rdn_x2.yml', 0.999), ('demo_wdsr_b_x2.yml', None)]


@pytest.mark.parametrize('rel, ema', DISTRIBUTED)
def test_torchrun_trains_the_families_whose_ddp_differs(lmdb_root, tmp_path, rel, ema):
    opt = shipped(rel, lmdb_root, 'family')
    if ema is not None:
        opt['train']['ema_decay'] = ema
    result = run(
        torchrun(TRAIN, '-opt', write_options(tmp_path / 'o.yml', opt), '--launcher', 'pytorch'), tmp_path, timeout=180
    )  # a collective on one rank only hangs until this
    assert result.returncode == 0, result.stderr[-4000:]
    log = check_trained(tmp_path, 'family', opt['train']['ema_decay'])
    # constant buffers (WDSR's mean) are never broadcast; BatchNorm statistics on the CPU are
    has_bn = opt['network_g'].get('norm') == 'batch'
    assert f'backend gloo, 2 ranks, device cpu, broadcast_buffers {has_bn}' in log
    if opt['val']['save_img']:  # every validation image saved once, whichever rank ran it
        for stem in VALID_CROPS:
            assert (tmp_path / 'experiments' / 'family' / 'visualization' / stem / f'{stem}_2.png').exists()


def test_torchrun_compiled_step_equals_eager(lmdb_root, tmp_path):
    """DDP (gloo) with use_compile: the same weights as the eager DDP run after the same steps."""
    weights = {}
    for compiled in (False, True):
        name = 'compiled' if compiled else 'eager'
        opt = shipped('train_wdsr_b_x2.yml', lmdb_root, name, use_compile=compiled)
        result = run(
            torchrun(TRAIN, '-opt', write_options(tmp_path / f'{name}.yml', opt), '--launcher', 'pytorch'),
            tmp_path,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        log = check_trained(tmp_path, name, opt['train']['ema_decay'])
        assert ('use_compile: the training step' in log) == compiled
        path = tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth'
        weights[compiled] = torch.load(path, weights_only=True)['params']
    for key, value in weights[False].items():
        if value.is_floating_point():
            error = (weights[True][key].double() - value.double()).norm() / max(value.double().norm(), 1e-12)
            assert error < 1e-4, key


def metrics_json(results):
    return json.loads(next(results.glob('metrics_*.json')).read_text())


def test_distributed_validation_equals_one_process(valid3_root, tmp_path):
    opt = shipped('train_wdsr_b_x2.yml', valid3_root, 'trained')  # EMA off, as shipped
    result = run(torchrun(TRAIN, '-opt', write_options(tmp_path / 't.yml', opt), '--launcher', 'pytorch'), tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    last = float(re.findall(r'# psnr_y: ([0-9.]+)', logs(tmp_path, 'trained'))[-1])

    test_opt = load_options(OPTIONS / 'test_wdsr_b_x2.yml')  # asks for params_ema
    test_opt['num_gpu'] = 0
    div2k = next(d for d in test_opt['datasets'].values() if d['name'] == 'DIV2K_valid')  # its DIV2K set only
    test_opt['datasets'] = {
        'test_1': dict(
            div2k, dataroot_gt=opt['datasets']['val']['dataroot_gt'], dataroot_lq=opt['datasets']['val']['dataroot_lq']
        )
    }
    test_opt['network_g'] = opt['network_g']
    test_opt['path']['pretrain_network_g'] = 'experiments/trained/models/net_g_latest.pth'
    figures = {}
    for name in ('single', 'dist'):
        test_opt['name'] = name
        opt_file = write_options(tmp_path / f'{name}.yml', test_opt)
        args = (
            [sys.executable, TEST, '-opt', opt_file]
            if name == 'single'
            else torchrun(TEST, '-opt', opt_file, '--launcher', 'pytorch')
        )
        result = run(args, tmp_path)
        assert result.returncode == 0, result.stderr[-4000:]
        log = next((tmp_path / 'results' / name).glob('test_*.log')).read_text()
        assert "has no 'params_ema' (trained without EMA): loading its 'params'" in log
        figures[name] = metrics_json(tmp_path / 'results' / name)
        saved = sorted(p.name for p in (tmp_path / 'results' / name / 'visualization' / 'DIV2K_valid').iterdir())
        assert saved == [f'{stem}_{name}.png' for stem in VALID]
    single, dist = figures['single'], figures['dist']
    assert list(single['images']) == list(dist['images']) == list(VALID)
    for metric, value in single['mean'].items():
        assert abs(dist['mean'][metric] - value) < 1e-6
        # the mean is the plain average of the per-image figures
        assert abs(value - sum(v[metric] for v in single['images'].values()) / len(VALID)) < 1e-9
    assert abs(single['mean']['psnr_y'] - last) < 1e-4  # the training run's split validation logged the same


def child_pids(pid):
    children = []
    for entry in os.listdir('/proc'):
        try:
            with open(f'/proc/{entry}/stat') as f:
                if entry.isdigit() and int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                    children.append(int(entry))
        except OSError:
            continue
    return children


def rank_pid(launcher_pid, rank):
    for pid in child_pids(launcher_pid):
        with open(f'/proc/{pid}/environ', 'rb') as f:
            if f'RANK={rank}'.encode() in f.read().split(b'\0'):
                return pid
    raise LookupError(f'no process of rank {rank} under {launcher_pid}')


def wait_for(predicate, timeout=120):
    end = time.time() + timeout
    while not predicate():
        assert time.time() < end, 'timed out'
        time.sleep(0.2)


def test_kill_one_rank_then_both_resume_alike(valid3_root, tmp_path):
    opt = shipped('train_wdsr_b_x2.yml', valid3_root, 'killed', total_iter=100000)
    opt_file = write_options(tmp_path / 'k.yml', opt)
    states = tmp_path / 'experiments' / 'killed' / 'training_states'
    proc = popen(torchrun(TRAIN, '-opt', opt_file, '--launcher', 'pytorch'), tmp_path)
    try:
        wait_for(lambda: len(list(states.glob('*.state'))) >= 2 or proc.poll() is not None)
        os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    newest = max(int(p.stem) for p in states.glob('*.state'))
    opt['train']['total_iter'] = newest + 2
    result = run(
        torchrun(TRAIN, '-opt', write_options(tmp_path / 'k.yml', opt), '--launcher', 'pytorch', '--auto_resume'),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    log = logs(tmp_path, 'killed')
    assert f'All 2 rank(s) resumed at iteration {newest} with identical weights.' in log
    assert (
        'Resuming training from epoch' in log
        and (tmp_path / 'experiments' / 'killed' / 'models' / f'net_g_{newest + 2}.pth').exists()
    )


def launched(opt_file):
    """The training entry's arguments under a launcher."""
    return [TRAIN, '-opt', opt_file, '--launcher', 'pytorch']


def test_slurm_launcher(valid3_root, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')  # `scontrol show hostname LIST | head -n1`
    (bin_dir / 'scontrol').chmod(0o755)
    opt = shipped('train_wdsr_b_x3.yml', valid3_root, 'slurm')
    opt['dist_params']['port'] = free_port()
    opt_file = write_options(tmp_path / 's.yml', opt)
    procs = [
        popen(
            [sys.executable, TRAIN, '-opt', opt_file, '--launcher', 'slurm'],
            tmp_path,
            env={
                'PATH': f'{bin_dir}:{os.environ["PATH"]}',
                'SLURM_PROCID': str(rank),
                'SLURM_NTASKS': '2',
                'SLURM_LOCALID': str(rank),
                'SLURM_NODELIST': 'node[1-2]',
            },
        )
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    check_trained(tmp_path, 'slurm', 0)


def test_stalled_rank_ends_the_run_on_every_rank(valid3_root, tmp_path):
    opt = shipped('train_wdsr_b_x2.yml', valid3_root, 'stalled', total_iter=100000)
    opt['dist_params']['timeout_min'] = 0.1  # 6 s
    states = tmp_path / 'experiments' / 'stalled' / 'training_states'
    proc = popen(torchrun(TRAIN, '-opt', write_options(tmp_path / 'st.yml', opt), '--launcher', 'pytorch'), tmp_path)
    try:
        wait_for(lambda: any(states.glob('*.state')) or proc.poll() is not None)
        rank0, rank1 = rank_pid(proc.pid, 0), rank_pid(proc.pid, 1)
        os.kill(rank1, signal.SIGSTOP)
        wait_for(
            lambda: not os.path.exists(f'/proc/{rank0}') or open(f'/proc/{rank0}/stat').read().split()[2] == 'Z',
            timeout=90,
        )
        os.kill(rank1, signal.SIGCONT)  # let the launcher's SIGTERM reach it
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert '[rank 0 of 2]' in stderr and 'another rank died or stalled' in stderr, stderr[-4000:]
