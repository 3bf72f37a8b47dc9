"""Checks every architecture this package registers: registry, forward/backward, state dict round trip."""

import subprocess
import sys

import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

import wdsr_basicsr  # noqa: F401  (registers the architectures)

TINY = {
    'WDSR_A': dict(num_feat=8, num_block=2, expansion=2),
    'WDSR_B': dict(num_feat=8, num_block=2, expansion=3),
    'RDN': dict(num_feat=8, num_block=2, num_layer=2, growth=4),
}


def test_registered_beside_basicsr_archs():
    names = set(ARCH_REGISTRY.keys())
    assert {'WDSR_A', 'WDSR_B', 'RDN'} <= names
    assert 'EDSR' in names  # basicsr's own are still there
    assert ARCH_REGISTRY.get('WDSR_B').__module__ == 'wdsr_basicsr.archs.wdsr_arch'


@pytest.mark.slow
def test_import_registers_in_a_fresh_interpreter():
    code = (
        'import wdsr_basicsr\n'
        'from basicsr.utils.registry import ARCH_REGISTRY\n'
        'print(sorted(n for n in ARCH_REGISTRY.keys() if n in ("WDSR_A", "WDSR_B", "RDN")))'
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['RDN', 'WDSR_A', 'WDSR_B']"


VARIANTS = [('RDN', {})] + [
    (name, {'norm': norm}) for name in ('WDSR_A', 'WDSR_B') for norm in ('weight', 'batch', 'none')
]


@pytest.mark.parametrize('name, extra', VARIANTS)
def test_forward_backward_every_registered_arch(name, extra):
    opt = dict(TINY[name], type=name, upscale=2, **extra)
    torch.manual_seed(0)
    net = build_network(opt)
    x = torch.rand(2, 3, 12, 10)
    out = net(x)
    assert out.shape == (2, 3, 24, 20)
    out.mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize('name', sorted(TINY))
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(0)
    net = build_network(dict(TINY[name], type=name, upscale=3)).eval()
    path = tmp_path / 'net.pth'
    torch.save({'params': net.state_dict()}, path)
    torch.manual_seed(1)
    other = build_network(dict(TINY[name], type=name, upscale=3)).eval()
    x = torch.rand(1, 3, 9, 9)
    assert not torch.allclose(other(x), net(x))
    other.load_state_dict(torch.load(path, weights_only=True)['params'], strict=True)
    with torch.no_grad():
        assert torch.equal(other(x), net(x))
