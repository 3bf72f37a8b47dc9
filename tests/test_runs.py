"""The small-run toolkit: a shipped option file shrunk changes only data, sizes and lengths; tools refuse a
missing folder of option files before any work."""

import copy

import pytest
import yaml

from helpers import OPTIONS
from wdsr_basicsr import reproduce
from wdsr_basicsr.benchmark.gpu_check import main as gpu_check_main
from wdsr_basicsr.prepare.layout import div2k_lmdbs
from wdsr_basicsr.reproduce import main as reproduce_main
from wdsr_basicsr.runs import entry_command, shrink_options


def flatten(tree, prefix=()):
    """Every leaf of a nested dict as (key path) -> value."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in flatten(sub, prefix + (key,)).items()}


def test_a_shrunk_shipped_file_changes_only_data_sizes_and_lengths(tmp_path):
    shipped = yaml.safe_load((OPTIONS / 'train_wdsr_b_x2.yml').read_text())  # read independently of the package
    before = copy.deepcopy(shipped)
    opt = shrink_options(
        shipped,
        data=str(tmp_path),
        name='small',
        iters=40,
        gt_size=24,
        batch=2,
        workers=0,
        network={'num_block': 1},
        enlarge=3,
        validations=4,
        checkpoints=2,
    )
    assert shipped == before  # the caller's options are not modified
    total = shipped['train']['total_iter']
    expected = {
        ('name',): 'small',
        ('network_g', 'num_block'): 1,
        ('train', 'total_iter'): 40,
        ('train', 'scheduler', 'milestones'): [
            max(1, round(m * 40 / total)) for m in shipped['train']['scheduler']['milestones']
        ],
        ('val', 'val_freq'): 10,
        ('logger', 'print_freq'): 4,
        ('logger', 'save_checkpoint_freq'): 20,
        ('datasets', 'train', 'gt_size'): 24,
        ('datasets', 'train', 'batch_size_per_gpu'): 2,
        ('datasets', 'train', 'num_worker_per_gpu'): 0,
        ('datasets', 'train', 'dataset_enlarge_ratio'): 3,
        ('datasets', 'train', 'dataroot_gt'): f'{tmp_path}/DIV2K_train_HR_sub.lmdb',
        ('datasets', 'train', 'dataroot_lq'): f'{tmp_path}/DIV2K_train_LR_bicubic_X2_sub.lmdb',
        ('datasets', 'train', 'io_backend', 'type'): 'lmdb',
        ('datasets', 'val', 'dataroot_gt'): f'{tmp_path}/DIV2K_valid_HR.lmdb',
        ('datasets', 'val', 'dataroot_lq'): f'{tmp_path}/DIV2K_valid_LR_bicubic_X2.lmdb',
        ('datasets', 'val', 'io_backend', 'type'): 'lmdb',
    }
    got, original = flatten(opt), flatten(shipped)
    changed = {k: v for k, v in got.items() if original.get(k, object()) != v}
    assert changed == {k: v for k, v in expected.items() if original.get(k, object()) != v}
    assert set(original) - set(got) == set()  # nothing dropped
    assert div2k_lmdbs(str(tmp_path), 'valid', 3) == (
        f'{tmp_path}/DIV2K_valid_HR.lmdb',
        f'{tmp_path}/DIV2K_valid_LR_bicubic_X3.lmdb',
    )


def test_entry_commands():
    assert entry_command('train', 'a.yml')[2:] == ['-opt', 'a.yml']
    torchrun = entry_command('test', 'a.yml', nproc=2, extra=('--auto_resume',))
    assert torchrun[1:5] == ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
    assert torchrun[5].endswith('wdsr_basicsr/test.py') and torchrun[6:] == [
        '-opt',
        'a.yml',
        '--launcher',
        'pytorch',
        '--auto_resume',
    ]


@pytest.mark.parametrize(
    'tool, argv',
    [(reproduce_main, ['--options', 'nowhere']), (gpu_check_main, ['--device', 'cpu', '--options', 'nowhere'])],
)
def test_a_missing_folder_of_option_files_is_named_before_any_work(tmp_path, monkeypatch, capsys, tool, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        tool(argv)
    assert stop.value.code == 2 and '--options nowhere is not a folder' in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no demo set, no output folder


@pytest.mark.parametrize('data, built', [(None, ['datasets/demo']), ('datasets/DIV2K', [])])
def test_reproduce_builds_the_demo_set_only_for_its_default_data(tmp_path, monkeypatch, data, built):
    """The sweep's default data is the demo set, made when missing (the how-to's "demo set, minutes" command);
    data given is read as it is."""
    made = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reproduce, 'make_demo_data', lambda root, scales: made.append((root, scales)))
    monkeypatch.setattr(reproduce, 'run_table1', lambda args: [f'| rows of {args.data} |'])
    argv = ['--mode', 'table1', '--options', str(OPTIONS / 'paper')] + (['--data', data] if data else [])
    assert reproduce.main(argv) == 0
    assert made == [(root, (2,)) for root in built]
    assert f'| rows of {data or "datasets/demo"} |' in (tmp_path / 'docs' / 'reproduce' / 'table1.md').read_text()
