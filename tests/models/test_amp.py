"""Mixed precision: weight norm in fp32 under autocast, bf16 and fp16 steps, GradScaler state, bf16 runs that resume."""

import sys

import pytest
import torch
from basicsr.models import build_model

from helpers import OPTIONS, TRAIN, batch, model_options, next_second, run, write_options
from wdsr_basicsr.options import load_options


def test_weight_norm_is_computed_in_fp32_under_autocast():
    from wdsr_basicsr.archs import WDSR_B

    net = WDSR_B(num_feat=8, num_block=1, upscale=2)
    conv = net.head
    with torch.autocast('cpu', dtype=torch.bfloat16):
        weight = conv.weight
    v, g = conv.parametrizations.weight.original1, conv.parametrizations.weight.original0
    expected = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # the formula, in fp32
    assert weight.dtype == torch.float32 and torch.allclose(weight, expected, atol=1e-7)


def test_bf16_step_matches_the_fp32_step(tmp_path):
    torch.manual_seed(0)
    data = batch(2, 16)
    models = {}
    for amp in (False, True):
        torch.manual_seed(1)
        opt = model_options(tmp_path, ema=0)
        opt.update(use_amp=amp, amp_bf16=True, use_channels_last=amp)
        model = build_model(opt)
        model.feed_data(data)
        model.optimize_parameters(1)
        models[amp] = model
    fp32, bf16 = models[False], models[True]
    assert bf16.lq.is_contiguous(memory_format=torch.channels_last)
    # the loss agrees to bf16's precision (8 bits of mantissa: ~0.4%)
    losses = {amp: model.get_current_log()['l_pix'] for amp, model in models.items()}
    assert abs(losses[True] - losses[False]) < 5e-3 * losses[False]
    # every gradient (weight norm's g and v included) within 5% relative L2 error of fp32's (measured: <= 3%)
    for (name, a), b in zip(fp32.net_g.named_parameters(), bf16.net_g.parameters()):
        assert (a.grad - b.grad).norm() < 0.05 * a.grad.norm(), name
    # the bf16 output (autocast, as the step runs it) differs from the fp32 one by bf16 rounding, not more
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        bf16_output = bf16.net_g(bf16.lq)
    assert (bf16_output.float() - fp32.net_g(fp32.lq)).abs().max() < 2e-2


def test_fp16_grad_scaler_state_is_saved_and_restored(tmp_path):
    opt = model_options(tmp_path, ema=0)
    opt.update(use_amp=True, amp_bf16=False)  # fp16 on the CPU works in torch, though the entries refuse it
    model = build_model(opt)
    model.feed_data(batch())
    model.optimize_parameters(1)
    model.scaler.update(1024.0)  # as after the scale has backed off
    model.save_training_state(0, 1)
    state = torch.load(tmp_path / 'training_states' / '1.state', weights_only=True)
    assert state['scaler']['scale'] == model.scaler.get_scale() == 1024.0
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '1.state')
    resumed = build_model(opt)
    assert resumed.scaler.get_scale() == 65536.0  # a new scaler starts at 2**16
    resumed.resume_training(state)
    assert resumed.scaler.get_scale() == 1024.0
    # bf16 and fp32 runs have no scaler state
    opt.update(amp_bf16=True)
    build_model(opt).save_training_state(0, 2)
    assert 'scaler' not in torch.load(tmp_path / 'training_states' / '2.state', weights_only=True)


@pytest.mark.slow
def test_bf16_training_from_the_option_keys_runs_and_resumes(lmdb_root, tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt.update(name='bf16', num_gpu=0, use_amp=True, amp_bf16=True, use_channels_last=True)
    opt['datasets']['train'].update(
        dataroot_gt=str(lmdb_root / 'DIV2K_train_HR_sub.lmdb'),
        dataroot_lq=str(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb'),
        gt_size=24,
        batch_size_per_gpu=2,
        num_worker_per_gpu=0,
        dataset_enlarge_ratio=1,
    )
    opt['datasets']['val'].update(
        dataroot_gt=str(lmdb_root / 'DIV2K_valid_HR.lmdb'),
        dataroot_lq=str(lmdb_root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
    )
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['train'].update(total_iter=2)
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'b.yml', opt)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    opt['train']['total_iter'] = 4
    next_second()
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'b.yml', opt), '--auto_resume'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = ''.join(p.read_text() for p in sorted((tmp_path / 'experiments' / 'bf16').glob('train_*.log')))
    assert 'All 1 rank(s) resumed at iteration 2 with identical weights.' in log
    # one validation per multiple of val_freq (2 and 4); basicsr's end-of-run repeat of each is skipped and logged
    assert log.count('# psnr: ') == len(range(2, 4 + 1, opt['val']['val_freq']))
    assert log.count('Validation DIV2K_valid of iteration 4 is done already.') == 1
    assert (tmp_path / 'experiments' / 'bf16' / 'models' / 'net_g_4.pth').exists()
