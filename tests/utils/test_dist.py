"""Launch checks: launcher and device combinations that cannot work stop before any work."""

import sys

import pytest

from helpers import OPTIONS, TRAIN, run, write_options
from wdsr_basicsr.options import load_options
from wdsr_basicsr.utils import dist as dist_util


def fake_gpus(monkeypatch, count):
    monkeypatch.setattr(dist_util.torch.cuda, 'is_available', lambda: count > 0)
    monkeypatch.setattr(dist_util.torch.cuda, 'device_count', lambda: count)


@pytest.mark.parametrize(
    'gpus, launcher, world, local_rank, opt, message',
    [
        (2, 'none', 1, 0, {'num_gpu': 8}, 'num_gpu=8 but 2 GPU(s) are visible; use num_gpu: auto or at most 2'),
        (0, 'none', 1, 0, {'num_gpu': 1}, 'num_gpu=1 but no CUDA GPU is visible'),
        (2, 'pytorch', 2, 0, {'num_gpu': 8}, 'num_gpu=8 but the launcher started 2 process(es)'),
        (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'backend': 'nccl'}}, 'dist_params:backend=nccl needs CUDA'),
        (2, 'pytorch', 4, 3, {'num_gpu': 'auto'}, 'local rank 3 (--local-rank / LOCAL_RANK) but 2 GPU(s) are visible'),
        (
            0,
            'none',
            1,
            0,
            {'num_gpu': 0, 'use_amp': True, 'amp_bf16': False},
            'use_amp with fp16 (amp_bf16: false) needs a CUDA GPU',
        ),
        (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'timeout_min': '5'}}, 'timeout_min=.5. must be a positive'),
        (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'backend': 'mpi'}}, 'backend=.mpi.; use nccl'),
    ],
)
def test_launch_combinations_that_cannot_work_are_refused(monkeypatch, gpus, launcher, world, local_rank, opt, message):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv('WORLD_SIZE', str(world))
    with pytest.raises(
        ValueError, match=message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[').replace(']', r'\]')
    ):
        dist_util.check_launch(opt, launcher, local_rank, 'x.yml')


@pytest.mark.parametrize(
    'gpus, launcher, world, opt, uses_gpu',
    [
        (0, 'none', 1, {'num_gpu': 'auto', 'use_amp': True, 'amp_bf16': True}, False),  # bf16 on the CPU is fine
        (2, 'pytorch', 8, {'num_gpu': 8, 'use_amp': True, 'amp_bf16': False}, True),  # 2 nodes of 4: num_gpu counts all
        (2, 'pytorch', 2, {'num_gpu': 0, 'dist_params': {'backend': 'gloo'}}, False),
        (2, 'none', 1, {'num_gpu': 'auto'}, True),
    ],
)
def test_launch_combinations_that_work_pass(monkeypatch, gpus, launcher, world, opt, uses_gpu):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv('WORLD_SIZE', str(world))
    assert dist_util.check_launch(opt, launcher, 1, 'x.yml') is uses_gpu


def test_bad_launch_stops_the_entry_before_any_work(lmdb_root, tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt.update(name='nogpu', num_gpu=8)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'g.yml', opt)], tmp_path)
    assert result.returncode != 0 and 'g.yml: num_gpu=8 but no CUDA GPU is visible' in result.stderr
    assert not (tmp_path / 'experiments').exists()
