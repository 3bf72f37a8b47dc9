"""WDSR-B's fast inference path (wdsr_basicsr.archs.wdsr_fast): equal to the layers one after the other, with
PyTorch's private fused kernel and with its public fallback; autograd, autocast and memory layouts."""

import pytest
import torch
from basicsr.archs import build_network

import wdsr_basicsr  # noqa: F401  (registers the architectures)
from helpers import reference_forward
from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.archs.arch_util import DIV2K_RGB_MEAN as DIV2K_MEAN


@pytest.mark.parametrize('fused', [True, False], ids=['private-fused', 'public-fallback'])
@pytest.mark.parametrize('norm', ['weight', 'none', 'batch'])
def test_cpu_chunked_inference_equals_plain_forward(norm, fused, monkeypatch):
    """The fast path (with PyTorch's private fused addmm + ReLU, and with its public fallback) equals the layers."""
    from wdsr_basicsr.archs import wdsr_fast

    if fused:
        assert wdsr_fast._ADDMM_ACTIVATION is not None  # this torch has the kernel: the fused branch runs
    else:
        monkeypatch.setattr(wdsr_fast, '_ADDMM_ACTIVATION', None)
    torch.manual_seed(0)
    net = WDSR_B(num_feat=8, num_block=2, upscale=2, res_scale=0.7, norm=norm)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics far from identity, so folding them matters
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -1, 1)
    net.eval()
    monkeypatch.setitem(wdsr_fast.CHUNK_BYTES, 'cpu', 100 * 48 * 4)  # chunks of 100 pixels, across rows and images
    x = torch.rand(2, 8, 23, 19)
    with torch.no_grad():
        for block in net.body:
            expected = x + block.body(x) * 0.7  # the layers one after the other, NCHW
            assert torch.allclose(block(x), expected, atol=1e-5)
            assert torch.allclose(block(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)
        if norm == 'weight':
            y = torch.rand(1, 3, 17, 13)
            assert torch.allclose(net(y), reference_forward(net, y, 'B', 0.7, net.img_range, DIV2K_MEAN), atol=1e-5)


def test_cpu_inference_path_under_autograd_and_autocast():
    torch.manual_seed(0)
    net = WDSR_B(num_feat=8, num_block=2).eval()
    x = torch.rand(1, 3, 12, 10, requires_grad=True)
    out = net(x)  # eval with autograd on: the layers one after the other, differentiable
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(net(x), out, atol=1e-5)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = net(x)
    assert low.shape == out.shape and (low.float() - out).abs().max() < 0.05


@pytest.mark.parametrize('name', ['WDSR_A', 'WDSR_B'])
def test_cpu_inference_keeps_the_callers_memory_layout(name):
    net = build_network({'type': name, 'num_feat': 8, 'num_block': 1}).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        plain = net(x)
        cl = net(x.contiguous(memory_format=torch.channels_last))
    assert plain.is_contiguous()
    assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()
    assert torch.allclose(plain, cl, atol=1e-6)
