"""WDSR-A and WDSR-B.

Paper: Wide Activation for Efficient and Accurate Image Super-Resolution
(Yu et al., arXiv 1808.08718).

Both networks share one layout: a 3x3 head conv, a body of residual blocks
running at low resolution, a 3x3 tail conv to ``num_out_ch * upscale**2``
channels, a global 5x5 conv skip from the (normalised) input to the same
channels, the two summed and pixel-shuffled. Only the block differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from ..declare import Rule
from .arch_util import (
    DIV2K_RGB_MEAN,
    NORMS,
    RGB_MEAN_RULE,
    SettingsInStateDict,
    check_norm,
    make_conv,
    normalisation,
)
from .wdsr_fast import block_b_inference, takes_fast_path

#: Initialisations of the ``init`` option: ``'default'`` is PyTorch's conv
#: initialisation (weight norm's g starts at ||v||, so the weights are the plain
#: conv's); ``'reloaded'`` is the 2019 "WDSR reloaded" code's (ychfan/wdsr,
#: models/wdsr.py): every bias 0, g = 1 for the head, tail and skip, g = 2 for
#: the first conv of each block and g = 1 / sqrt(num_block) for its last conv.
INITS = ('default', 'reloaded')

#: ``img_range`` of the paper's code: inputs in [0, 255] are mapped with
#: ``(x - 255 * mean) / 127.5``, i.e. ``(x - mean) * 2`` for inputs in [0, 1].
WDSR_IMG_RANGE = 255.0 / 127.5


class WDSRBlockA(nn.Module):
    """Wide-activation residual block of WDSR-A (paper Fig. 1, middle).

    ``conv3x3(num_feat -> num_feat * expansion)``, ReLU,
    ``conv3x3(-> num_feat)``; the result is scaled by ``res_scale`` and added to
    the input.

    Args:
        num_feat (int): Channels of the identity pathway.
        expansion (int | float): Width multiplier before the ReLU.
        res_scale (float): Scale of the residual branch.
        norm (str): ``'weight'``, ``'batch'`` or ``'none'``.
    """

    body: nn.Sequential
    res_scale: float

    def __init__(self, *, num_feat: int, expansion: float, res_scale: float, norm: str):
        super().__init__()
        wide = int(num_feat * expansion)
        self.res_scale = res_scale
        self.body = nn.Sequential(
            make_conv(num_feat, wide, 3, norm=norm, in_body=True),
            nn.ReLU(inplace=True),
            make_conv(wide, num_feat, 3, norm=norm, in_body=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.add(x, self.body(x), alpha=self.res_scale)


class WDSRBlockB(nn.Module):
    """Wide-activation residual block of WDSR-B with linear low-rank conv (paper Fig. 1, right).

    ``conv1x1(num_feat -> num_feat * expansion)``, ReLU, then the linear
    low-rank pair ``conv1x1(-> int(num_feat * low_rank_ratio))`` and
    ``conv3x3(-> num_feat)`` with no activation between them; the result is
    scaled by ``res_scale`` and added to the input.

    Args:
        num_feat (int): Channels of the identity pathway.
        expansion (int | float): Width multiplier before the ReLU.
        low_rank_ratio (float): Width of the low-rank conv relative to
            ``num_feat``.
        res_scale (float): Scale of the residual branch.
        norm (str): ``'weight'``, ``'batch'`` or ``'none'``.
    """

    body: nn.Sequential
    wide: int
    res_scale: float

    def __init__(self, *, num_feat: int, expansion: float, low_rank_ratio: float, res_scale: float, norm: str):
        super().__init__()
        wide = int(num_feat * expansion)
        low_rank = int(num_feat * low_rank_ratio)
        if low_rank < 1:
            raise ValueError(
                f'low_rank_ratio={low_rank_ratio} leaves int({num_feat} * {low_rank_ratio}) = {low_rank} '
                'channels in the low-rank conv; it must be at least 1.'
            )
        self.res_scale = res_scale
        self.wide = wide
        self.body = nn.Sequential(
            make_conv(num_feat, wide, 1, norm=norm, in_body=True),
            nn.ReLU(inplace=True),
            make_conv(wide, low_rank, 1, norm=norm, in_body=True),
            make_conv(low_rank, num_feat, 3, norm=norm, in_body=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if takes_fast_path(self, x):
            return block_b_inference(self, x)
        return torch.add(x, self.body(x), alpha=self.res_scale)


class _WDSR(SettingsInStateDict):
    """Head, body, tail, global skip and pixel shuffle shared by WDSR-A and WDSR-B.

    The state dict also holds ``mean``, ``img_range`` and ``res_scale`` (see
    :class:`SettingsInStateDict`), so a checkpoint alone says how to run it.

    Args:
        blocks (list[nn.Module]): The residual blocks of the body.
        num_in_ch (int): Channel number of inputs.
        num_out_ch (int): Channel number of outputs.
        num_feat (int): Channel number of the identity pathway.
        upscale (int): Upsampling factor (any integer >= 1).
        res_scale (float): Residual scale of the blocks.
        norm (str): ``'weight'``, ``'batch'`` or ``'none'``.
        img_range (float): Inputs are normalised as ``(x - rgb_mean) * img_range``.
        rgb_mean (tuple[float]): Per-channel mean in [0, 1].
        init (str): One of :data:`INITS`.
    """

    #: What an option file's ``network_g`` must hold beside what the signature says (:mod:`wdsr_basicsr.declare`).
    option_keys = {'': {'norm': Rule('str', words=NORMS), 'init': Rule('str', words=INITS), 'rgb_mean': RGB_MEAN_RULE}}

    def __init__(
        self,
        *,
        blocks,
        num_in_ch: int,
        num_out_ch: int,
        num_feat: int,
        upscale: int,
        res_scale: float,
        norm: str,
        img_range: float,
        rgb_mean: Sequence[float],
        init: str,
    ):
        if init not in INITS:
            raise ValueError(f'init={init!r} is not supported; choose one of {", ".join(repr(i) for i in INITS)}.')
        if init == 'reloaded' and norm != 'weight':
            raise ValueError(f"init='reloaded' sets weight norm's g; it needs norm='weight', not {norm!r}.")
        if not isinstance(upscale, int) or upscale < 1:
            raise ValueError(f'upscale={upscale!r} must be an integer >= 1.')
        settings = normalisation(num_in_ch, num_out_ch, img_range, rgb_mean)
        settings['res_scale'] = torch.tensor(float(res_scale))
        super().__init__(settings)
        out_ch = num_out_ch * upscale * upscale
        self.head = make_conv(num_in_ch, num_feat, 3, norm=norm, in_body=False)
        self.body = nn.Sequential(*blocks)
        self.tail = make_conv(num_feat, out_ch, 3, norm=norm, in_body=False)
        self.skip = make_conv(num_in_ch, out_ch, 5, norm=norm, in_body=False)
        self.shuffle = nn.PixelShuffle(upscale)
        if init == 'reloaded':
            self._init_reloaded()

    body: nn.Sequential

    def _settings_loaded(self):
        blocks: list[Any] = list(self.body)  # WDSRBlockA or WDSRBlockB
        for block in blocks:  # the blocks scale by a Python number (no device sync in forward)
            block.res_scale = float(self.res_scale)

    @torch.no_grad()
    def _init_reloaded(self):
        """The 2019 code's start (see :data:`INITS`); WDSR-B's middle (low-rank) conv gets g = 1 (our choice)."""
        gains: list[tuple[Any, float]] = [(self.head, 1.0), (self.tail, 1.0), (self.skip, 1.0)]
        blocks: list[Any] = list(self.body)
        for block in blocks:
            convs = [m for m in block.body if isinstance(m, nn.Conv2d)]
            gains += [(convs[0], 2.0), (convs[-1], 1 / math.sqrt(len(self.body)))]
            gains += [(conv, 1.0) for conv in convs[1:-1]]
        for conv, gain in gains:
            conv.parametrizations.weight.original0.fill_(gain)
            conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x``.

        Args:
            x (Tensor): Images in [0, 1], shape (N, num_in_ch, H, W).

        Returns:
            Tensor: Shape (N, num_out_ch, H * upscale, W * upscale).
        """
        if not takes_fast_path(self, x):
            return self._forward(x)
        # Inference runs channels-last inside (oneDNN's and cuDNN's fast layout, and the
        # pixel chunks of WDSR-B become views); the output comes back in x's layout.
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        return self._forward(x.contiguous(memory_format=torch.channels_last)).contiguous(memory_format=layout)

    def _forward(self, x):
        x = (x - self.mean) * self.img_range
        # in place on fresh outputs that no backward needs: fewer full-size buffers
        out = self.shuffle(self.tail(self.body(self.head(x))).add_(self.skip(x)))
        return out.div_(self.img_range).add_(self.mean)


@ARCH_REGISTRY.register()
class WDSR_A(_WDSR):  # noqa: N801  (the registered name that option files give: DESIGN.md's contract)
    """WDSR-A: wide activation with two 3x3 convs per block.

    Paper: Wide Activation for Efficient and Accurate Image Super-Resolution
    (Yu et al., arXiv 1808.08718), Fig. 1 (middle) and Table 1.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of the identity pathway. Default: 32.
        num_block (int): Number of residual blocks. Default: 16.
        expansion (int | float): Width multiplier before the ReLU (the paper
            uses 2 to 4). Default: 4.
        upscale (int): Upsampling factor, 2, 3, 4 or any integer >= 1.
            Default: 2.
        res_scale (float): Scale of each residual branch. Default: 1.0.
        norm (str): ``'weight'`` (weight normalisation on every conv),
            ``'batch'`` (BatchNorm after each conv of the body) or ``'none'``.
            Default: ``'weight'``.
        img_range (float): Inputs are normalised as ``(x - rgb_mean) *
            img_range``; the default 255 / 127.5 is the paper's code.
            Default: 2.0.
        rgb_mean (tuple[float]): Per-channel mean in [0, 1].
            Default: (0.4488, 0.4371, 0.4040), the DIV2K mean.
        init (str): ``'default'`` (PyTorch's) or ``'reloaded'`` (the 2019
            WDSR reloaded code's weight-norm initialisation, see
            :data:`INITS`; needs ``norm='weight'``). Default: ``'default'``.
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 32,
        num_block: int = 16,
        expansion: float = 4,
        upscale: int = 2,
        res_scale: float = 1.0,
        norm: str = 'weight',
        img_range: float = WDSR_IMG_RANGE,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        init: str = 'default',
    ):
        check_norm(norm)
        blocks = [
            WDSRBlockA(num_feat=num_feat, expansion=expansion, res_scale=res_scale, norm=norm) for _ in range(num_block)
        ]
        super().__init__(
            blocks=blocks,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            upscale=upscale,
            res_scale=res_scale,
            norm=norm,
            img_range=img_range,
            rgb_mean=rgb_mean,
            init=init,
        )


@ARCH_REGISTRY.register()
class WDSR_B(_WDSR):  # noqa: N801  (the registered name that option files give: DESIGN.md's contract)
    """WDSR-B: wide activation with a 1x1 expansion and a linear low-rank pair per block.

    Paper: Wide Activation for Efficient and Accurate Image Super-Resolution
    (Yu et al., arXiv 1808.08718), Fig. 1 (right) and Table 1.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of the identity pathway. Default: 32.
        num_block (int): Number of residual blocks. Default: 16.
        expansion (int | float): Width multiplier before the ReLU (the paper
            uses 6 to 9). Default: 6.
        low_rank_ratio (float): Width of the linear low-rank conv relative to
            ``num_feat``. Default: 0.8.
        upscale (int): Upsampling factor, 2, 3, 4 or any integer >= 1.
            Default: 2.
        res_scale (float): Scale of each residual branch. Default: 1.0.
        norm (str): ``'weight'`` (weight normalisation on every conv),
            ``'batch'`` (BatchNorm after each conv of the body) or ``'none'``.
            Default: ``'weight'``.
        img_range (float): Inputs are normalised as ``(x - rgb_mean) *
            img_range``; the default 255 / 127.5 is the paper's code.
            Default: 2.0.
        rgb_mean (tuple[float]): Per-channel mean in [0, 1].
            Default: (0.4488, 0.4371, 0.4040), the DIV2K mean.
        init (str): ``'default'`` (PyTorch's) or ``'reloaded'`` (the 2019
            WDSR reloaded code's weight-norm initialisation, see
            :data:`INITS`; needs ``norm='weight'``). Default: ``'default'``.
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 32,
        num_block: int = 16,
        expansion: float = 6,
        low_rank_ratio: float = 0.8,
        upscale: int = 2,
        res_scale: float = 1.0,
        norm: str = 'weight',
        img_range: float = WDSR_IMG_RANGE,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        init: str = 'default',
    ):
        check_norm(norm)
        blocks = [
            WDSRBlockB(
                num_feat=num_feat, expansion=expansion, low_rank_ratio=low_rank_ratio, res_scale=res_scale, norm=norm
            )
            for _ in range(num_block)
        ]
        super().__init__(
            blocks=blocks,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            num_feat=num_feat,
            upscale=upscale,
            res_scale=res_scale,
            norm=norm,
            img_range=img_range,
            rgb_mean=rgb_mean,
            init=init,
        )
