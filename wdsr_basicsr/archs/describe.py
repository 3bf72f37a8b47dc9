"""The ``network_g`` of a state dict, read from its tensors' names and shapes (and its settings buffers).

Used where a state dict comes without its options: official checkpoints (:mod:`wdsr_basicsr.convert`) and
loaders that see only the state dict (:mod:`wdsr_basicsr.spandrel_support`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

#: Where a conv's weight is stored: weight norm (parametrizations), a plain conv, a conv + BatchNorm pair.
_WEIGHT_KEYS = ('parametrizations.weight.original1', 'weight', '0.weight')
_SETTINGS = ('mean', 'img_range', 'res_scale')


def _weight(state, name):
    """The 4-D weight of conv ``name``, or None if there is none (or it is not a conv weight)."""
    weight = next((state[f'{name}.{key}'] for key in _WEIGHT_KEYS if f'{name}.{key}' in state), None)
    return weight if getattr(weight, 'ndim', 0) == 4 else None


def _settings(state):
    """The settings buffers a state dict holds, as options."""
    options: dict[str, Any] = {}
    if 'mean' in state:
        options['rgb_mean'] = [float(m) for m in state['mean'].flatten()]
    for key in ('img_range', 'res_scale'):
        if key in state:
            options[key] = float(state[key])
    return options


def _ratio(part, whole):
    """``part / whole`` as an int where exact (YAML stays readable), else a float."""
    return part // whole if part % whole == 0 else part / whole


def describe_wdsr(state: dict[str, torch.Tensor]) -> dict | None:
    """The ``network_g`` of a WDSR-A or WDSR-B state dict (this package's names), or None if it is not one.

    Every key must belong to the head, body, tail, skip or the settings. The
    normalisation, residual scale and upscale come from the settings buffers
    where the state dict has them (checkpoints of this package); otherwise the
    caller's defaults apply.

    Args:
        state (dict[str, Tensor]): The state dict.

    Returns:
        dict | None
    """
    if any(not (k.split('.')[0] in ('head', 'body', 'tail', 'skip') or k in _SETTINGS) for k in state):
        return None
    head, tail = _weight(state, 'head'), _weight(state, 'tail')
    if head is None or tail is None or _weight(state, 'skip') is None:
        return None
    num_feat, num_in_ch = head.shape[:2]
    scale = math.isqrt(tail.shape[0] // num_in_ch) if num_in_ch else 0
    num_block = len({m.group(1) for k in state for m in [re.match(r'body\.(\d+)\.body\.', k)] if m})
    kind_b = _weight(state, 'body.0.body.3') is not None
    inner = ('body.0.body.0', 'body.0.body.2') if num_block else ()
    if scale < 1 or tail.shape[0] != num_in_ch * scale**2 or any(_weight(state, n) is None for n in inner):
        return None  # not the shapes of a WDSR
    norm = (
        'weight'
        if 'head.parametrizations.weight.original1' in state
        else 'batch'
        if 'body.0.body.0.1.running_mean' in state
        else 'none'
    )
    options: dict[str, Any] = {
        'type': 'WDSR_B' if kind_b else 'WDSR_A',
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(num_in_ch),
        'num_feat': int(num_feat),
        'num_block': num_block,
        'upscale': scale,
        'norm': norm,
    }
    if num_block:
        options['expansion'] = _ratio(_weight(state, 'body.0.body.0').shape[0], num_feat)
    if kind_b and num_block:
        low = _weight(state, 'body.0.body.2').shape[0]
        options['low_rank_ratio'] = next(
            r for r in (0.8, low / num_feat, (low + 0.5) / num_feat) if int(num_feat * r) == low
        )
    options.update(_settings(state))
    return options


def describe(state: dict) -> dict | None:
    """The ``network_g`` of a WDSR-A, WDSR-B or RDN state dict, or None (see :func:`describe_wdsr`)."""
    return describe_wdsr(state) or describe_rdn(state)


def describe_rdn(state: dict[str, torch.Tensor]) -> dict | None:
    """The ``network_g`` of an RDN state dict (this package's names), or None if it is not one.

    Args:
        state (dict[str, Tensor]): The state dict.

    Returns:
        dict | None
    """
    needed = (
        'conv_first.weight',
        'conv_second.weight',
        'blocks.0.layers.0.0.weight',
        'global_fusion.0.weight',
        'upsample.0.weight',
        'conv_last.weight',
    )
    if not all(getattr(state.get(k), 'ndim', 0) == 4 for k in needed):
        return None
    num_feat, num_in_ch = state['conv_first.weight'].shape[:2]
    ups = [
        state[k]
        for k in sorted(
            (k for k in state if re.fullmatch(r'upsample\.\d+\.weight', k)), key=lambda k: int(k.split('.')[1])
        )
    ]
    scale = 3 if ups[0].shape[0] == 9 * num_feat else 2 ** len(ups)
    options = {
        'type': 'RDN',
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(state['conv_last.weight'].shape[0]),
        'num_feat': int(num_feat),
        'num_block': len({k.split('.')[1] for k in state if k.startswith('blocks.')}),
        'num_layer': len({k.split('.')[3] for k in state if k.startswith('blocks.0.layers.')}),
        'growth': int(state['blocks.0.layers.0.0.weight'].shape[0]),
        'upscale': scale,
    }
    options.update({k: v for k, v in _settings(state).items() if k != 'res_scale'})
    return options
