"""Every script under scripts/ answers --help and does nothing else; the parameter table runs."""

import ast
import sys

import pytest

from helpers import REPO, run

SCRIPTS = sorted((REPO / 'scripts').glob('*.py'))


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob('*') if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_help_has_no_side_effects(script, tmp_path):
    options = snapshot(REPO / 'options')
    result = run([sys.executable, str(script), '--help'], tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f'usage: {script.name}')
    assert list(tmp_path.iterdir()) == []  # no datasets/, experiments/, tb_logger/
    assert snapshot(REPO / 'options') == options  # make_options.py wrote nothing


@pytest.mark.slow
def test_param_table_prints_the_hand_counted_figures(tmp_path):
    result = run([sys.executable, str(REPO / 'scripts' / 'param_table.py')], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    # WDSR-B 5 x 64, x6 wide, 0.8 low rank, x2, counted by hand: head 3*64*9+64 = 1,792; a block:
    # 1x1 64->384 (24,960), 1x1 384->51 (19,635), 3x3 51->64 (29,440): 74,035; tail 64->12 3x3 (6,924);
    # skip 3->12 5x5 (912): 1,792 + 5 * 74,035 + 6,924 + 912 = 379,803
    assert '| 379,803 (0.38 M) |' in result.stdout


#: Every module of the package with a command line (a top-level ``main``), by its dotted name.
MODULES_WITH_MAIN = sorted(
    '.'.join(('wdsr_basicsr',) + path.relative_to(REPO / 'wdsr_basicsr').with_suffix('').parts)
    for path in (REPO / 'wdsr_basicsr').rglob('*.py')
    if any(isinstance(node, ast.FunctionDef) and node.name == 'main' for node in ast.parse(path.read_text()).body)
)


@pytest.mark.parametrize(
    'module',
    [pytest.param(m, marks=() if m == 'wdsr_basicsr.inference' else pytest.mark.slow) for m in MODULES_WITH_MAIN],
)
def test_python_dash_m_runs_every_module_with_a_command_line(module, tmp_path):
    """``python -m wdsr_basicsr.inference --help`` (and every other such module) answers; it once exited 0 silently."""
    result = run([sys.executable, '-m', module, '--help'], tmp_path, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith('usage: '), (result.stdout[-500:], result.stderr[-2000:])
    assert list(tmp_path.iterdir()) == []
