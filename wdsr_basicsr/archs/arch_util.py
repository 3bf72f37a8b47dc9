"""Building blocks shared by the architectures of this package.

* :func:`make_conv` builds a convolution with the normalisation the WDSR paper
  ablates (weight norm, batch norm, none).
* :func:`fold_weight_norm` turns weight-normalised convolutions into plain ones
  with the same output, for inference, export and parameter counting.
* :func:`count_parameters` counts parameters the two ways papers do.
* :class:`SettingsInStateDict` keeps settings that shapes do not show (input
  normalisation, residual scale) in the state dict.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn as nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _WeightNorm, weight_norm

from ..declare import Rule

NORMS = ('weight', 'batch', 'none')

#: Mean RGB of the DIV2K training images, in [0, 1] (the value EDSR, WDSR and
#: BasicSR use).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
#: ``rgb_mean`` as an option file gives it (:mod:`wdsr_basicsr.declare`): one number per input channel.
RGB_MEAN_RULE = Rule('list', item=Rule('number'), length='num_in_ch')


class SettingsInStateDict(nn.Module):
    """Base of networks whose state dict also holds the settings its shapes do not show.

    Each name of ``settings`` is a persistent buffer, so a saved state dict
    says how its network computes, for loaders that see nothing else
    (spandrel, chaiNNer). Loading a state dict sets the buffers from it; a
    state dict saved before these were kept (no such keys) loads too, and the
    constructor's values stay.

    Args:
        settings (dict[str, Tensor]): Buffer name -> value.
    """

    # the buffers the networks here keep (nn.Module's attribute lookup would type them Tensor | Module)
    mean: torch.Tensor
    img_range: torch.Tensor
    res_scale: torch.Tensor

    def __init__(self, settings: dict):
        super().__init__()
        for name, value in settings.items():
            self.register_buffer(name, value)
        self._settings = tuple(settings)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        absent = {prefix + name for name in self._settings if prefix + name not in state_dict}
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        missing_keys[:] = [key for key in missing_keys if key not in absent]
        self._settings_loaded()

    def _settings_loaded(self):
        """Called after loading, for subclasses that mirror a buffer in a plain attribute."""


def normalisation(num_in_ch: int, num_out_ch: int, img_range: float, rgb_mean: Sequence[float]) -> dict:
    """The ``mean`` and ``img_range`` buffers of an SR network that computes on ``(x - rgb_mean) * img_range``.

    The default ``rgb_mean`` (DIV2K's) stands for its average on a 1-channel network.

    Raises:
        ValueError: If the input and output channels differ, ``rgb_mean`` has
            not one value per channel, or a setting is not a finite number.
    """
    if num_in_ch != num_out_ch:
        raise ValueError(
            f'num_in_ch ({num_in_ch}) must equal num_out_ch ({num_out_ch}): the network adds its '
            'output to a skip from its input.'
        )
    if num_in_ch == 1 and tuple(rgb_mean) == DIV2K_RGB_MEAN:
        rgb_mean = (sum(DIV2K_RGB_MEAN) / 3,)
    if len(rgb_mean) != num_in_ch:
        raise ValueError(f'rgb_mean={tuple(rgb_mean)} must have one value per input channel ({num_in_ch}).')
    if not all(math.isfinite(v) for v in (img_range, *rgb_mean)):
        raise ValueError(f'img_range={img_range} and rgb_mean={tuple(rgb_mean)} must be finite numbers.')
    return {
        'mean': torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1),
        'img_range': torch.tensor(float(img_range)),
    }


def check_norm(norm: str) -> str:
    """Validate a ``norm`` option.

    Args:
        norm (str): One of ``'weight'``, ``'batch'``, ``'none'``.

    Returns:
        str: ``norm`` itself.

    Raises:
        ValueError: If ``norm`` is not one of the supported values.
    """
    if norm not in NORMS:
        raise ValueError(f'norm={norm!r} is not supported; choose one of {", ".join(repr(n) for n in NORMS)}.')
    return norm


def make_conv(in_ch: int, out_ch: int, kernel_size: int, *, norm: str, in_body: bool) -> nn.Module:
    """Build a same-padded convolution with the requested normalisation.

    Args:
        in_ch (int): Input channels.
        out_ch (int): Output channels.
        kernel_size (int): Odd kernel size.
        norm (str): ``'weight'``: weight normalisation of the conv
            (``torch.nn.utils.parametrizations.weight_norm``). ``'batch'``:
            BatchNorm2d after the conv, only where ``in_body`` is True (the
            paper's ablation normalises the residual body). ``'none'``: a plain
            conv.
        in_body (bool): Whether the conv belongs to a residual block.

    Returns:
        nn.Module: ``nn.Conv2d``, or ``nn.Sequential(conv, BatchNorm2d)``.
    """
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
    if check_norm(norm) == 'weight':
        return weight_norm(conv)
    if norm == 'batch' and in_body:
        return nn.Sequential(conv, nn.BatchNorm2d(out_ch))
    return conv


def is_weight_normed(module: nn.Module) -> bool:
    """Whether ``module`` carries weight normalisation on its ``weight``.

    Both the parametrization API and the deprecated hook API
    (``torch.nn.utils.weight_norm``, tensors ``weight_g``/``weight_v``) count.

    Args:
        module (nn.Module): Any module.

    Returns:
        bool
    """
    if parametrize.is_parametrized(module, 'weight'):
        parametrizations: Any = module.parametrizations
        return any(isinstance(p, _WeightNorm) for p in parametrizations['weight'])
    return hasattr(module, 'weight_g') and hasattr(module, 'weight_v')


def _plain_copy(layer: Any) -> nn.Module:
    """A plain conv or linear layer computing what the weight-normalised ``layer`` computes."""
    cls: Any = type(layer).__bases__[0] if parametrize.is_parametrized(layer) else type(layer)
    weight = layer.weight.detach()
    factory = dict(bias=layer.bias is not None, device=weight.device, dtype=weight.dtype)
    if issubclass(cls, nn.Linear):
        plain = cls(layer.in_features, layer.out_features, **factory)
    elif issubclass(cls, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        plain = cls(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            padding_mode=layer.padding_mode,
            **factory,
        )
    else:
        raise TypeError(f'fold_weight_norm supports weight-normalised Conv1d/2d/3d and Linear, not {cls.__name__}.')
    with torch.no_grad():
        plain.weight.copy_(weight)
        if layer.bias is not None:
            plain.bias.copy_(layer.bias)
    return plain.train(layer.training)


def fold_weight_norm(module: nn.Module) -> nn.Module:
    """Replace every weight-normalised convolution by a plain one.

    Each weight-normalised conv (or linear layer) is replaced in its parent by a
    new plain layer whose weight is ``g * v / ||v||``, so the network computes
    the same function without re-normalising at each forward. Works on the
    parametrization API and on the deprecated hook API. The layers are replaced
    rather than un-parametrized in place because ``copy.deepcopy`` of a
    parametrized module shares its class with the original, and
    ``torch.nn.utils.parametrize.remove_parametrizations`` edits that class,
    which would break the original too. ``module`` is changed in place and
    returned; use ``fold_weight_norm(copy.deepcopy(net))`` to keep the
    trainable original.

    Args:
        module (nn.Module): A network or a single layer.

    Returns:
        nn.Module: ``module`` folded, or a new plain layer if ``module`` itself
        is a weight-normalised layer.
    """
    if is_weight_normed(module):
        return _plain_copy(module)
    for name, child in list(module.named_children()):
        if is_weight_normed(child):
            setattr(module, name, _plain_copy(child))
        else:
            fold_weight_norm(child)
    return module


def count_parameters(module: nn.Module, mode: str = 'effective') -> int:
    """Count the parameters of a network.

    Args:
        module (nn.Module): The network.
        mode (str): ``'effective'``: parameters of the network with weight norm
            folded away (each conv counts its weight and bias), how the WDSR
            paper's Table 1 counts. ``'raw'``: the trainable tensors as
            stored (``g``, ``v`` and bias for a weight-normalised conv), how the
            2019 reloaded WDSR code counts. Default: ``'effective'``.

    Returns:
        int: Number of scalars.
    """
    if mode == 'raw':
        return sum(p.numel() for p in module.parameters() if p.requires_grad)
    if mode == 'effective':
        return sum(p.numel() for p in fold_weight_norm(copy.deepcopy(module)).parameters())
    raise ValueError(f"mode={mode!r} is not supported; choose 'effective' or 'raw'.")


def receptive_radius(module: nn.Module) -> int:
    """An upper bound of a network's receptive-field radius, in input pixels.

    The sum of ``dilation * (kernel - 1) // 2`` over every convolution: exact for
    a chain of convs (WDSR's head, blocks and tail), an upper bound where convs
    run in parallel or at a higher resolution. A tile padded by this many pixels
    gives the same output as the whole image.

    Args:
        module (nn.Module): The network.

    Returns:
        int
    """
    return sum(m.dilation[0] * (m.kernel_size[0] - 1) // 2 for m in module.modules() if isinstance(m, nn.Conv2d))
