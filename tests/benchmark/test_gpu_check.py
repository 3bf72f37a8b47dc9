"""The GPU check's CPU mode (gloo, tiny sizes), so that scripts/check_gpu.py cannot rot."""

import sys

import pytest

from helpers import OPTIONS, REPO, make_lmdbs, run


@pytest.mark.slow
def test_check_gpu_cpu_mode(tmp_path):
    data = make_lmdbs(tmp_path / 'demo', (2,))
    result = run(
        [
            sys.executable,
            str(REPO / 'scripts' / 'check_gpu.py'),
            '--device',
            'cpu',
            '--data',
            str(data),
            '--options',
            str(OPTIONS),
            '--work',
            str(tmp_path / 'work'),
        ],
        tmp_path,
        timeout=600,  # four training runs and the benchmarks, on a busy machine too
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / 'work' / 'gpu_check.md').read_text()
    rows = [line for line in report.splitlines() if line.startswith('| check_')]
    assert len(rows) == 4 and all(row.endswith('| yes |') for row in rows)
    assert '| check_resume (resumed) |' in report and '(SyncBN)' not in report  # SyncBN only on GPUs
    assert 'bf16, channels-last' in report
    speed = next(line for line in report.splitlines() if line.startswith('| WDSR-B 1x8 (CPU smoke run) |'))
    assert len(speed.split('|')) == 8  # eager and compiled, fp32 and bf16, and the compile times
    loaders = [line for line in report.splitlines() if line.startswith(('| LMDB sub-images', '| cache_data'))]
    assert len(loaders) == 3 and all(float(line.split('|')[2]) > 0 for line in loaders)  # basicsr's and two caches
