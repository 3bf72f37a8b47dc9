"""A job on a shared cluster: asked to stop mid-run, it saves and exits 75; resumed, it ends as if never stopped.

Each test runs the shipped x2 recipe (only paths, sizes and lengths shrunk; 2 loader workers) once left alone and
once stopped by a signal and resumed with ``--auto_resume``, and compares what the two runs end with, bitwise.
"""

import json
import signal
import sys

import pytest
import torch

from helpers import OPTIONS, TRAIN, run, start, torchrun, write_options
from wdsr_basicsr.options import load_options
from wdsr_basicsr.runs import shrink_options
from wdsr_basicsr.utils.preempt import REQUEUE_EXIT, VOTE_EVERY

pytestmark = pytest.mark.slow  # each test runs three trainings, some under torchrun

ITERS = 40
INSTALLED = 'SIGTERM, SIGUSR1 or Ctrl+C: the run saves'  # the log line once the model handles the signals
ENLARGE, BATCH = 7, 2  # an epoch of the cached set (2 images): 14 samples, so 3 iterations on 2 ranks, 7 on 1


def recipe(root, name, cache_data, **logger):
    opt = shrink_options(
        load_options(OPTIONS / 'train_wdsr_b_x2.yml'),
        data=str(root),
        name=name,
        iters=ITERS,
        gt_size=24,
        batch=BATCH,
        workers=2,
        network={'num_feat': 8, 'num_block': 1},
        enlarge=ENLARGE,
        validations=4,
        checkpoints=4,
    )
    opt['num_gpu'] = 0
    train = opt['datasets']['train']
    assert train['cache_data'] is True  # as shipped
    if not cache_data:
        train['cache_data'] = False
        train.pop('sampling')
    opt['logger'].update(logger)
    return opt


def stopped(command, cwd, number):
    """Start ``command``, send it ``number`` once the model handles it, return (exit status, output)."""
    proc = start(command, cwd, timeout=300)
    while line := proc.next_line(timeout=300):
        if INSTALLED in line:
            proc.send_signal(number)
            break
    result = proc.wait()
    return result.returncode, result.stderr + result.stdout


def place(iteration, per_rank):
    """Epoch and samples taken per rank after ``iteration`` (1-based) when an epoch gives each rank ``per_rank``."""
    per_epoch = per_rank // BATCH  # the last incomplete batch is dropped
    return {'epoch': (iteration - 1) // per_epoch, 'taken': ((iteration - 1) % per_epoch + 1) * BATCH}


def assert_same_end(cwd, left, resumed, ema=False):
    """The two runs end with the same networks, optimizer and scheduler states and validation records."""
    a, b = (cwd / 'experiments' / name for name in (left, resumed))
    keys = ['params'] + ['params_ema'] * ema
    nets = [torch.load(run / 'models' / 'net_g_latest.pth', weights_only=True) for run in (a, b)]
    for key in keys:
        assert nets[0][key].keys() == nets[1][key].keys()
        assert all(torch.equal(nets[0][key][n], nets[1][key][n]) for n in nets[0][key])
    states = [torch.load(run / 'training_states' / f'{ITERS}.state', weights_only=True) for run in (a, b)]
    for part in ('optimizers', 'schedulers', 'sampler'):
        assert repr(states[0][part]) == repr(states[1][part])  # tensors and numbers printed in full
    for x, y in zip(states[0]['optimizers'][0]['state'].values(), states[1]['optimizers'][0]['state'].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert (a / 'validation.jsonl').read_text() == (b / 'validation.jsonl').read_text()


@pytest.mark.parametrize('cache_data', [True, False], ids=['cache_data', 'lmdb_records'])
def test_sigterm_to_torchrun_then_auto_resume_is_the_run_left_alone(lmdb_root, tmp_path, cache_data):
    """2 gloo ranks: torchrun forwards SIGTERM, both ranks save at the second vote (iteration 20) and exit 75."""
    per_rank = None
    for name in ('alone', 'stopped'):
        opt_file = write_options(tmp_path / f'{name}.yml', recipe(lmdb_root, name, cache_data))
        command = torchrun(TRAIN, '-opt', opt_file, '--launcher', 'pytorch')
        if name == 'alone':
            result = run(command, tmp_path)
            assert result.returncode == 0, result.stderr[-3000:]
            continue
        status, out = stopped(command, tmp_path, signal.SIGTERM)
        assert status != 0  # torchrun itself ends with its SignalException
        assert f'exitcode  : {REQUEUE_EXIT}' in out or 'SignalException' in out, out[-3000:]
        log = next((tmp_path / 'experiments' / name).glob('train_*.log')).read_text()
        stop = 2 * VOTE_EVERY
        assert f'SIGTERM: saving iteration {stop} and stopping (exit status {REQUEUE_EXIT})' in log, out[-6000:]
        states = sorted(p.name for p in (tmp_path / 'experiments' / name / 'training_states').iterdir())
        assert states == ['10.state', f'{stop}.state']
        state = torch.load(tmp_path / 'experiments' / name / 'training_states' / f'{stop}.state', weights_only=True)
        samples = (
            2 * ENLARGE
            if cache_data
            else ENLARGE * len((lmdb_root / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt').read_text().splitlines())
        )
        per_rank = -(-samples // 2)
        assert state['sampler'] == place(stop, per_rank)
        assert len(state['random_states']) == 2
        result = run(command + ['--auto_resume'], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    assert per_rank is not None
    assert_same_end(tmp_path, 'alone', 'stopped')


def test_sigusr1_through_basicsrs_entry_keeps_n_and_the_best(lmdb_root, tmp_path):
    """python -m basicsr.train, one process, EMA on: SIGUSR1 saves iteration 1 (mid-epoch) and exits 75; resumed
    with keep_checkpoints: 2, it ends as the run left alone, keeping the last 2 iterations, the latest and the
    best network (that of the best PSNR in the record, saved by the run left alone)."""
    command = [sys.executable, '-m', 'basicsr.train', '-opt']
    for name, logger in (('alone', {}), ('stopped', {'keep_checkpoints': 2})):
        opt = recipe(lmdb_root, name, True, **logger)
        opt['train']['ema_decay'] = 0.999
        opt_file = write_options(tmp_path / f'{name}.yml', opt)
        if name == 'alone':
            result = run(command + [opt_file], tmp_path)
            assert result.returncode == 0, result.stderr[-3000:]
            continue
        status, out = stopped(command + [opt_file], tmp_path, signal.SIGUSR1)
        assert status == REQUEUE_EXIT, out[-3000:]
        exp = tmp_path / 'experiments' / name
        state = torch.load(exp / 'training_states' / '1.state', weights_only=True)
        assert state['sampler'] == place(1, 2 * ENLARGE)  # 1 of 7 iterations of epoch 0
        result = run(command + [opt_file, '--auto_resume'], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f'Resuming epoch 0 after its first {BATCH} samples per rank.' in result.stdout + result.stderr
    assert_same_end(tmp_path, 'alone', 'stopped', ema=True)
    exp = tmp_path / 'experiments' / 'stopped'
    saved = [ITERS * k // 4 for k in (3, 4)]
    assert sorted(p.name for p in (exp / 'training_states').iterdir()) == [f'{i}.state' for i in saved]
    assert sorted(p.name for p in (exp / 'models').iterdir()) == sorted(
        [f'net_g_{i}.pth' for i in saved] + ['net_g_best.pth', 'net_g_latest.pth']
    )
    rows = [
        json.loads(line) for line in (tmp_path / 'experiments' / 'alone' / 'validation.jsonl').read_text().splitlines()
    ]
    best = max(rows, key=lambda row: (row['mean']['psnr'], row['iter']))['iter']  # basicsr: a tie goes to the later
    ours = torch.load(exp / 'models' / 'net_g_best.pth', weights_only=True)
    theirs = torch.load(tmp_path / 'experiments' / 'alone' / 'models' / f'net_g_{best}.pth', weights_only=True)
    for key in ('params', 'params_ema'):
        assert all(torch.equal(ours[key][n], theirs[key][n]) for n in theirs[key])
    row = next(r for r in rows if r['iter'] == best)
    assert ours['best'] == {'iter': best, 'dataset': row['dataset'], 'metric': 'psnr', 'value': row['mean']['psnr']}
    assert any('saved as net_g_best.pth' in log.read_text() for log in exp.glob('train_*.log'))
