"""The house's habits, checked where the tests run: ruff (lint and format) and mypy are clean."""

import subprocess
import sys

from helpers import REPO


def run_tool(*args):
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format_are_clean():
    """ruff.toml: 120 columns, single quotes, import order, no print in the library."""
    lint = run_tool('ruff', 'check', '.')
    assert lint.returncode == 0, lint.stdout[-5000:]
    form = run_tool('ruff', 'format', '--check', '.')
    assert form.returncode == 0, form.stdout[-5000:]


def test_mypy_is_clean():
    """mypy.ini: the package and the start-up modules, untyped functions checked too."""
    result = run_tool('mypy')
    assert result.returncode == 0, result.stdout[-5000:]
