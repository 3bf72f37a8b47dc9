"""Checkpoints to networks (wdsr_basicsr.loading): settings buffers, known networks only, EMA preferred, folded."""

import pytest
import torch

from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.loading import network_from_checkpoint


def test_bare_state_dict_with_its_settings_needs_no_opt(tmp_path):
    torch.manual_seed(0)
    net = WDSR_B(num_feat=8, num_block=2, upscale=3, res_scale=0.5, img_range=1.0, rgb_mean=(0.5, 0.5, 0.5)).eval()
    torch.save(net.state_dict(), tmp_path / 'bare.pth')  # as spandrel-style tools save it: no wrapper at all
    torch.save({'params': net.state_dict()}, tmp_path / 'wrapped.pth')
    for name in ('bare.pth', 'wrapped.pth'):
        loaded, network_g = network_from_checkpoint(str(tmp_path / name))
        assert (network_g['type'], network_g['upscale'], network_g['res_scale'], network_g['img_range']) == (
            'WDSR_B',
            3,
            0.5,
            1.0,
        )
        x = torch.rand(1, 3, 9, 10)
        with torch.no_grad():
            assert torch.allclose(loaded(x), net(x), atol=1e-5)


@pytest.mark.parametrize(
    'network',
    [
        {'type': 'DFDNet', 'num_feat': 64, 'dict_path': '/etc/passwd'},
        {'type': 'VGGFeatureExtractor', 'layer_name_list': ['conv1_1']},
        ['WDSR_B'],
    ],
)
def test_checkpoint_builds_only_known_networks(tmp_path, network):
    torch.save({'params': {}, 'network_g': network}, tmp_path / 'odd.pth')
    with pytest.raises(ValueError, match=r'odd.pth: network_g type .* is refused: only WDSR_A, WDSR_B, RDN, EDSR'):
        network_from_checkpoint(str(tmp_path / 'odd.pth'))
    (tmp_path / 'odd.yml').write_text(f'network_g: {network!r}\n')
    with pytest.raises(ValueError, match=r'--opt .*odd.yml: network_g type .* is refused'):
        network_from_checkpoint(str(tmp_path / 'odd.pth'), str(tmp_path / 'odd.yml'))


def test_network_from_checkpoint_prefers_ema_and_folds(tmp_path):
    torch.manual_seed(0)
    a, b = WDSR_B(num_feat=8, num_block=1), WDSR_B(num_feat=8, num_block=1)
    torch.save(
        {
            'params': a.state_dict(),
            'params_ema': b.state_dict(),
            'network_g': {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1},
        },
        tmp_path / 'c.pth',
    )
    net, _ = network_from_checkpoint(str(tmp_path / 'c.pth'))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (net(x) - b(x)).abs().max() < 1e-5
    assert not any('parametrizations' in k for k in net.state_dict())
