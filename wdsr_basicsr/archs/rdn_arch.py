"""RDN, the residual dense network baseline (basicsr 1.4.2 ships none).

Paper: Residual Dense Network for Image Super-Resolution (Zhang et al.,
CVPR 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from basicsr.archs.arch_util import Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn as nn

from .arch_util import DIV2K_RGB_MEAN, RGB_MEAN_RULE, SettingsInStateDict, normalisation


class ResidualDenseBlock(nn.Module):
    """Residual dense block: densely connected 3x3 conv + ReLU layers, local
    feature fusion (1x1 conv back to ``num_feat``) and a local residual.

    Args:
        num_feat (int): Input and output channels (G0).
        num_layer (int): Number of conv layers (C).
        growth (int): Channels each layer adds (G).
    """

    def __init__(self, *, num_feat: int, num_layer: int, growth: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_feat + i * growth, growth, 3, padding=1), nn.ReLU(inplace=True))
            for i in range(num_layer)
        )
        self.fusion = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return x + self.fusion(torch.cat(features, 1))


@ARCH_REGISTRY.register()
class RDN(SettingsInStateDict):
    """Residual dense network.

    Paper: Residual Dense Network for Image Super-Resolution (Zhang et al.,
    CVPR 2018). Shallow features (two 3x3 convs), ``num_block`` residual dense
    blocks, global feature fusion (1x1 then 3x3 conv over the concatenated
    block outputs), global residual from the first shallow feature, then
    BasicSR's pixel-shuffle upsampler and a final 3x3 conv.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channels of the features (G0). Default: 64.
        num_block (int): Number of residual dense blocks (D). Default: 16.
        num_layer (int): Conv layers per block (C). Default: 8.
        growth (int): Growth rate (G). Default: 64.
        upscale (int): Upsampling factor, 2^n or 3. Default: 2.
        img_range (float): Inputs are normalised as ``(x - rgb_mean) *
            img_range``, as BasicSR's EDSR does. Default: 255.
        rgb_mean (tuple[float]): Per-channel mean in [0, 1].
            Default: (0.4488, 0.4371, 0.4040), the DIV2K mean.
    """

    #: What an option file's ``network_g`` must hold beside what the signature says (:mod:`wdsr_basicsr.declare`).
    option_keys = {'': {'rgb_mean': RGB_MEAN_RULE}}

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 16,
        num_layer: int = 8,
        growth: int = 64,
        upscale: int = 2,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ):
        super().__init__(normalisation(num_in_ch, num_out_ch, img_range, rgb_mean))
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.conv_second = nn.Conv2d(num_feat, num_feat, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualDenseBlock(num_feat=num_feat, num_layer=num_layer, growth=growth) for _ in range(num_block)
        )
        self.global_fusion = nn.Sequential(
            nn.Conv2d(num_block * num_feat, num_feat, 1),
            nn.Conv2d(num_feat, num_feat, 3, padding=1),
        )
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x``.

        Args:
            x (Tensor): Images in [0, 1], shape (N, num_in_ch, H, W).

        Returns:
            Tensor: Shape (N, num_out_ch, H * upscale, W * upscale).
        """
        x = (x - self.mean) * self.img_range
        shallow = self.conv_first(x)
        feat = self.conv_second(shallow)
        block_outputs = []
        for block in self.blocks:
            feat = block(feat)
            block_outputs.append(feat)
        feat = self.global_fusion(torch.cat(block_outputs, 1)) + shallow
        out = self.conv_last(self.upsample(feat))
        return out / self.img_range + self.mean
