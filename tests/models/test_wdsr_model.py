"""WDSRModel in process: EMA of weight-normed / batch-normed nets, NaN stop, atomic saves."""

import copy
import json
import os

import pytest
import torch
from basicsr.models import build_model

from helpers import batch, model_options
from wdsr_basicsr.archs import is_weight_normed
from wdsr_basicsr.utils import save_atomic, sr_forward
from wdsr_basicsr.utils.records import record_validation


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


def test_ema_of_a_network_without_buffers(tmp_path):
    """basicsr's EDSR keeps its mean as a plain attribute: no buffer to copy, the parameters still averaged."""
    torch.manual_seed(0)
    opt = model_options(tmp_path, ema=0.5)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    model = build_model(opt)
    assert not list(model.net_g.buffers())
    params = dict(model.net_g.named_parameters())
    expected = {k: v.detach().clone() for k, v in params.items()}
    model.feed_data(batch())
    model.optimize_parameters(1)
    expected = {k: 0.5 * e + 0.5 * params[k].detach() for k, e in expected.items()}
    ema = dict(model.net_g_ema.named_parameters())
    assert all(torch.allclose(ema[k], expected[k], atol=1e-6) for k in expected)


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
    """The step itself never looks (no host sync); the save after it does, and refuses, naming the iteration."""
    model = build_model(model_options(tmp_path))
    model.save(0, 1)
    saved = (tmp_path / 'models' / 'net_g_1.pth').read_bytes()
    bad = batch()
    bad['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(bad)
    model.optimize_parameters(7)
    with pytest.raises(FloatingPointError, match='l_pix.*iteration 7: training stopped before saving'):
        model.save(0, 7)
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
            return (os.system, ('echo pwned > ' + str(tmp_path / 'pwned'),))

    torch.save({'params': Evil()}, tmp_path / 'evil.pth')
    opt = model_options(tmp_path)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='refused'):
        build_model(opt)
    assert not (tmp_path / 'pwned').exists()


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


class _Pairs(torch.utils.data.Dataset):
    """Two LQ/GT pairs in the layout basicsr's paired datasets give validation."""

    def __init__(self):
        self.opt = {'name': 'pairs'}
        torch.manual_seed(1)
        self.items = [batch(1, 12) for _ in range(2)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return {'lq': self.items[index]['lq'][0], 'gt': self.items[index]['gt'][0], 'lq_path': f'img{index}.png'}


@pytest.mark.parametrize('with_root', [False, True])
def test_training_validation_records_its_means(tmp_path, with_root):
    """A training run records each validation's means in validation.jsonl (what tools read instead of the log);
    a model built in process without an experiments folder validates all the same and writes nothing."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img

    opt = model_options(tmp_path, ema=0, val={'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}}})
    if with_root:
        assert opt['path']['experiments_root'] == str(tmp_path)
        opt['train']['total_iter'] = 7
    else:
        del opt['path']['experiments_root']  # a model built in process without an experiments folder
    model = build_model(opt)
    dataset = _Pairs()
    loader = torch.utils.data.DataLoader(dataset, batch_size=1)
    model.validation(loader, current_iter=7, tb_logger=None)
    with torch.no_grad():  # PSNR by basicsr's function on the network's own outputs, image by image
        net = copy.deepcopy(model.net_g).eval()
        expected = sum(
            calculate_psnr(tensor2img([net(item['lq'])]), tensor2img([item['gt']]), 2) for item in dataset.items
        ) / len(dataset)
    assert model.metric_results['psnr'] == pytest.approx(expected, abs=1e-6)
    record = tmp_path / 'validation.jsonl'
    if not with_root:
        assert not record.exists()
        return
    model.validation(loader, current_iter=9, tb_logger=None)  # basicsr's final validation counts past the end
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r['iter'], r['dataset']) for r in lines] == [(7, 'pairs')]  # one row per iteration and set
    assert lines[0]['mean']['psnr'] == pytest.approx(expected, abs=1e-6)


def test_resume_forgets_the_validations_it_will_redo(tmp_path):
    """Rows at 2, 4, 6 (with a perfect image's infinite PSNR): resumed at 4, the record keeps 2 and 4, as JSON."""
    opt = model_options(tmp_path, ema=0)
    opt['path']['experiments_root'] = str(tmp_path)
    record = tmp_path / 'validation.jsonl'
    record.write_text(
        ''.join(json.dumps({'iter': i, 'dataset': 'val', 'mean': {'psnr': 30.0 + i}}) + '\n' for i in (2, 4, 6))
    )
    model = build_model(opt)
    model.save_training_state(0, 4)
    state = torch.load(tmp_path / 'training_states' / '4.state', weights_only=True)
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '4.state')
    build_model(opt).resume_training(state)
    assert [json.loads(line)['iter'] for line in record.read_text().splitlines()] == [2, 4]
    record_validation(str(record), {'iter': 6, 'dataset': 'val', 'mean': {'psnr': float('inf')}})
    rows = [json.loads(line) for line in record.read_text().splitlines()]  # standard JSON: null, not Infinity
    assert rows[-1] == {'iter': 6, 'dataset': 'val', 'mean': {'psnr': None}} and 'Infinity' not in record.read_text()
