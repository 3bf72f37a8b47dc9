"""WDSR-A / WDSR-B: parameter counts against the paper and hand counts, the
structure against an independent functional forward, norm variants, folding."""

import copy

import pytest
import torch
from basicsr.archs import build_network
from basicsr.archs.edsr_arch import EDSR
from torch import nn

import wdsr_basicsr  # noqa: F401  (registers the architectures)
from helpers import OPTIONS, reference_forward
from wdsr_basicsr.archs import WDSR_A, WDSR_B, count_parameters, fold_weight_norm, is_weight_normed
from wdsr_basicsr.options import load_options


def conv_count(cin, cout, k, weight_norm=False):
    """Scalars of a conv with bias: weight, bias, and one g per output channel under weight norm."""
    return cin * cout * k * k + cout + (cout if weight_norm else 0)


def wdsr_count(kind, *, num_feat, num_block, expansion, scale, low_rank_ratio=0.8, weight_norm=False, ch=3):
    """Hand count of a WDSR from its layer shapes (paper Fig. 1)."""
    out = ch * scale * scale
    wide = int(num_feat * expansion)
    if kind == 'A':
        block = conv_count(num_feat, wide, 3, weight_norm) + conv_count(wide, num_feat, 3, weight_norm)
    else:
        low = int(num_feat * low_rank_ratio)
        block = (
            conv_count(num_feat, wide, 1, weight_norm)
            + conv_count(wide, low, 1, weight_norm)
            + conv_count(low, num_feat, 3, weight_norm)
        )
    return (
        conv_count(ch, num_feat, 3, weight_norm)
        + num_block * block
        + conv_count(num_feat, out, 3, weight_norm)
        + conv_count(ch, out, 5, weight_norm)
    )


# Paper Table 1 (x2, parameters in millions). WDSR-B at 5 blocks is printed as
# 0.37 in the paper; the network described there has 379,803 parameters, which
# rounds to 0.38 (see docs/explanations/parameters.md).
PAPER_TABLE1 = {
    'EDSR': {1: 0.26, 3: 0.41, 5: 0.56, 8: 0.78},
    'WDSR_A': {1: 0.08, 3: 0.23, 5: 0.37, 8: 0.60},
    'WDSR_B': {1: 0.08, 3: 0.23, 5: 0.38, 8: 0.60},
}


def table1_net(name, num_block):
    if name == 'EDSR':
        return EDSR(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=num_block, upscale=2)
    if name == 'WDSR_A':
        return WDSR_A(num_feat=32, expansion=4, num_block=num_block, upscale=2)
    return WDSR_B(num_feat=64, expansion=6, low_rank_ratio=0.8, num_block=num_block, upscale=2)


@pytest.mark.parametrize('num_block', [1, 3, 5, 8])
@pytest.mark.parametrize('name', ['EDSR', 'WDSR_A', 'WDSR_B'])
def test_table1_effective_parameters(name, num_block):
    effective = count_parameters(table1_net(name, num_block), 'effective')
    assert round(effective / 1e6, 2) == PAPER_TABLE1[name][num_block]
    if name == 'WDSR_A':
        assert effective == wdsr_count('A', num_feat=32, num_block=num_block, expansion=4, scale=2)
    elif name == 'WDSR_B':
        assert effective == wdsr_count('B', num_feat=64, num_block=num_block, expansion=6, scale=2)


def test_wdsr_b_5_blocks_hand_count():
    # head 3*64*9+64, 5 x (64*384+384 + 384*51+51 + 51*64*9+64), tail 64*12*9+12, skip 3*12*25+12
    assert count_parameters(table1_net('WDSR_B', 5)) == 1792 + 5 * (24960 + 19635 + 29440) + 6924 + 912 == 379803


#: Parameter counts the authors' READMEs print (raw: weight norm's g and v, and the biases).
PUBLISHED = {
    'train_ntire2018_wdsr_baseline_x2': 1190100,  # JiahuiYu/wdsr_ntire2018 README, "WDSR Baseline"
    'train_reloaded_wdsr_x2': 1190100,  # ychfan/wdsr README, small models
    'train_reloaded_wdsr_x3': 1195605,
    'train_reloaded_wdsr_x4': 1203312,
    'train_reloaded_wdsr_large_x2': 37808180,  # ychfan/wdsr README, large models
    'train_reloaded_wdsr_large_x3': 37826645,
    'train_reloaded_wdsr_large_x4': 37852496,
}


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_authors_variants_match_published_counts(name):
    opt = load_options(OPTIONS / 'authors' / f'{name}.yml')
    net = build_network(dict(opt['network_g']))
    assert count_parameters(net, 'raw') == PUBLISHED[name]
    test_opt = load_options(OPTIONS / 'authors' / f'{name.replace("train_", "test_", 1)}.yml')
    assert test_opt['network_g'] == opt['network_g']


def test_edsr_baseline_published_count_explained():
    # The NTIRE 2018 README prints 1,372,318 for the EDSR baseline (x2, 16 blocks, 64 features): the
    # shipped EDSR's conv weights and biases, plus one weight-norm g per output channel of every conv,
    # plus the 2 x 12 weights and biases of EDSR-PyTorch's frozen 1x1 MeanShift convs.
    net = build_network(dict(load_options(OPTIONS / 'train_edsr_x2.yml')['network_g']))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert count_parameters(net) == sum(conv_count(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs)
    assert count_parameters(net) + sum(c.out_channels for c in convs) + 2 * (3 * 3 + 3) == 1372318


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_reloaded_init(cls):
    # ychfan/wdsr models/wdsr.py: biases 0; g = 1 (head, tail, skip), 2 (first conv of a block),
    # 1 / sqrt(blocks) (last conv of a block). g is the norm of each output filter of the folded conv.
    net = fold_weight_norm(cls(num_feat=8, num_block=4, init='reloaded', img_range=1.0, rgb_mean=(0.5,) * 3))
    expected = [('head', 1.0), ('tail', 1.0), ('skip', 1.0)]
    for i, block in enumerate(net.body):
        convs = [n for n, m in block.body.named_children() if isinstance(m, nn.Conv2d)]
        expected += [(f'body.{i}.body.{convs[0]}', 2.0), (f'body.{i}.body.{convs[-1]}', 0.5)]
        expected += [(f'body.{i}.body.{n}', 1.0) for n in convs[1:-1]]
    modules = dict(net.named_modules())
    assert len(expected) == sum(isinstance(m, nn.Conv2d) for m in net.modules())
    for name, gain in expected:
        conv = modules[name]
        norms = conv.weight.flatten(1).norm(dim=1)
        assert torch.allclose(norms, torch.full_like(norms, gain)), name
        assert not conv.bias.any(), name


def test_init_options_are_checked():
    with pytest.raises(ValueError, match="init='xavier' is not supported; choose one of 'default', 'reloaded'"):
        WDSR_A(num_feat=8, num_block=1, init='xavier')
    with pytest.raises(ValueError, match="init='reloaded' sets weight norm's g; it needs norm='weight'"):
        WDSR_B(num_feat=8, num_block=1, init='reloaded', norm='batch')


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('kind', ['A', 'B'])
def test_raw_and_effective_hand_counts(kind, scale):
    cls = WDSR_A if kind == 'A' else WDSR_B
    expansion = 4 if kind == 'A' else 6
    net = cls(num_feat=32, num_block=16, expansion=expansion, upscale=scale)
    hand = dict(num_feat=32, num_block=16, expansion=expansion, scale=scale)
    assert count_parameters(net, 'raw') == wdsr_count(kind, weight_norm=True, **hand)
    assert count_parameters(net, 'effective') == wdsr_count(kind, weight_norm=False, **hand)


@pytest.mark.parametrize('kind', ['A', 'B'])
def test_forward_matches_paper_data_flow(kind):
    torch.manual_seed(0)
    cls = WDSR_A if kind == 'A' else WDSR_B
    mean = (0.3, 0.5, 0.7)
    net = cls(num_feat=8, num_block=2, expansion=3, upscale=3, res_scale=0.5, img_range=2.0, rgb_mean=mean).eval()
    x = torch.rand(2, 3, 9, 11)
    with torch.no_grad():
        expected = reference_forward(net, x, kind, 0.5, 2.0, mean)
        assert torch.allclose(net(x), expected, atol=1e-5)


def test_wdsr_b_block_widths():
    block = WDSR_B(num_feat=64, num_block=1, expansion=6, low_rank_ratio=0.8).body[0].body
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (64, 384, 1),
        (384, 51, 1),
        (51, 64, 3),
    ]
    assert [type(m) for m in block] == [type(block[0]), nn.ReLU, type(block[2]), type(block[3])]


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_output_shape_odd_input(cls, scale):
    net = cls(num_feat=8, num_block=1, upscale=scale)
    out = net(torch.rand(1, 3, 13, 7))
    assert out.shape == (1, 3, 13 * scale, 7 * scale)


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_fold_weight_norm(cls):
    torch.manual_seed(0)
    net = cls(num_feat=8, num_block=2, upscale=2).eval()
    x = torch.rand(1, 3, 15, 17)
    folded = fold_weight_norm(copy.deepcopy(net))
    names = [n for n, _ in folded.named_parameters()]
    assert not any('parametrizations' in n or n.endswith(('weight_g', 'weight_v')) for n in names)
    assert not any(is_weight_normed(m) for m in folded.modules())
    assert all(isinstance(m.weight, nn.Parameter) for m in folded.modules() if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() < 1e-5


def aten_op_counts(net, x):
    """How many times each aten operator runs in one forward, as PyTorch's profiler records it."""
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        net(x)
    return {e.key: e.count for e in prof.key_averages() if e.key.startswith('aten::')}


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_folded_forward_runs_a_subset_of_the_unfolded_work(cls):
    """Why folded inference cannot be slower: the same operators, minus re-normalising every weight."""
    net = cls(num_feat=8, num_block=2).eval()
    x = torch.rand(1, 3, 12, 10)
    unfolded, folded = aten_op_counts(net, x), aten_op_counts(fold_weight_norm(copy.deepcopy(net)), x)
    assert all(folded[op] <= unfolded.get(op, 0) for op in folded), (folded, unfolded)
    convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    assert unfolded['aten::_weight_norm_interface'] == convs and 'aten::_weight_norm_interface' not in folded


def test_fold_weight_norm_deprecated_hook_api():
    torch.manual_seed(0)
    conv = torch.nn.utils.weight_norm(nn.Conv2d(3, 4, 3))
    x = torch.rand(1, 3, 8, 8)
    expected = conv(x).detach()
    w = conv.weight_g * conv.weight_v / conv.weight_v.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    folded = fold_weight_norm(nn.Sequential(conv))[0]
    assert type(folded) is nn.Conv2d and not hasattr(folded, 'weight_g')
    assert torch.allclose(folded.weight, w, atol=1e-6)
    assert torch.allclose(folded(x), expected, atol=1e-6)


def test_fold_of_a_copy_leaves_the_original_working():
    # deepcopy of a parametrized module shares its class; folding must not break the original.
    net = WDSR_B(num_feat=8, num_block=1)
    x = torch.rand(1, 3, 8, 8)
    before = net(x).detach()
    count_parameters(net, 'effective')
    fold_weight_norm(copy.deepcopy(net))
    assert all(is_weight_normed(m) for m in (net.head, net.tail, net.skip))
    assert torch.equal(net(x), before)


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_norm_variants_contain_what_they_say(cls):
    body_convs = 2 if cls is WDSR_A else 3
    num_block = 2
    all_convs = num_block * body_convs + 3  # + head, tail, skip

    weight = cls(num_feat=8, num_block=num_block, norm='weight')
    assert sum(is_weight_normed(m) for m in weight.modules()) == all_convs
    assert not any(isinstance(m, nn.BatchNorm2d) for m in weight.modules())

    batch = cls(num_feat=8, num_block=num_block, norm='batch')
    assert sum(isinstance(m, nn.BatchNorm2d) for m in batch.modules()) == num_block * body_convs
    assert sum(isinstance(m, nn.BatchNorm2d) for m in batch.body.modules()) == num_block * body_convs
    assert not any(is_weight_normed(m) for m in batch.modules())

    none = cls(num_feat=8, num_block=num_block, norm='none')
    assert sum(isinstance(m, nn.Conv2d) for m in none.modules()) == all_convs
    assert not any(is_weight_normed(m) or isinstance(m, nn.BatchNorm2d) for m in none.modules())


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_bad_norm_named(cls):
    with pytest.raises(ValueError, match="norm='layer'"):
        cls(norm='layer')


@pytest.mark.parametrize('name', ['WDSR_A', 'WDSR_B'])
def test_unknown_keyword_named_through_basicsr(name):
    with pytest.raises(TypeError, match='num_feats'):
        build_network({'type': name, 'num_feats': 8})


@pytest.mark.parametrize('cls', [WDSR_A, WDSR_B])
def test_settings_travel_in_the_state_dict(cls):
    torch.manual_seed(0)
    source = cls(num_feat=8, num_block=2, rgb_mean=(0.1, 0.2, 0.3), img_range=1.0, res_scale=0.5).eval()
    state = source.state_dict()
    assert state['mean'].flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert float(state['img_range']) == 1.0 and float(state['res_scale']) == 0.5
    target = cls(num_feat=8, num_block=2).eval()  # the defaults: DIV2K mean, 2.0, 1.0
    target.load_state_dict(state)
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))
        assert all(block.res_scale == 0.5 for block in target.body)
    # a state dict saved before the settings were kept loads strictly, keeping the constructor's values
    old = {k: v for k, v in state.items() if k not in ('mean', 'img_range', 'res_scale')}
    kept = cls(num_feat=8, num_block=2, rgb_mean=(0.1, 0.2, 0.3), img_range=1.0, res_scale=0.5).eval()
    kept.load_state_dict(old, strict=True)
    with torch.no_grad():
        assert torch.equal(kept(x), source(x))
    assert kept.double()(x.double()).dtype == torch.float64


def test_bad_rgb_mean_named():
    with pytest.raises(ValueError, match='rgb_mean'):
        WDSR_A(num_in_ch=1, num_out_ch=1, rgb_mean=(0.1, 0.2))


@pytest.mark.parametrize('name', ['WDSR_A', 'WDSR_B', 'RDN'])
def test_gray_network_with_the_default_mean(name):
    """A 1-channel network takes the average of DIV2K's RGB mean; channel faults are named as such."""
    small = {'num_feat': 8, 'num_block': 1} | ({'num_layer': 1, 'growth': 4} if name == 'RDN' else {})
    net = build_network({'type': name, 'num_in_ch': 1, 'num_out_ch': 1, **small})
    assert net.mean.flatten().tolist() == pytest.approx([(0.4488 + 0.4371 + 0.4040) / 3])
    assert net(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match=r'num_in_ch \(1\) must equal num_out_ch \(3\)'):
        build_network({'type': name, 'num_in_ch': 1, 'num_out_ch': 3, **small})
    with pytest.raises(ValueError, match=r'rgb_mean=\(0.5, 0.5\) must have one value per input channel \(3\)'):
        build_network({'type': name, 'rgb_mean': [0.5, 0.5], **small})
    with pytest.raises(ValueError, match='must be finite numbers'):
        build_network({'type': name, 'img_range': float('nan'), **small})
