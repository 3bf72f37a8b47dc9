"""The option loader, launch checks that stop before any work, and mixed-precision training."""
import sys

import pytest
import torch

from basicsr.models import build_model
from helpers import OPTIONS, REPO, TEST, TRAIN, make_lmdbs, run, write_options
from helpers import batch, model_options
from wdsr_basicsr.options import apply_force_yml, check_name, load_options
from wdsr_basicsr.utils import dist as dist_util


# ---------------------------------------------------------------------------------------------- option loader


def test_shipped_files_read_the_same_as_basicsr_reads_them():
    import yaml

    from basicsr.utils.options import ordered_yaml
    for path in sorted(OPTIONS.rglob('*.yml')):
        with open(path) as f:
            assert load_options(path) == yaml.load(f, Loader=ordered_yaml()[0]), path


def test_python_tag_is_refused_with_file_and_line(tmp_path):
    path = tmp_path / 'evil.yml'
    path.write_text(f'name: x\nmanual_seed: !!python/object/apply:os.system ["touch {tmp_path}/pwned"]\n')
    with pytest.raises(ValueError, match=r'evil.yml, line 2: .*python/object/apply:os.system'):
        load_options(path)
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.parametrize('command', ['train', 'test', 'benchmark'])
def test_entries_refuse_a_python_tag_and_run_nothing(tmp_path, command):
    text = (OPTIONS / 'train_wdsr_b_x2.yml').read_text().replace(
        'manual_seed: 0', f'manual_seed: !!python/object/apply:os.system ["touch {tmp_path}/pwned"]')
    (tmp_path / 'evil.yml').write_text(text)
    entry = {'train': [TRAIN, '-opt'], 'test': [TEST, '-opt'], 'benchmark': [str(REPO / 'scripts' / 'benchmark.py'),
                                                                               '--opt']}[command]
    result = run([sys.executable, *entry, str(tmp_path / 'evil.yml')], tmp_path)
    line = 1 + next(i for i, t in enumerate(text.splitlines()) if 'python/object' in t)
    assert result.returncode != 0 and f'evil.yml, line {line}: ' in result.stderr and 'python/object/apply:os.system' \
        in result.stderr
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.slow
def test_force_yml_injection_runs_nothing(tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt['num_gpu'] = 8  # stops right after the options are read, before any work
    injected = f'name"];__import__("os").system("touch {tmp_path}/pwned");opt["name=1'
    for entry in (f'name=[__import__("os").system("touch {tmp_path}/pwned")]', injected):
        result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'f.yml', opt), '--force_yml', entry],
                     tmp_path)
        assert result.returncode != 0
    assert not (tmp_path / 'pwned').exists()


def test_force_yml_reads_values_as_yaml_and_runs_nothing(tmp_path):
    opt = {'name': 'a', 'train': {'ema_decay': 0, 'optim_g': {'lr': 1e-3}}, 'val': {'save_img': False}}
    apply_force_yml(opt, ['train:ema_decay=0.999', 'train:optim_g:lr=!!float 1e-4', 'val:save_img=true',
                          'train:milestones=[1, 2]', 'name=none', f'val:x=__import__("os").system("touch {tmp_path}/p")'])
    assert opt['train'] == {'ema_decay': 0.999, 'optim_g': {'lr': 1e-4}, 'milestones': [1, 2]}
    assert opt['name'] is None and opt['val']['save_img'] is True and opt['val']['x'].startswith('__import__')
    assert not (tmp_path / 'p').exists()
    with pytest.raises(ValueError, match='nosuch is not a section'):
        apply_force_yml(opt, ['nosuch:key=1'])
    with pytest.raises(ValueError, match='expected key:sub=value'):
        apply_force_yml(opt, ['name"];import os;opt["name'])


@pytest.mark.parametrize('name', ['../outside', '/tmp/abs', 'a/b', 'a\\b', '', '..', '.', None])
def test_experiment_names_that_leave_experiments_are_refused(name):
    with pytest.raises(ValueError, match='must be a plain directory name'):
        check_name(name, 'x.yml')
    check_name('train_wdsr_b_x2..v2', 'x.yml')  # dots inside a name are fine


@pytest.mark.parametrize('entry', [TRAIN, TEST])
def test_entries_refuse_an_escaping_name_before_anything_moves(tmp_path, entry):
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'keep.txt').write_text('user data')
    work = tmp_path / 'work'
    (work / 'experiments').mkdir(parents=True)
    (work / 'results').mkdir()
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt.update(name='../../outside', num_gpu=0)
    result = run([sys.executable, entry, '-opt', write_options(tmp_path / 'n.yml', opt)], work)
    assert result.returncode != 0 and "name='../../outside' must be a plain directory name" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['n.yml', 'outside', 'work']  # nothing archived
    assert (outside / 'keep.txt').read_text() == 'user data'


# ---------------------------------------------------------------------------------------------- launch checks


def fake_gpus(monkeypatch, count):
    monkeypatch.setattr(dist_util.torch.cuda, 'is_available', lambda: count > 0)
    monkeypatch.setattr(dist_util.torch.cuda, 'device_count', lambda: count)


@pytest.mark.parametrize('gpus, launcher, world, local_rank, opt, message', [
    (2, 'none', 1, 0, {'num_gpu': 8}, 'num_gpu=8 but 2 GPU(s) are visible; use num_gpu: auto or at most 2'),
    (0, 'none', 1, 0, {'num_gpu': 1}, 'num_gpu=1 but no CUDA GPU is visible'),
    (2, 'pytorch', 2, 0, {'num_gpu': 8}, 'num_gpu=8 but the launcher started 2 process(es)'),
    (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'backend': 'nccl'}}, 'dist_params:backend=nccl needs CUDA'),
    (2, 'pytorch', 4, 3, {'num_gpu': 'auto'}, 'local rank 3 (--local-rank / LOCAL_RANK) but 2 GPU(s) are visible'),
    (0, 'none', 1, 0, {'num_gpu': 0, 'use_amp': True, 'amp_bf16': False}, 'use_amp with fp16 (amp_bf16: false) '
     'needs a CUDA GPU'),
    (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'timeout_min': '5'}}, 'timeout_min=.5. must be a positive'),
    (0, 'pytorch', 2, 0, {'num_gpu': 0, 'dist_params': {'backend': 'mpi'}}, 'backend=.mpi.; use nccl'),
])
def test_launch_combinations_that_cannot_work_are_refused(monkeypatch, gpus, launcher, world, local_rank, opt,
                                                         message):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv('WORLD_SIZE', str(world))
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)').replace('[', r'\[')
                       .replace(']', r'\]')):
        dist_util.check_launch(opt, launcher, local_rank, 'x.yml')


@pytest.mark.parametrize('gpus, launcher, world, opt, uses_gpu', [
    (0, 'none', 1, {'num_gpu': 'auto', 'use_amp': True, 'amp_bf16': True}, False),  # bf16 on the CPU is fine
    (2, 'pytorch', 8, {'num_gpu': 8, 'use_amp': True, 'amp_bf16': False}, True),  # 2 nodes of 4: num_gpu counts all
    (2, 'pytorch', 2, {'num_gpu': 0, 'dist_params': {'backend': 'gloo'}}, False),
    (2, 'none', 1, {'num_gpu': 'auto'}, True),
])
def test_launch_combinations_that_work_pass(monkeypatch, gpus, launcher, world, opt, uses_gpu):
    fake_gpus(monkeypatch, gpus)
    monkeypatch.setenv('WORLD_SIZE', str(world))
    assert dist_util.check_launch(opt, launcher, 1, 'x.yml') is uses_gpu


def test_bad_launch_stops_the_entry_before_any_work(lmdb_root, tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt.update(name='nogpu', num_gpu=8)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'g.yml', opt)], tmp_path)
    assert result.returncode != 0 and 'g.yml: num_gpu=8 but no CUDA GPU is visible' in result.stderr
    assert not (tmp_path / 'experiments').exists()


# ---------------------------------------------------------------------------------------------- mixed precision


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
    assert bf16.output.dtype == torch.float32 and bf16.lq.is_contiguous(memory_format=torch.channels_last)
    # the loss agrees to bf16's precision (8 bits of mantissa: ~0.4%)
    assert abs(bf16.log_dict['l_pix'] - fp32.log_dict['l_pix']) < 5e-3 * fp32.log_dict['l_pix']
    # every gradient (weight norm's g and v included) within 5% relative L2 error of fp32's (measured: <= 3%)
    for (name, a), b in zip(fp32.net_g.named_parameters(), bf16.net_g.parameters()):
        assert (a.grad - b.grad).norm() < 0.05 * a.grad.norm(), name
    # the bf16 output differs from the fp32 one by bf16 rounding, not more
    assert (bf16.output - fp32.output).abs().max() < 2e-2


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
    opt['datasets']['train'].update(dataroot_gt=str(lmdb_root / 'DIV2K_train_HR_sub.lmdb'),
                                    dataroot_lq=str(lmdb_root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb'), gt_size=24,
                                    batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1)
    opt['datasets']['val'].update(dataroot_gt=str(lmdb_root / 'DIV2K_valid_HR.lmdb'),
                                  dataroot_lq=str(lmdb_root / 'DIV2K_valid_LR_bicubic_X2.lmdb'))
    opt['network_g'].update(num_feat=8, num_block=1)
    opt['train'].update(total_iter=2)
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'b.yml', opt)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    opt['train']['total_iter'] = 4
    result = run([sys.executable, TRAIN, '-opt', write_options(tmp_path / 'b.yml', opt), '--auto_resume'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = ''.join(p.read_text() for p in sorted((tmp_path / 'experiments' / 'bf16').glob('train_*.log')))
    assert 'All 1 rank(s) resumed at iteration 2 with identical weights.' in log
    assert log.count('# psnr: ') >= 3 and (tmp_path / 'experiments' / 'bf16' / 'models' / 'net_g_4.pth').exists()


@pytest.mark.slow
def test_check_gpu_cpu_mode(tmp_path):
    data = make_lmdbs(tmp_path / 'demo', (2, ))
    result = run([sys.executable, str(REPO / 'scripts' / 'check_gpu.py'), '--device', 'cpu', '--data', str(data),
                  '--options', str(OPTIONS),
                  '--work', str(tmp_path / 'work')], tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / 'work' / 'gpu_check.md').read_text()
    rows = [line for line in report.splitlines() if line.startswith('| check_')]
    assert len(rows) == 4 and all(row.endswith('| yes |') for row in rows)
    assert '| check_resume (resumed) |' in report and '(SyncBN)' not in report  # SyncBN only on GPUs
    assert 'bf16, channels-last' in report


def test_ranks_that_find_different_states_stop_before_training(monkeypatch):
    from wdsr_basicsr.utils import resume
    monkeypatch.setattr(resume, 'find_resume_state', lambda opt: {'iter': 4})
    monkeypatch.setattr(resume, 'all_gather', lambda value: [value, None])  # rank 1 sees no experiments/ folder
    with pytest.raises(RuntimeError, match=r'rank 0: iteration 4, rank 1: nothing\); every rank must see the same'):
        resume.load_resume_state({})
    monkeypatch.setattr(resume, 'all_gather', lambda value: [value, value])
    assert resume.load_resume_state({}) == {'iter': 4}
