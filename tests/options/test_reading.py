"""Option files read safely (no code runs, --force_yml as YAML) and experiment names that stay in experiments/."""

import sys

import pytest

from helpers import OPTIONS, REPO, TEST, TRAIN, run, write_options
from wdsr_basicsr.options import apply_force_yml, check_name, load_options


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
    text = (
        (OPTIONS / 'train_wdsr_b_x2.yml')
        .read_text()
        .replace('manual_seed: 0', f'manual_seed: !!python/object/apply:os.system ["touch {tmp_path}/pwned"]')
    )
    (tmp_path / 'evil.yml').write_text(text)
    entry = {
        'train': [TRAIN, '-opt'],
        'test': [TEST, '-opt'],
        'benchmark': [str(REPO / 'scripts' / 'benchmark.py'), '--opt'],
    }[command]
    result = run([sys.executable, *entry, str(tmp_path / 'evil.yml')], tmp_path)
    line = 1 + next(i for i, t in enumerate(text.splitlines()) if 'python/object' in t)
    assert (
        result.returncode != 0
        and f'evil.yml, line {line}: ' in result.stderr
        and 'python/object/apply:os.system' in result.stderr
    )
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.slow
def test_force_yml_injection_runs_nothing(tmp_path):
    opt = load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    opt['num_gpu'] = 8  # stops right after the options are read, before any work
    injected = f'name"];__import__("os").system("touch {tmp_path}/pwned");opt["name=1'
    for entry in (f'name=[__import__("os").system("touch {tmp_path}/pwned")]', injected):
        result = run(
            [sys.executable, TRAIN, '-opt', write_options(tmp_path / 'f.yml', opt), '--force_yml', entry], tmp_path
        )
        assert result.returncode != 0
    assert not (tmp_path / 'pwned').exists()


def test_force_yml_reads_values_as_yaml_and_runs_nothing(tmp_path):
    opt = {'name': 'a', 'train': {'ema_decay': 0, 'optim_g': {'lr': 1e-3}}, 'val': {'save_img': False}}
    apply_force_yml(
        opt,
        [
            'train:ema_decay=0.999',
            'train:optim_g:lr=!!float 1e-4',
            'val:save_img=true',
            'train:milestones=[1, 2]',
            'name=none',
            f'val:x=__import__("os").system("touch {tmp_path}/p")',
        ],
    )
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
