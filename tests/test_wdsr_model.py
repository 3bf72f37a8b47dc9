"""WDSRModel in process: EMA of weight-normed / batch-normed nets, NaN stop, atomic saves, evaluation forwards."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F

from basicsr.models import build_model
from wdsr_basicsr.archs import WDSR_B, is_weight_normed
from wdsr_basicsr.utils import ensemble_forward, save_atomic, sr_forward, tiled_forward


def model_options(tmp_path, norm='weight', ema=0.5, val=None):
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir(exist_ok=True)
    states.mkdir(exist_ok=True)
    return {
        'name': 'unit', 'model_type': 'WDSRModel', 'scale': 2, 'num_gpu': 0, 'is_train': True, 'dist': False,
        'rank': 0, 'world_size': 1,
        'network_g': {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 2, 'upscale': 2, 'norm': norm},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'models': str(models),
                 'training_states': str(states), 'visualization': str(tmp_path / 'vis')},
        'train': {'ema_decay': ema, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': val or {},
    }


def batch(n=2, size=12):
    lq = torch.rand(n, 3, size, size)
    return {'lq': lq, 'gt': F.interpolate(lq, scale_factor=2, mode='bicubic', align_corners=False).clamp(0, 1)}


def test_ema_of_weight_normed_net_is_the_exponential_average(tmp_path):
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path, ema=0.5))
    params = dict(model.net_g.named_parameters())
    expected = {k: v.detach().clone() for k, v in params.items()}  # model_ema(0) copied net_g at start
    for _ in range(3):
        model.feed_data(batch())
        model.optimize_parameters(1)
        expected = {k: 0.5 * e + 0.5 * params[k].detach() for k, e in expected.items()}
    ema = dict(model.net_g_ema.named_parameters())
    assert all(torch.allclose(ema[k], expected[k], atol=1e-6) for k in expected)
    assert all(is_weight_normed(m) for m in (model.net_g_ema.head, model.net_g_ema.tail, model.net_g_ema.skip))


def test_ema_copies_batchnorm_statistics(tmp_path):
    torch.manual_seed(0)
    model = build_model(model_options(tmp_path, norm='batch', ema=0.999))
    for _ in range(2):
        model.feed_data(batch())
        model.optimize_parameters(1)
    ours, theirs = dict(model.net_g.named_buffers()), dict(model.net_g_ema.named_buffers())
    assert any('running_mean' in k for k in ours)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
    assert not torch.equal(ours['body.0.body.0.1.running_mean'], torch.zeros(48))


def test_nan_loss_stops_without_saving(tmp_path):
    model = build_model(model_options(tmp_path))
    model.save(0, 1)
    saved = (tmp_path / 'models' / 'net_g_1.pth').read_bytes()
    bad = batch()
    bad['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(bad)
    with pytest.raises(FloatingPointError, match='l_pix.*iteration 7'):
        model.optimize_parameters(7)
    assert sorted(os.listdir(tmp_path / 'models')) == ['net_g_1.pth']
    assert (tmp_path / 'models' / 'net_g_1.pth').read_bytes() == saved


def test_save_is_atomic_when_the_write_dies(tmp_path, monkeypatch):
    path = tmp_path / 'net.pth'
    save_atomic({'params': {'w': torch.ones(3)}}, str(path))

    def dying_save(obj, f):
        f.write(b'half a checkpoint')
        raise KeyboardInterrupt  # killed mid-write

    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({'params': {'w': torch.zeros(3)}}, str(path))
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['net.pth']


def test_pickle_that_runs_code_is_refused(tmp_path):

    class Evil:

        def __reduce__(self):
            return (os.system, ('echo pwned > ' + str(tmp_path / 'pwned'), ))

    torch.save({'params': Evil()}, tmp_path / 'evil.pth')
    opt = model_options(tmp_path)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='refused'):
        build_model(opt)
    assert not (tmp_path / 'pwned').exists()


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


def test_validation_uses_tiles_and_puts_net_back_in_train_mode(tmp_path):
    torch.manual_seed(0)
    opt = model_options(tmp_path, ema=0, val={'tile': 6, 'tile_pad': 4, 'self_ensemble': True})
    model = build_model(opt)
    data = batch(1, 13)
    model.feed_data(data)
    model.test()
    assert model.net_g.training
    expected = sr_forward(copy.deepcopy(model.net_g).eval(), data['lq'], 2, ensemble=True)
    assert (model.output - expected).abs().max() < 1e-5
