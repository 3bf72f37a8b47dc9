"""The compat layer: basicsr 1.4.2 importable beside today's torchvision, its files untouched, each patch explained."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import basicsr
from helpers import REPO


def test_basicsr_imports_after_wdsr_basicsr_without_the_hook():
    """A source tree on PYTHONPATH (no start-up hook): importing the package first is enough."""
    result = subprocess.run([sys.executable, '-c', 'import wdsr_basicsr, basicsr.data.degradations as d; '
                             'print(d.rgb_to_grayscale)'], capture_output=True, text=True,
                            env=dict(os.environ, WDSR_BASICSR_NO_HOOK='1'))
    assert result.returncode == 0, result.stderr
    assert 'rgb_to_grayscale' in result.stdout


def test_basicsr_files_are_untouched():
    degradations = Path(basicsr.__file__).parent / 'data' / 'degradations.py'
    assert 'from torchvision.transforms.functional_tensor import rgb_to_grayscale' in degradations.read_text()


def test_every_patch_says_what_breaks_without_it():
    source = (REPO / 'wdsr_basicsr' / 'compat.py').read_text()
    lines = source.splitlines()
    patches = [node for node in ast.parse(source).body
               if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)
               or isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)]
    assert len(patches) == 6  # the torchvision alias, parse_options, DDP, LMDB open, LMDB records, resume
    for node in patches:
        first = node.lineno - 1  # the block of comment lines right above the statement
        while first > 0 and lines[first - 1].startswith('#'):
            first -= 1
        assert first < node.lineno - 1 and lines[first].startswith('# Without it'), f'compat.py line {node.lineno}'
