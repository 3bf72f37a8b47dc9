"""Evaluation forwards (wdsr_basicsr.utils.tiling): tiles with a receptive-field pad, the x8 self-ensemble."""

import torch
import torch.nn.functional as F

from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.utils import ensemble_forward, tiled_forward


def test_receptive_field_pad_makes_tiles_exact():
    torch.manual_seed(0)
    net = WDSR_B(num_feat=8, num_block=2, upscale=3).eval()
    x = torch.rand(1, 3, 29, 23)
    with torch.no_grad():
        whole = net(x)
        # radius: head 3x3 (1) + one 3x3 per block (2) + tail 3x3 (1) = 4; the 5x5 skip needs 2
        assert (tiled_forward(net, x, 3, tile=8, tile_pad=4) - whole).abs().max() < 1e-5
        assert (tiled_forward(net, x, 3, tile=8, tile_pad=1) - whole).abs().max() > 1e-4  # too little context


def test_self_ensemble_runs_the_eight_transforms_and_undoes_them():
    seen = []

    def nearest_x2(t):
        seen.append(t.clone())
        return F.interpolate(t, scale_factor=2, mode='nearest')

    x = torch.rand(1, 3, 5, 7)
    out = ensemble_forward(nearest_x2, x)
    assert torch.allclose(out, F.interpolate(x, scale_factor=2, mode='nearest'), atol=1e-6)  # equivariant op
    assert len(seen) == 8 and len({tuple(t.flatten().tolist()) for t in seen}) == 8
    assert sorted(t.shape[-2:] for t in seen).count(torch.Size([7, 5])) == 4
