"""Channels padded to tensor cores' multiples: the network's own outputs and gradients (fp64), from its own weights."""

import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model

from helpers import OPTIONS, batch, model_options
from wdsr_basicsr.archs.aligned import aligned_forward, check_alignable
from wdsr_basicsr.options import load_options


def recipe_network(name, **changes):
    """A shipped recipe's ``network_g`` (sizes changed), built by basicsr, in fp64."""
    return build_network(dict(load_options(OPTIONS / name)['network_g'], **changes)).double()


@pytest.mark.parametrize(
    'name, changes',
    [
        ('train_wdsr_b_x2.yml', {'num_feat': 10, 'num_block': 2}),  # identity 10, low rank 8, tail and skip 12
        ('train_wdsr_b_x3.yml', {'num_feat': 8, 'num_block': 2, 'norm': 'none'}),  # low rank 6, tail and skip 27
        ('train_wdsr_a_x4.yml', {'num_feat': 6, 'num_block': 1}),  # identity 6, wide 24, tail and skip 48
    ],
)
@pytest.mark.parametrize('multiple', [4, 8])
def test_padded_channels_give_the_unpadded_outputs_and_gradients(name, changes, multiple):
    torch.manual_seed(0)
    net = recipe_network(name, **changes)
    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    target = torch.rand(2, 3, 7 * net.shuffle.upscale_factor, 9 * net.shuffle.upscale_factor, dtype=torch.float64)
    grads = {}
    outputs = {}
    for aligned in (False, True):
        net.zero_grad(set_to_none=True)
        out = aligned_forward(net, x, multiple) if aligned else net(x)
        (out - target).abs().mean().backward()
        outputs[aligned] = out.detach()
        grads[aligned] = {n: p.grad.clone() for n, p in net.named_parameters()}
    assert torch.allclose(outputs[True], outputs[False], rtol=0, atol=1e-12)
    for name_, grad in grads[False].items():
        assert torch.allclose(grads[True][name_], grad, rtol=0, atol=1e-12), name_
    # the padding really happened: the low-rank, tail or input widths were not multiples already
    widths = {m.weight.shape[0] for m in net.modules() if isinstance(m, torch.nn.Conv2d)} | {3}
    assert any(w % multiple for w in widths)


def test_batchnorm_and_other_networks_are_refused():
    with pytest.raises(ValueError, match="align_channels needs norm 'weight' or 'none'"):
        check_alignable(recipe_network('train_wdsr_b_x2.yml', num_feat=8, num_block=1, norm='batch'))
    with pytest.raises(ValueError, match='align_channels pads WDSR-A and WDSR-B, not RDN'):
        check_alignable(recipe_network('train_rdn_x2.yml', num_feat=8, num_block=1, num_layer=1, growth=4))


def test_the_training_step_trains_the_padded_forward(tmp_path):
    """align_channels: 8 in the options: the step's loss is the unpadded network's (and the weights keep shapes)."""
    torch.manual_seed(0)
    opt = model_options(tmp_path, ema=0)
    opt['align_channels'] = 8
    model = build_model(opt)
    shapes = {k: v.shape for k, v in model.net_g.state_dict().items()}
    data = batch()
    with torch.no_grad():
        expected = (model.net_g(data['lq']) - data['gt']).abs().mean().item()
    model.feed_data(data)
    model.optimize_parameters(1)
    assert model.get_current_log()['l_pix'] == pytest.approx(expected, rel=1e-5)
    assert {k: v.shape for k, v in model.net_g.state_dict().items()} == shapes
