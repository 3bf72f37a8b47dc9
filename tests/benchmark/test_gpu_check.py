"""The GPU check's CPU mode (gloo, tiny sizes), so that scripts/check_gpu.py cannot rot."""

import re
import sys

import pytest

from helpers import OPTIONS, REPO, make_lmdbs, start
from wdsr_basicsr.benchmark.gpu_check import report

#: The longest a part of the check (a training run, a speed row, a loader, an inference variant) may run before
#: it reports: alone on this 2-core machine the slowest takes about a minute.
PART_S = 300


def run_part_by_part(args, cwd, part_s):
    """Run ``args`` (output merged); fail when ``part_s`` seconds pass without a new line. Returns (code, lines)."""
    process = start(args, cwd, timeout=3600, merged=True)
    seen = []
    while True:
        try:
            line = process.next_line(part_s, 'out')
        except TimeoutError:
            process.kill()
            process.wait()
            pytest.fail(f'no output for {part_s} s after: {"".join(seen[-20:])}')
        if not line:
            return process.wait().returncode, seen
        seen.append(line)


@pytest.mark.slow
def test_check_gpu_cpu_mode(tmp_path):
    """Each part reports when it ends (a line), and none may take longer than PART_S: bounded by what it runs."""
    data = make_lmdbs(tmp_path / 'demo', (2,))
    command = [sys.executable, str(REPO / 'scripts' / 'check_gpu.py'), '--device', 'cpu', '--data', str(data)]
    command += ['--options', str(OPTIONS), '--work', str(tmp_path / 'work')]
    code, output = run_part_by_part(command, tmp_path, PART_S)
    assert code == 0, ''.join(output[-60:])
    parts = [
        line for line in output if re.match(r'(check_\w+: ok \(|training speed, |training loader, |inference, )', line)
    ]
    assert (
        len(parts) == 5 + 1 + 3 + 3
    )  # five torchrun runs (the resumed one in two), a speed row, 3 loaders, 3 variants
    report = (tmp_path / 'work' / 'gpu_check.md').read_text()
    rows = [line for line in report.splitlines() if line.startswith('| check_')]
    assert len(rows) == 4 and all(row.endswith('| yes |') for row in rows)
    assert '| check_resume (resumed) |' in report and '(SyncBN)' not in report  # SyncBN only on GPUs
    assert 'bf16, channels-last' in report
    speed = next(line for line in report.splitlines() if line.startswith('| WDSR-B 1x8 (CPU smoke run) |'))
    assert len(speed.split('|')) == 8  # eager and compiled, fp32 and bf16, and the compile times
    loaders = [line for line in report.splitlines() if line.startswith(('| LMDB sub-images', '| cache_data'))]
    assert len(loaders) == 3 and all(float(line.split('|')[2]) > 0 for line in loaders)  # basicsr's and two caches


def test_the_report_marks_the_columns_not_timed():
    """The baselines get eager and captured fp32 only (a lent GPU's minutes): the other cells say so."""
    timed = {'seconds': 0.01, 'kernels': 100.0, 'syncs': 0.0, 'first_s': 30.0, 'kernel_ms': 5.0}
    text = report('cpu', [], [{'network': 'EDSR 16x64', 'fp32_eager': timed, 'fp32_captured': timed}], [], [], 60)
    row = next(line for line in text.splitlines() if line.startswith('| EDSR 16x64 |'))
    assert row == '| EDSR 16x64 | 100.0 / 100 / 0.0 | - | 100.0 / 100 / 0.0 | - | 30 / - |'
