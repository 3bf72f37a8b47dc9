"""The training step as the GPU wants it, proven on the CPU: no host sync, one captured graph, eager's results.

The captured step is traced here with the 'aot_eager' backend (dynamo's graph and autograd's, run without code
generation, which takes minutes on 2 cores); tests/models/test_compile.py runs inductor's code (slow).
"""

import contextlib
import copy
import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from basicsr.models import build_model
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from helpers import OPTIONS, batch, model_options
from wdsr_basicsr.models.captured import whole_step
from wdsr_basicsr.models.wdsr_model import WDSRModel
from wdsr_basicsr.options import load_options

RECIPE = OPTIONS / 'train_wdsr_b_x2.yml'
#: What a step may not call: each reads a device value back to the host (a CUDA sync).
READ_BACKS = ('item', '__bool__', '__float__', '__int__', 'tolist')


@LOSS_REGISTRY.register()
class HostReadingL1Loss(nn.Module):
    """A sibling's loss that reads a value back to the host in its forward: it cannot be captured in one graph."""

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        loss = F.l1_loss(pred, target)
        if loss.item() > 1e6:
            loss = loss / 2
        return self.loss_weight * loss


@pytest.fixture(autouse=True)
def traced_without_code_generation(monkeypatch):
    monkeypatch.setattr(WDSRModel, 'compile_backend', 'aot_eager')
    torch._dynamo.reset()


def recipe_model(tmp_path, use_compile, ema=None, dtype=torch.float32, **train):
    """A model with the x2 recipe's network (shrunk) and train section (``ema`` and ``train`` keys changed)."""
    recipe = load_options(RECIPE)
    folder = tmp_path / str(use_compile)
    folder.mkdir(exist_ok=True)
    opt = model_options(folder)
    opt['network_g'] = dict(recipe['network_g'], num_feat=8, num_block=2)
    opt['train'] = dict(recipe['train'], **train)
    opt['train']['ema_decay'] = recipe['train']['ema_decay'] if ema is None else ema
    opt.update(use_compile=use_compile, use_amp=recipe['use_amp'], use_channels_last=recipe['use_channels_last'])
    torch.manual_seed(1)  # the same initial weights in every model
    model = build_model(opt)
    if use_compile is True:  # what a GPU gets (on the CPU, true compiles forward and losses only)
        model.use_step('captured')
    for net in [model.net_g] + ([model.net_g_ema] if hasattr(model, 'net_g_ema') else []):
        net.to(dtype)  # in place: the parameters stay the optimizer's objects
    return model


@contextlib.contextmanager
def read_backs_refused():
    """Every Tensor method of :data:`READ_BACKS` raises while the block runs."""
    saved = {name: getattr(torch.Tensor, name) for name in READ_BACKS}

    def refuse(name):
        def refused(*args, **kwargs):
            raise AssertionError(f'Tensor.{name} called inside a training step')

        return refused

    for name in READ_BACKS:
        setattr(torch.Tensor, name, refuse(name))
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


@pytest.mark.parametrize('use_compile, ema', [(False, 0), (True, 0.999)], ids=['eager', 'captured_ema'])
def test_a_step_reads_nothing_back_from_the_device(tmp_path, use_compile, ema):
    """Between two log lines no step calls Tensor.item, __bool__, __float__, __int__ or tolist; the log then reads."""
    model = recipe_model(tmp_path, use_compile, ema=ema)
    assert (model._captured is not None) == use_compile
    model.feed_data(batch())
    model.optimize_parameters(1)  # the captured step traces (with fake tensors) at its first call
    model.get_current_log()
    with read_backs_refused():
        for i in range(2, 5):
            model.update_learning_rate(i)
            model.feed_data(batch())
            model.optimize_parameters(i)
    assert set(model.get_current_log()) == {'l_pix'}


def test_the_captured_step_is_one_graph(tmp_path):
    """torch._dynamo.explain of the whole step: one graph, no break (forward, losses, gradients, Adam, EMA)."""
    model = recipe_model(tmp_path, True, ema=0.999)
    captured, update = model._captured
    update.prepare()
    step = whole_step(model._losses, update, lambda: model.model_ema(model.ema_decay))
    data = batch()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        explained = torch._dynamo.explain(step)(data['lq'], data['gt'])
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    ops = {str(node.target) for graph in explained.graphs for node in graph.graph.nodes}
    assert any('lerp' in op for op in ops)  # the EMA is in the graph


@pytest.mark.slow  # compiles the whole step (inductor, minutes on a cold cache)
def test_captured_steps_equal_eager_steps_through_warm_up_and_a_milestone(tmp_path):
    """6 steps in fp64 from the same weights on the same data, with the recipe's MultiStepLR (a milestone at 4)
    and basicsr's linear warm-up (3 iterations), as basicsr's loop sets the rates: parameters, EMA, optimizer
    state and learning rates of the captured run equal the eager run's (1e-9)."""
    torch.set_default_dtype(torch.float64)  # Adam's step counts in fp64, as the fused kernel computes with them
    try:
        torch.manual_seed(0)
        data = [{k: v.double() for k, v in batch(2, 12).items()} for _ in range(6)]
        scheduler = dict(load_options(RECIPE)['train']['scheduler'], milestones=[4])
        runs, rates = {}, {}
        for use_compile in (False, True):
            model = recipe_model(
                tmp_path, use_compile, ema=0.5, dtype=torch.float64, scheduler=scheduler, warmup_iter=3
            )
            rates[use_compile] = []
            for i, item in enumerate(data, 1):
                model.update_learning_rate(i, warmup_iter=3)
                rates[use_compile].append(model.get_current_learning_rate()[0])
                model.feed_data(item)
                model.optimize_parameters(i)
            runs[use_compile] = model
    finally:
        torch.set_default_dtype(torch.float32)
    eager, captured = runs[False], runs[True]
    assert captured._captured is not None
    lr = load_options(RECIPE)['train']['optim_g']['lr']
    # by hand from basicsr's loop: warm-up sets lr * i / 3 below iteration 3; the scheduler keeps the rate it
    # finds, and halves it when its count (iteration - 1) reaches the milestone 4
    assert rates[True] == rates[False] == pytest.approx([lr / 3, 2 * lr / 3, 2 * lr / 3, 2 * lr / 3, lr / 3, lr / 3])
    for label in ('net_g', 'net_g_ema'):
        ours, theirs = getattr(captured, label).state_dict(), getattr(eager, label).state_dict()
        for name, value in theirs.items():
            assert (ours[name] - value).abs().max() <= 1e-9, (label, name)
    ours, theirs = captured.optimizer_g.state_dict(), eager.optimizer_g.state_dict()
    assert ours['param_groups'] == theirs['param_groups']
    for index, state in theirs['state'].items():
        for key, value in state.items():
            assert (ours['state'][index][key] - value).abs().max() <= 1e-9, (index, key)
    assert captured.get_current_log() == pytest.approx(eager.get_current_log(), rel=1e-12)


@pytest.mark.parametrize('use_compile', [False, True], ids=['eager', 'captured'])
def test_the_log_shows_the_mean_loss_since_the_last_line(tmp_path, use_compile):
    """get_current_log: each loss's mean over the iterations since the previous call, counted by hand."""
    model = recipe_model(tmp_path, use_compile)
    expected = []
    for i in range(1, 4):
        item = batch()
        with torch.no_grad():
            expected.append(F.l1_loss(copy.deepcopy(model.net_g)(item['lq']), item['gt']).item())
        model.feed_data(item)
        model.optimize_parameters(i)
    assert model.get_current_log()['l_pix'] == pytest.approx(sum(expected) / 3, rel=1e-5)
    item = batch()
    with torch.no_grad():
        alone = F.l1_loss(copy.deepcopy(model.net_g)(item['lq']), item['gt']).item()
    model.feed_data(item)
    model.optimize_parameters(4)
    assert model.get_current_log()['l_pix'] == pytest.approx(alone, rel=1e-5)  # a new window


@pytest.mark.parametrize('use_compile, then', [(False, 'save'), (False, 'validation'), (False, 'log'), (True, 'save')])
def test_a_nan_stops_the_run_before_the_next_save_with_nothing_written(tmp_path, use_compile, then):
    """A NaN input at iteration 3: the steps go on without looking; the next save, validation or log line (as
    basicsr's loop calls them) stops the run, naming the iterations, and nothing is written."""
    model = recipe_model(tmp_path, use_compile)
    models = tmp_path / str(use_compile) / 'models'
    for i in (1, 2):
        model.feed_data(batch())
        model.optimize_parameters(i)
    model.save(0, 2)
    before = sorted(p.name for p in models.iterdir())
    model.get_current_log()  # a log line at 2: the next window starts at 3
    for i in (3, 4):
        item = batch()
        if i == 3:
            item['lq'][0, 0, 0, 0] = float('nan')
        model.feed_data(item)
        model.optimize_parameters(i)
    with pytest.raises(FloatingPointError, match=r"Loss \{'l_pix': nan\} in iterations 3-4: training stopped"):
        if then == 'save':
            model.save(0, 4)
        elif then == 'validation':
            model.validation(SimpleNamespace(dataset=SimpleNamespace(opt={'name': 'pairs'})), 4, None)
        else:
            model.get_current_log()
    assert sorted(p.name for p in models.iterdir()) == before == ['net_g_2.pth']
    assert not (tmp_path / str(use_compile) / 'training_states' / '4.state').exists()


def test_true_on_the_cpu_compiles_forward_and_losses_and_says_why(tmp_path, caplog):
    opt = model_options(tmp_path)
    opt['use_compile'] = True
    with caplog.at_level(logging.INFO, logger='basicsr'):
        model = build_model(opt)
    assert model._captured is None and model._compiled is not None
    assert 'not captured whole: on the CPU the whole step captured ran slower' in caplog.text


def test_auto_runs_eagerly_on_the_cpu_and_says_so(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger='basicsr'):
        model = recipe_model(tmp_path, 'auto')
    assert model._captured is None and model._compiled is None
    assert 'use_compile: auto: the training step runs eagerly (auto compiles on CUDA GPUs' in caplog.text


@pytest.mark.parametrize('use_compile', [True, 'auto'])
def test_a_loss_that_reads_back_is_refused_or_run_eagerly(tmp_path, monkeypatch, caplog, use_compile):
    """A sibling's loss with a host read cannot be captured: ``true`` stops at the first step in one line, with
    nothing changed; ``auto`` (here forced to capture, as on a GPU) says why and runs the step eagerly."""
    monkeypatch.setattr(WDSRModel, '_step_plan', lambda self: ('captured', ''))
    model = recipe_model(tmp_path, use_compile, pixel_opt={'type': 'HostReadingL1Loss', 'loss_weight': 1.0})
    before = copy.deepcopy(model.net_g.state_dict())
    model.feed_data(batch())
    if use_compile is True:
        with pytest.raises(RuntimeError, match='use_compile: the training step cannot be captured whole') as error:
            model.optimize_parameters(1)
        assert len(str(error.value).splitlines()) == 1
        assert all(torch.equal(value, model.net_g.state_dict()[name]) for name, value in before.items())
        return
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        model.optimize_parameters(1)
    assert model._captured is None
    assert 'use_compile: auto: the training step runs eagerly: it cannot be captured' in caplog.text
    assert any(not torch.equal(value, model.net_g.state_dict()[name]) for name, value in before.items())
    assert set(model.get_current_log()) == {'l_pix'}


@pytest.mark.slow  # three captured traces
def test_a_captured_run_resumed_from_its_training_state_is_the_run_left_alone(tmp_path):
    """3 captured steps, the training state saved and a new model resumed from it (new optimizer tensors: the
    captured update reads them again), 3 more: the weights and optimizer state of 6 captured steps in one go."""
    torch.manual_seed(0)
    data = [batch() for _ in range(6)]
    for run in ('alone', 'first'):
        (tmp_path / run).mkdir()
    alone = recipe_model(tmp_path / 'alone', True)
    for i, item in enumerate(data, 1):
        alone.feed_data(item)
        alone.optimize_parameters(i)
    first = recipe_model(tmp_path / 'first', True)
    for i, item in enumerate(data[:3], 1):
        first.feed_data(item)
        first.optimize_parameters(i)
    first.save(0, 3)
    folder = tmp_path / 'first' / 'True'
    resumed = recipe_model(tmp_path / 'first', True)
    resumed.resume_training(torch.load(folder / 'training_states' / '3.state', weights_only=False))
    resumed.load_network(resumed.net_g, str(folder / 'models' / 'net_g_3.pth'))
    for i, item in enumerate(data[3:], 4):
        resumed.feed_data(item)
        resumed.optimize_parameters(i)
    ours, theirs = resumed.optimizer_g.state_dict(), alone.optimizer_g.state_dict()
    for index, state in theirs['state'].items():
        assert all(torch.equal(ours['state'][index][key], value) for key, value in state.items()), index
    for name, value in alone.net_g.state_dict().items():
        assert torch.equal(resumed.net_g.state_dict()[name], value), name
