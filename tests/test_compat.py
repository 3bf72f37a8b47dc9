"""The compat layer: basicsr 1.4.2 importable beside today's torchvision, its files untouched, each patch explained."""

import ast
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import basicsr

from helpers import REPO


def test_basicsr_files_are_untouched(tmp_path):
    """From a source tree (no start-up hook), importing the package first makes basicsr importable and runnable,
    and every file of the installed basicsr stays as it was: its import of the vanished torchvision module is
    still there, so the in-memory alias is what makes it work."""
    root = Path(basicsr.__file__).parent

    def snapshot():
        return {
            p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts
        }

    before = snapshot()
    script = (
        'import wdsr_basicsr, torch; from basicsr.archs import build_network; '
        'import basicsr.data.degradations; import basicsr.train, basicsr.test; '
        'print(build_network({"type": "WDSR_B", "num_feat": 4, "num_block": 1})(torch.rand(1, 3, 8, 8)).shape)'
    )
    result = subprocess.run(
        [sys.executable, '-c', script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, WDSR_BASICSR_NO_HOOK='1'),
    )
    assert result.returncode == 0 and 'torch.Size([1, 3, 16, 16])' in result.stdout, result.stderr
    assert snapshot() == before
    assert (
        'from torchvision.transforms.functional_tensor import rgb_to_grayscale'
        in (root / 'data' / 'degradations.py').read_text()
    )


def test_every_patch_says_what_breaks_without_it():
    source = (REPO / 'wdsr_basicsr' / 'compat.py').read_text()
    lines = source.splitlines()
    patches = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Attribute)
        or isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
    ]
    # the torchvision alias, parse_options (basicsr's modules, its package name), the one-line refusal, DDP, LMDB
    # open, DataLoader worker seeds, LMDB records, resume, the runpy warning
    assert len(patches) == 10
    for node in patches:
        first = node.lineno - 1  # the block of comment lines right above the statement
        while first > 0 and lines[first - 1].startswith('#'):
            first -= 1
        assert first < node.lineno - 1 and lines[first].startswith('# Without it'), f'compat.py line {node.lineno}'
