"""WDSR-B's fast inference path: the same function as its layers, with less memory traffic.

In eval mode without autograd (and not while tracing, exporting or compiling), a WDSR-B block runs its
pointwise part (1x1 expansion, ReLU, 1x1 low-rank conv) as matrix products over chunks of pixels, so the wide
activation of one chunk lives in a reused buffer that stays in cache; the low-rank width is padded with zero
channels to :data:`LANES`; BatchNorm is folded into the convs. The ReLU is fused into the first product with
PyTorch's private ``torch._addmm_activation`` where this torch has it, else a public ``addmm`` then ``relu_``
(:func:`linear_relu`): both give the same values (on an H200, the Table 1 WDSR-B 8x64 x2 on a 1020x678 image
in bf16 ran in 6.9 ms fused, 9.0 ms with the fallback; docs/gpu_check.md).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

#: Bytes of wide activation that WDSR-B keeps alive at once when its inference
#: path runs the pointwise part in pixel chunks (see :func:`block_b_inference`), by
#: device type. On the CPU a chunk that stays in cache. On a GPU the whole image
#: of usual sizes (an H100 ran the Table 1 WDSR-B 8x64 on 1020x678 in bf16 at
#: 27/14/8.8/8.7 ms with 8/32/128 MiB chunks/the whole image); the bound only
#: caps the memory of huge images.
CHUNK_BYTES = {'cpu': 4 * 1024 * 1024, 'cuda': 512 * 1024 * 1024}

#: WDSR-B's low-rank width is padded with zero channels to a multiple of this in
#: its inference path: 8 fp32 lanes of AVX2 on the CPU, 16-byte rows of bf16/fp16
#: for tensor cores on a GPU. 25 or 51 channels leave both part empty (on an
#: H100 the 384->51 product took a slow unaligned GEMM); 32 or 56 run faster.
LANES = 8


class BlockB(Protocol):
    """What the fast path reads of a WDSR-B block (:class:`~wdsr_basicsr.archs.wdsr_arch.WDSRBlockB`)."""

    body: nn.Sequential
    wide: int
    res_scale: float


def conv_affine(layer: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a conv, with the eval-mode BatchNorm that follows it folded in.

    Args:
        layer (nn.Module): An ``nn.Conv2d`` (weight-normalised or not), or
            ``nn.Sequential(conv, BatchNorm2d)`` as built by ``make_conv``.
        dtype (torch.dtype): Type of the returned tensors.

    Returns:
        tuple[Tensor, Tensor]: ``weight`` (out, in, k, k) and ``bias`` (out).
    """
    # a conv (plain or parametrised) and its BatchNorm: nn.Module's lookup would type their tensors Tensor | Module
    conv: Any = layer[0] if isinstance(layer, nn.Sequential) else layer
    bn: Any = layer[1] if isinstance(layer, nn.Sequential) else None
    weight, bias = conv.weight, conv.bias
    if bn is not None:
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = (bias - bn.running_mean) * scale + bn.bias
    return weight.to(dtype), bias.to(dtype)


def takes_fast_path(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` may take its inference path on ``x``.

    That path (channels-last inside, WDSR-B's pointwise part as chunked matrix
    products into reused buffers, its low-rank width padded with zero channels)
    computes the same function as the layers one after the other. It is taken
    in eval mode on the CPU or a CUDA GPU without autograd, and never while
    tracing, exporting or compiling (their graphs must not depend on the input
    size).
    """
    return (
        not module.training and x.device.type in CHUNK_BYTES and not torch.is_grad_enabled() and not recording_graph()
    )


def recording_graph() -> bool:
    """Whether the forward is being traced, exported or compiled (their graphs must not depend on the size)."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )


#: PyTorch's fused ``addmm`` + ReLU (cuBLASLt's epilogue on GPUs), private: None where this torch lacks it.
_ADDMM_ACTIVATION = getattr(torch, '_addmm_activation', None)


def linear_relu(bias: torch.Tensor, x: torch.Tensor, weight_t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = relu(bias + x @ weight_t)``, fused where PyTorch has the kernel, else in two public steps.

    Args:
        bias (Tensor): (out_features,).
        x (Tensor): (rows, in_features).
        weight_t (Tensor): (in_features, out_features).
        out (Tensor): (rows, out_features), written.

    Returns:
        Tensor: ``out``.
    """
    if _ADDMM_ACTIVATION is not None:
        return _ADDMM_ACTIVATION(bias, x, weight_t, out=out)
    return torch.addmm(bias, x, weight_t, out=out).relu_()


def block_b_inference(block: BlockB, x: torch.Tensor) -> torch.Tensor:
    """A WDSR-B block's forward on its fast path (:func:`takes_fast_path` must hold).

    Args:
        block (WDSRBlockB): The block (eval mode).
        x (Tensor): (N, num_feat, H, W), preferably channels-last.

    Returns:
        Tensor: ``x + res_scale * body(x)``.
    """
    w3, b3 = conv_affine(block.body[3], x.dtype)
    low = pointwise_inference(block, x)
    w3 = torch.cat([w3, w3.new_zeros(w3.shape[0], low.shape[1] - w3.shape[1], *w3.shape[2:])], dim=1)
    out = F.conv2d(low, w3, b3, padding=w3.shape[-1] // 2)
    return torch.add(x, out, alpha=block.res_scale, out=out)


def pointwise_inference(block: BlockB, x: torch.Tensor) -> torch.Tensor:
    """The 1x1 expansion, ReLU and 1x1 low-rank conv as matrix products over pixel chunks.

    The three are pointwise, so they run on chunks of pixels without halo; the
    wide activation of one chunk is a single buffer, reused for every chunk,
    that stays in cache (CPU) or L2 (GPU) instead of streaming through memory.
    The ReLU is fused into the first product (cuBLASLt's epilogue on GPUs). On
    a channels-last ``x`` the chunks are views (no copy).

    Args:
        block (WDSRBlockB): The block (eval mode).
        x (Tensor): (N, num_feat, H, W).

    Returns:
        Tensor: (N, low_rank padded to a multiple of ``LANES``, H, W),
        channels-last; the padded channels are zero.
    """
    n, c, h, w = x.shape
    w1, b1 = conv_affine(block.body[0], x.dtype)
    w2, b2 = conv_affine(block.body[2], x.dtype)
    w1, w2 = w1.flatten(1), w2.flatten(1)
    low_rank = w2.shape[0]
    padded = -(-low_rank // LANES) * LANES  # zero rows: a faster product, the same values
    w2 = torch.cat([w2, w2.new_zeros(padded - low_rank, w2.shape[1])])
    b2 = torch.cat([b2, b2.new_zeros(padded - low_rank)])
    pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
    total = pixels.shape[0]
    step = min(total, max(1, CHUNK_BYTES[x.device.type] // (block.wide * x.element_size())))
    wide = x.new_empty(step, block.wide)
    low = x.new_empty(total, padded)
    for i in range(0, total, step):
        k = min(step, total - i)
        linear_relu(b1, pixels[i : i + k], w1.t(), out=wide[:k])
        torch.addmm(b2, wide[:k], w2.t(), out=low[i : i + k])
    return low.view(n, h, w, padded).permute(0, 3, 1, 2)
