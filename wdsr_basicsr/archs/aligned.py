"""WDSR's training forward with every conv's channels zero-padded to a multiple (tensor cores' alignment).

Tensor-core convolutions want channel counts that are multiples of 8 in bf16/fp16 (4 in TF32); WDSR-B's
low-rank width (25 = 0.8 x 32), its 12-channel tail and skip (3 x 2 x 2) and its 3-channel input are not.
:func:`aligned_forward` computes the network's own function from its own (weight-normalised) weights, each
padded with zero rows and columns: a padded output channel has zero weights and bias, so it stays zero through
the ReLU and the residual sums, and a padded input channel meets zero weights; the output is sliced back before
the pixel shuffle. The parameters and the saved ``state_dict`` keep the paper's shapes, and their gradients are
those of the unpadded forward (the padding's are dropped by autograd).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _padded(channels: int, multiple: int) -> int:
    return -(-channels // multiple) * multiple


def _conv(x: torch.Tensor, layer: Any, multiple: int) -> torch.Tensor:
    """``layer`` (a conv, weight-normalised or plain) on ``x``, its channels padded to ``multiple``."""
    weight, bias = layer.weight, layer.bias
    out_ch, in_ch = weight.shape[:2]
    weight = F.pad(weight, (0, 0, 0, 0, 0, x.shape[1] - in_ch, 0, _padded(out_ch, multiple) - out_ch))
    bias = F.pad(bias, (0, _padded(out_ch, multiple) - out_ch))
    return F.conv2d(x, weight, bias, padding=layer.padding)


def check_alignable(net: nn.Module) -> None:
    """Raise unless :func:`aligned_forward` computes ``net``'s function.

    Raises:
        ValueError: If ``net`` is not a WDSR-A or WDSR-B of this package, or normalises with BatchNorm.
    """
    blocks = getattr(net, 'body', None)
    if not all(hasattr(net, name) for name in ('head', 'tail', 'skip', 'shuffle', 'mean', 'img_range')) or not (
        isinstance(blocks, nn.Sequential) and all(isinstance(block.body, nn.Sequential) for block in blocks)
    ):
        raise ValueError(f'align_channels pads WDSR-A and WDSR-B, not {type(net).__name__}.')
    if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
        raise ValueError("align_channels needs norm 'weight' or 'none': BatchNorm would see the padded channels.")


def aligned_forward(net: Any, x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """``net(x)`` for a WDSR-A or WDSR-B (see :func:`check_alignable`), its convs' channels padded to ``multiple``.

    Args:
        net (nn.Module): A ``WDSR_A`` or ``WDSR_B`` with ``norm`` ``'weight'`` or ``'none'``.
        x (Tensor): Images in [0, 1], shape (N, num_in_ch, H, W).
        multiple (int): The channel multiple. Default: 8.

    Returns:
        Tensor: ``net(x)``, shape (N, num_in_ch, H * upscale, W * upscale).
    """
    x = (x - net.mean) * net.img_range
    x = F.pad(x, (0, 0, 0, 0, 0, _padded(x.shape[1], multiple) - x.shape[1]))
    skip = _conv(x, net.skip, multiple)
    h = _conv(x, net.head, multiple)
    for block in net.body:
        convs = [layer for layer in block.body if not isinstance(layer, nn.ReLU)]
        r = torch.relu(_conv(h, convs[0], multiple))
        for conv in convs[1:]:
            r = _conv(r, conv, multiple)
        h = h + block.res_scale * r
    out = (_conv(h, net.tail, multiple) + skip)[:, : net.tail.weight.shape[0]]
    return net.shuffle(out) / net.img_range + net.mean
