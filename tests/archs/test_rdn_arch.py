"""RDN: parameter counts by hand, data flow against the paper's equations, shapes."""

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network

import wdsr_basicsr  # noqa: F401  (registers the architectures)
from wdsr_basicsr.archs import RDN, count_parameters


def conv_count(cin, cout, k):
    return cin * cout * k * k + cout


def rdn_count(G0, D, C, G, scale, ch=3):
    """Hand count from the RDN paper's layer shapes."""
    rdb = sum(conv_count(G0 + c * G, G, 3) for c in range(C)) + conv_count(G0 + C * G, G0, 1)
    shallow = conv_count(ch, G0, 3) + conv_count(G0, G0, 3)
    fusion = conv_count(D * G0, G0, 1) + conv_count(G0, G0, 3)
    if scale == 3:
        up = conv_count(G0, 9 * G0, 3)
    else:  # one x2 stage (conv to 4*G0 then pixel shuffle) per factor of 2
        up = (scale // 2) * conv_count(G0, 4 * G0, 3)
    return shallow + D * rdb + fusion + up + conv_count(G0, ch, 3)


@pytest.mark.parametrize('scale, expected', [(2, 22123395), (3, 22308035), (4, 22271107)])
def test_rdn_d16_c8_g64_counts(scale, expected):
    # expected: rdn_count(64, 16, 8, 64, scale) evaluated by hand, e.g. x2:
    # 1792 + 36928 + 16 * (1327616 + 36928) + 65600 + 36928 + 147712 + 1731
    assert rdn_count(64, 16, 8, 64, scale) == expected
    net = RDN(num_feat=64, num_block=16, num_layer=8, growth=64, upscale=scale)
    assert count_parameters(net, 'raw') == expected
    assert count_parameters(net, 'effective') == expected


def test_rdn_data_flow():
    """Dense connections, local fusion + residual, global fusion, global residual from F_-1."""
    torch.manual_seed(0)
    net = RDN(num_feat=6, num_block=2, num_layer=3, growth=4, upscale=2, img_range=255.0, rgb_mean=(0.4, 0.5, 0.6))
    net.eval()
    p = dict(net.named_parameters())

    def conv(name, t):
        w = p[f'{name}.weight']
        return F.conv2d(t, w, p[f'{name}.bias'], padding=w.shape[-1] // 2)

    x = torch.rand(1, 3, 7, 9)
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    t = (x - mean) * 255.0
    f_minus1 = conv('conv_first', t)
    f = conv('conv_second', f_minus1)
    outs = []
    for d in range(2):
        feats = [f]
        for c in range(3):
            feats.append(torch.relu(conv(f'blocks.{d}.layers.{c}.0', torch.cat(feats, 1))))
        f = f + conv(f'blocks.{d}.fusion', torch.cat(feats, 1))
        outs.append(f)
    f_df = conv('global_fusion.1', conv('global_fusion.0', torch.cat(outs, 1))) + f_minus1
    up = F.pixel_shuffle(conv('upsample.0', f_df), 2)
    expected = conv('conv_last', up) / 255.0 + mean
    with torch.no_grad():
        assert torch.allclose(net(x), expected, atol=1e-4)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_rdn_output_shape_odd_input(scale):
    net = RDN(num_feat=8, num_block=2, num_layer=2, growth=4, upscale=scale)
    assert net(torch.rand(1, 3, 11, 5)).shape == (1, 3, 11 * scale, 5 * scale)


def test_rdn_unknown_keyword_named():
    with pytest.raises(TypeError, match='growth_rate'):
        build_network({'type': 'RDN', 'growth_rate': 32})


def test_rdn_unsupported_scale_named():
    with pytest.raises(ValueError, match='scale 5'):
        RDN(num_feat=8, num_block=1, num_layer=1, growth=4, upscale=5)
