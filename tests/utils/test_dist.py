"""Launch checks: launcher and device combinations that cannot work stop before any work."""

import sys

import pytest

from helpers import OPTIONS, TRAIN, run, write_options
from wdsr_basicsr.models.wdsr_model import WDSRModel
from wdsr_basicsr.options import load_options
from wdsr_basicsr.utils import dist as dist_util

#: The top-level keys WDSRModel declares (use_amp, amp_bf16, use_compile among them).
WDSR_MODEL_KEYS = set(WDSRModel.option_keys[''])


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
    ],
)
def test_launch_combinations_that_cannot_work_are_refused(monkeypatch, gpus, launcher, world, local_rank, opt, message):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv('WORLD_SIZE', str(world))
    with pytest.raises(
        ValueError, match=message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[').replace(']', r'\]')
    ):
        dist_util.check_launch(opt, launcher, local_rank, 'x.yml', model_keys=WDSR_MODEL_KEYS)


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
    assert dist_util.check_launch(opt, launcher, 1, 'x.yml', model_keys=WDSR_MODEL_KEYS) is uses_gpu


def test_bad_launch_stops_the_entry_before_any_work(lmdb_root, tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt.update(name='nogpu', num_gpu=8)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'g.yml', opt)], tmp_path)
    assert result.returncode != 0 and 'g.yml: num_gpu=8 but no CUDA GPU is visible' in result.stderr
    assert not (tmp_path / 'experiments').exists()


def test_amp_and_compile_are_judged_only_for_a_model_that_reads_them(monkeypatch):
    """Under ESRGANModel use_compile and use_amp have no effect: no compiler or GPU is asked for."""
    fake_gpus(monkeypatch, 0)
    monkeypatch.setenv('CXX', 'no-such-compiler')
    opt = {'num_gpu': 0, 'use_amp': True, 'amp_bf16': False, 'use_compile': True}
    assert dist_util.check_launch(opt, 'none', 0, 'x.yml', model_keys={'network_g', 'train'}) is False
    with pytest.raises(ValueError, match='use_amp with fp16'):
        dist_util.check_launch(opt, 'none', 0, 'x.yml', model_keys=WDSR_MODEL_KEYS)
    opt['amp_bf16'] = True
    with pytest.raises(
        ValueError, match="use_compile: torch.compile on the CPU needs a C\\+\\+ compiler: 'no-such-compiler'"
    ):
        dist_util.check_launch(opt, 'none', 0, 'x.yml', model_keys=WDSR_MODEL_KEYS)


def test_cxx_is_read_as_inductor_reads_it(monkeypatch):
    """inductor splits $CXX into words (`ccache g++`): the first word must be on the PATH."""
    from wdsr_basicsr.utils.compile import toolchain_problem

    monkeypatch.setenv('CXX', 'env g++ -O2')  # `env` is on every PATH, as ccache would be where it is installed
    assert toolchain_problem('cpu') is None
    monkeypatch.setenv('CXX', 'no-such-launcher g++')
    assert "'no-such-launcher g++' (from $CXX, else g++) is not on the PATH" in toolchain_problem('cpu')
    monkeypatch.setenv('CXX', '"g++')
    assert "cannot read $CXX='\"g++' as a command line" in toolchain_problem('cpu')
