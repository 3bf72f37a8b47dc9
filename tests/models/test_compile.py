"""``use_compile``: the compiled training step against the eager one, its saved keys, validation, resume, toolchain."""

import copy
import sys

import pytest
import torch
from basicsr.archs import build_network
from basicsr.models import build_model
from torch import nn

from helpers import OPTIONS, TRAIN, batch, model_options, next_second, run, write_options
from wdsr_basicsr.options import load_options
from wdsr_basicsr.runs import shrink_options
from wdsr_basicsr.utils.compile import toolchain_problem

DEMO = OPTIONS / 'demo_wdsr_b_x2.yml'


def demo_model_options(tmp_path, norm, ema, compiled):
    """In-process model options with the demo file's network and train sections (network shrunk)."""
    shipped = load_options(DEMO)
    folder = tmp_path / ('compiled' if compiled else 'eager')
    folder.mkdir(exist_ok=True)
    opt = model_options(folder, norm=norm, ema=ema)
    opt['network_g'] = dict(shipped['network_g'], num_feat=8, num_block=2, norm=norm)
    opt['train'] = dict(shipped['train'], ema_decay=ema)
    opt.update(use_compile=compiled, use_amp=shipped['use_amp'], use_channels_last=shipped['use_channels_last'])
    return opt


def bias_before_batchnorm(net):
    """The bias of each conv that a BatchNorm follows, and that BatchNorm's running mean.

    BatchNorm subtracts the batch mean, so such a bias has no effect on the output and its gradient is rounding
    noise, which Adam scales up to full steps: those tensors wander differently in any two runs that round
    differently. The output they feed is compared instead.
    """
    names = set()
    for name, module in net.named_modules():
        if (
            isinstance(module, nn.Sequential)
            and len(module) > 1
            and isinstance(module[0], nn.Conv2d)
            and isinstance(module[1], nn.BatchNorm2d)
        ):
            names.update((f'{name}.0.bias', f'{name}.1.running_mean'))
    return names


def relative_error(a, b):
    return float((a.double() - b.double()).norm() / max(b.double().norm(), 1e-12))


@pytest.mark.slow
@pytest.mark.parametrize(
    'norm, ema, dtype, mode', [('weight', 0, torch.float32, 'captured'), ('batch', 0.999, torch.float64, 'compiled')]
)
def test_twenty_compiled_steps_equal_twenty_eager_steps(tmp_path, norm, ema, dtype, mode):
    """20 Adam steps, eager and compiled by inductor (forward and losses, as use_compile runs on the CPU; or the
    whole step captured, as on a GPU), from the same weights on the same data: the same weights (1e-4).

    With BatchNorm some gradients are rounding noise (see :func:`bias_before_batchnorm`) that Adam scales up to
    full steps, and in fp32 any two rounding orders drift apart by ~1e-4 in 20 steps wherever such noise feeds
    Adam's moments; the BatchNorm variant is compared in fp64, where rounding is 1e-16.
    """
    torch.manual_seed(0)
    data = [{k: v.to(dtype) for k, v in batch(4, 16).items()} for _ in range(20)]
    models = {}
    for compiled in (False, True):
        torch.manual_seed(1)  # the same initial weights
        model = build_model(demo_model_options(tmp_path, norm, ema, compiled))
        if compiled:
            model.use_step(mode)
        for net in [model.net_g] + ([model.net_g_ema] if ema else []):
            net.to(dtype)  # the parameters stay the optimizer's objects
        for i, item in enumerate(data, 1):
            model.feed_data(item)
            model.optimize_parameters(i)
        models[compiled] = model
    eager, compiled = models[False], models[True]
    assert (compiled._captured, compiled._compiled)[mode == 'compiled'] is not None  # the step really ran so
    nets = [('net_g', eager.net_g, compiled.net_g)]
    if ema:
        nets.append(('net_g_ema', eager.net_g_ema, compiled.net_g_ema))
    probe = torch.rand(2, 3, 20, 20, dtype=dtype)
    for label, a, b in nets:
        theirs, invariant = b.state_dict(), bias_before_batchnorm(a)
        for name, value in a.state_dict().items():
            if value.is_floating_point() and name not in invariant:
                assert relative_error(theirs[name], value) < 1e-4, (label, name)
        with torch.no_grad():  # the output they feed is the same (batch statistics: train mode, on copies)
            assert relative_error(copy.deepcopy(b).train()(probe), copy.deepcopy(a).train()(probe)) < 1e-4, label
    if norm == 'batch':  # the statistics moved, in both runs alike
        stats = 'body.0.body.0.1.running_var'
        assert not torch.equal(eager.net_g.state_dict()[stats], torch.ones_like(eager.net_g.state_dict()[stats]))

    # the saved file holds the keys of the network as basicsr builds it: no _orig_mod. prefix
    compiled.save(0, 20)
    saved = torch.load(tmp_path / 'compiled' / 'models' / 'net_g_20.pth', weights_only=True)
    expected = set(build_network(dict(compiled.opt['network_g'])).state_dict())
    assert set(saved['params']) == expected
    if ema:
        assert set(saved['params_ema']) == expected

    # validation on images of several sizes compiles nothing more
    frames = torch._dynamo.utils.counters['stats']['unique_graphs']
    for size in (13, 17, 22):
        compiled.feed_data(batch(1, size))
        compiled.test()
        assert compiled.output.shape[-2:] == (2 * size, 2 * size)
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == frames


def test_missing_compiler_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv('CXX', 'no-such-c++')
    assert 'no-such-c++' in toolchain_problem('cpu')
    with pytest.raises(RuntimeError, match="use_compile: .*'no-such-c\\+\\+'"):
        build_model(demo_model_options(tmp_path, 'weight', 0, True))


def test_missing_compiler_stops_the_entry_before_any_work(tmp_path):
    opt = load_options(DEMO)
    opt.update(use_compile=True)
    result = run(
        [sys.executable, TRAIN, '-opt', write_options(tmp_path / 'c.yml', opt)], tmp_path, env={'CXX': 'no-such-c++'}
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'use_compile' in lines[0] and 'no-such-c++' in lines[0], result.stderr[-2000:]
    assert not (tmp_path / 'experiments').exists()


def test_use_compile_must_be_a_boolean(tmp_path):
    opt = load_options(DEMO)
    opt.update(use_compile='yes')
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'c.yml', opt)], tmp_path)
    assert result.returncode == 1 and "use_compile='yes' must be true or false" in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def test_auto_resume_switches_between_eager_and_compiled(lmdb_root, tmp_path):
    """The demo file trained eager to 2, resumed compiled to 4, resumed eager to 6: same files, same keys."""
    lengths = {'iters': 6, 'enlarge': 4, 'validations': 3, 'checkpoints': 3}  # a checkpoint every 2 iterations
    sizes = {'gt_size': 24, 'batch': 2, 'workers': 0, 'network': {'num_feat': 8, 'num_block': 1}}
    opt = shrink_options(load_options(DEMO), data=str(lmdb_root), name='switch', **lengths, **sizes)
    opt['logger']['use_tb_logger'] = False
    opt['datasets']['train']['cache_dir'] = str(tmp_path / 'cache')
    experiment = tmp_path / 'experiments' / 'switch'
    for total_iter, compiled in ((2, False), (4, True), (6, False)):
        opt['train']['total_iter'] = total_iter
        opt['use_compile'] = compiled
        next_second()
        result = run(
            [sys.executable, TRAIN, '-opt', write_options(tmp_path / 's.yml', opt), '--auto_resume'],
            tmp_path,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert (experiment / 'models' / f'net_g_{total_iter}.pth').exists()
    logs = [p.read_text() for p in sorted(experiment.glob('train_*.log'))]
    assert len(logs) == 3
    assert ['use_compile: the training step' in log for log in logs] == [False, True, False]
    assert 'resumed at iteration 2 with identical weights' in logs[1]
    assert 'resumed at iteration 4 with identical weights' in logs[2]
    expected = set(build_network(dict(opt['network_g'])).state_dict())
    for total_iter in (2, 4, 6):
        saved = torch.load(experiment / 'models' / f'net_g_{total_iter}.pth', weights_only=True)
        assert set(saved['params']) == expected
        assert all(torch.isfinite(v).all() for v in saved['params'].values())
    states = [torch.load(experiment / 'training_states' / f'{i}.state', weights_only=True) for i in (2, 4, 6)]
    assert [s['iter'] for s in states] == [2, 4, 6]
    assert all(s['optimizers'][0]['param_groups'][0]['fused'] for s in states)  # one optimizer in all three


@pytest.mark.slow
@pytest.mark.parametrize('bf16', [True, False], ids=['bf16', 'fp16_grad_scaler'])
def test_compiled_mixed_precision_step_equals_eager(tmp_path, bf16):
    """Autocast inside the compiled step: the losses of eager and compiled runs agree to the precision's rounding."""
    torch.manual_seed(0)
    data = [batch(4, 16) for _ in range(3)]
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(1)
        opt = demo_model_options(tmp_path, 'weight', 0, compiled)
        opt.update(use_amp=True, amp_bf16=bf16)  # fp16 on the CPU works in torch, though the entries refuse it
        model = build_model(opt)
        assert model.scaler.is_enabled() != bf16  # a GradScaler with fp16 only
        if compiled:  # forward and losses compiled (on the CPU, and with fp16's GradScaler anywhere)
            assert model._compiled is not None
        for i, item in enumerate(data, 1):
            model.feed_data(item)
            model.optimize_parameters(i)
        runs[compiled] = model
    losses = {compiled: model.get_current_log()['l_pix'] for compiled, model in runs.items()}
    tolerance = 1e-2 if bf16 else 1e-3  # bf16 keeps 8 bits of mantissa, fp16 11
    assert abs(losses[True] - losses[False]) < tolerance * losses[False]
    eager, compiled = runs[False], runs[True]
    if not bf16:  # the scaler stepped the same way (no overflow in either)
        assert compiled.scaler.get_scale() == eager.scaler.get_scale()
