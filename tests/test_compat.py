"""The compat layer makes basicsr 1.4.2 importable beside today's torchvision, without touching its files."""
import os
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


def test_slurm_launcher_on_cpu_uses_gloo(tmp_path, monkeypatch):
    import socket

    import torch.distributed as dist

    from wdsr_basicsr import compat

    scontrol = tmp_path / 'scontrol'
    scontrol.write_text('#!/bin/sh\necho 127.0.0.1\n')
    scontrol.chmod(0o755)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    monkeypatch.setenv('PATH', f'{tmp_path}:{os.environ["PATH"]}')
    for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='node1').items():
        monkeypatch.setenv(key, value)
    for key in ('MASTER_ADDR', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(compat.torch.cuda, 'is_available', lambda: False)
    compat.init_dist('slurm', port=port)
    try:
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1 and dist.get_rank() == 0
        assert os.environ['MASTER_ADDR'] == '127.0.0.1' and os.environ['MASTER_PORT'] == str(port)
    finally:
        dist.destroy_process_group()
