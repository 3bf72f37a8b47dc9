"""Every script under scripts/ answers --help and does nothing else; the parameter table runs.

``--help`` runs in this process (:func:`answer_help`: the script or module run as ``__main__``, as the
interpreter runs it): what is tested is the command line and the ``__main__`` guard, not the interpreter's start.
"""

import ast
import runpy
import sys

import pytest

from helpers import REPO, run

SCRIPTS = sorted((REPO / 'scripts').glob('*.py'))


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob('*') if p.is_file()}


def answer_help(run_main, argv0, tmp_path, monkeypatch, capsys):
    """Run ``run_main`` (a script or module as ``__main__``) with ``--help`` in ``tmp_path``: (exit code, stdout)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', [argv0, '--help'])
    monkeypatch.setattr(sys, 'path', list(sys.path))  # a script may put its folder first
    with pytest.raises(SystemExit) as exit:
        run_main()
    return exit.value.code, capsys.readouterr().out


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda p: p.name)
def test_help_has_no_side_effects(script, tmp_path, monkeypatch, capsys):
    options = snapshot(REPO / 'options')
    code, out = answer_help(
        lambda: runpy.run_path(str(script), run_name='__main__'), str(script), tmp_path, monkeypatch, capsys
    )
    assert code in (0, None)
    assert out.startswith(f'usage: {script.name}')
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


@pytest.mark.filterwarnings('ignore:.*found in sys.modules after import of package:RuntimeWarning')
@pytest.mark.parametrize('module', MODULES_WITH_MAIN)
def test_python_dash_m_runs_every_module_with_a_command_line(module, tmp_path, monkeypatch, capsys):
    """``python -m wdsr_basicsr.inference --help`` (and every other such module) answers; it once exited 0 silently
    (run as ``python -m`` runs it: ``runpy.run_module`` as ``__main__``)."""
    code, out = answer_help(
        lambda: runpy.run_module(module, run_name='__main__', alter_sys=True), module, tmp_path, monkeypatch, capsys
    )
    assert code in (0, None) and out.startswith('usage: '), out[-500:]
    assert list(tmp_path.iterdir()) == []
