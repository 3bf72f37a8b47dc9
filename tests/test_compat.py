"""The compat layer makes basicsr 1.4.2 importable beside today's torchvision, without touching its files."""
import subprocess
import sys
from pathlib import Path

import pytest


def run_python(code):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)


def test_plain_basicsr_import_needs_the_shim():
    probe = run_python('import torchvision.transforms.functional_tensor')
    if probe.returncode == 0:
        pytest.skip('this torchvision still ships functional_tensor; the shim is a no-op here')
    assert 'functional_tensor' in run_python('import basicsr').stderr


def test_basicsr_imports_after_wdsr_basicsr():
    result = run_python('import wdsr_basicsr, basicsr, basicsr.data.degradations as d; print(d.rgb_to_grayscale)')
    assert result.returncode == 0, result.stderr
    assert 'rgb_to_grayscale' in result.stdout


def test_basicsr_files_are_untouched():
    import basicsr
    degradations = Path(basicsr.__file__).parent / 'data' / 'degradations.py'
    assert 'from torchvision.transforms.functional_tensor import rgb_to_grayscale' in degradations.read_text()
