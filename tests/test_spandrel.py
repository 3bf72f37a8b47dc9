"""spandrel (chaiNNer's and ComfyUI's loader) loads this package's checkpoints, converted official ones and
the safetensors export, and the loaded model computes what the original network (or the official formula) does."""

import pytest
import torch
from spandrel import MAIN_REGISTRY, ModelLoader

import wdsr_basicsr.spandrel_support  # noqa: F401  (registers WDSR and RDN with spandrel)
from official import forward_2019, official_2019
from wdsr_basicsr.archs import RDN, WDSR_A, WDSR_B
from wdsr_basicsr.convert import main as convert_main
from wdsr_basicsr.export import export

NETWORKS = {
    'wdsr_a_reloaded': (
        WDSR_A,
        dict(num_feat=8, num_block=2, upscale=3, img_range=1.0, rgb_mean=[0.5] * 3, init='reloaded'),
    ),
    'wdsr_b_res_scale': (WDSR_B, dict(num_feat=8, num_block=2, expansion=6, upscale=2, res_scale=0.5)),
    'wdsr_b_batch_norm': (WDSR_B, dict(num_feat=8, num_block=1, upscale=4, norm='batch')),
    'wdsr_a_plain_x1': (WDSR_A, dict(num_feat=8, num_block=1, upscale=1, norm='none', expansion=2.5)),
    'rdn': (RDN, dict(num_feat=8, num_block=2, num_layer=2, growth=4, upscale=4, img_range=1.0)),
    'rdn_x3': (RDN, dict(num_feat=8, num_block=1, num_layer=3, growth=4, upscale=3)),
}


def perturbed(cls, options):
    """A network whose weights, biases and BatchNorm statistics are all non-trivial."""
    torch.manual_seed(0)
    net = cls(**options)
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith(('running_mean', 'running_var')):
                buffer.uniform_(0.5, 1.5)
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return net.eval()


@pytest.mark.parametrize('name', sorted(NETWORKS))
def test_training_checkpoints_load(name, tmp_path):
    cls, options = NETWORKS[name]
    net = perturbed(cls, options)
    network_g = dict(options, type=cls.__name__)
    torch.save({'network_g': network_g, 'params': net.state_dict()}, tmp_path / 'net_g_latest.pth')
    model = ModelLoader().load_from_file(tmp_path / 'net_g_latest.pth')
    assert model.architecture.id == ('RDN' if cls is RDN else 'WDSR')
    assert (model.scale, model.input_channels, model.output_channels) == (options['upscale'], 3, 3)
    assert model.purpose == ('SR' if options['upscale'] > 1 else 'Restoration')
    model.eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x).clamp(0, 1), atol=1e-5)


def test_ema_weights_are_the_ones_loaded(tmp_path):
    cls, options = NETWORKS['wdsr_b_res_scale']
    net, ema = perturbed(cls, options), cls(**options).eval()
    torch.save({'params': net.state_dict(), 'params_ema': ema.state_dict()}, tmp_path / 'n.pth')
    model = ModelLoader().load_from_file(tmp_path / 'n.pth').eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), ema(x).clamp(0, 1), atol=1e-5)


def test_converted_official_checkpoint_loads(tmp_path):
    official = official_2019(8, 3, 32, 2)
    torch.save(official, tmp_path / 'official.pt')
    assert convert_main([str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth')]) == 0
    model = ModelLoader().load_from_file(tmp_path / 'ours.pth').eval()
    x = torch.rand(1, 3, 10, 7)
    with torch.no_grad():
        assert torch.allclose(model(x), forward_2019(official, x, 3, 2).clamp(0, 1), atol=1e-4)


@pytest.mark.parametrize('name', ['wdsr_a_reloaded', 'rdn'])
def test_safetensors_export_loads_without_pickle(name, tmp_path):
    cls, options = NETWORKS[name]
    net = perturbed(cls, options)
    torch.save({'network_g': dict(options, type=cls.__name__), 'params': net.state_dict()}, tmp_path / 'n.pth')
    out = tmp_path / 'n.safetensors'
    assert export(str(tmp_path / 'n.pth'), 'safetensors', str(out)) < 1e-4
    assert out.read_bytes()[8:9] == b'{'  # a JSON header, no pickle
    model = ModelLoader().load_from_file(out).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(model(x), net(x).clamp(0, 1), atol=1e-5)


def test_registration_is_idempotent_and_leaves_other_architectures_alone():
    before = len(MAIN_REGISTRY)
    wdsr_basicsr.spandrel_support.register()
    assert len(MAIN_REGISTRY) == before and 'WDSR' in MAIN_REGISTRY and 'RDN' in MAIN_REGISTRY
    # spandrel's own architectures do not mistake a WDSR state dict for theirs
    state = WDSR_B(num_feat=8, num_block=1).state_dict()
    assert [a.architecture.id for a in MAIN_REGISTRY.architectures('detection') if a.detect(state)] == ['WDSR']


@pytest.mark.parametrize(
    'state',
    [
        {'head.weight': torch.zeros(3), 'tail.weight': torch.zeros(3), 'skip.weight': torch.zeros(3)},  # not convs
        {
            'head.weight': torch.zeros(8, 3, 3, 3),
            'tail.weight': torch.zeros(10, 8, 3, 3),  # 10 is no 3 * s * s
            'skip.weight': torch.zeros(10, 3, 5, 5),
        },
        {
            'head.weight': torch.zeros(8, 3, 3, 3),
            'tail.weight': torch.zeros(12, 8, 3, 3),  # a block without its convs
            'skip.weight': torch.zeros(12, 3, 5, 5),
            'body.0.body.x': torch.zeros(1),
        },
        {
            'conv_first.weight': torch.zeros(8),
            'conv_second.weight': torch.zeros(8),
            'blocks.0.layers.0.0.weight': torch.zeros(8),
            'global_fusion.0.weight': torch.zeros(8),
            'upsample.0.weight': torch.zeros(8),
            'conv_last.weight': torch.zeros(8),
        },
    ],
)
def test_odd_state_dicts_are_not_claimed(state):
    from spandrel import UnsupportedModelError

    with pytest.raises(UnsupportedModelError):  # our detectors say no; they do not crash spandrel's search
        MAIN_REGISTRY.load(state)
