"""The option schema: basicsr's vocabulary and ranges, checked before any work, with the closest key named."""

import copy
import json
from pathlib import Path

import pytest

from helpers import OPTIONS, REPO
from wdsr_basicsr.options import OptionError, check_options, load_options

ALL = sorted(OPTIONS.rglob('*.yml'))

# Four of basicsr's own option files (XPixelGroup/BasicSR options/, as tests/assets holds them): name -> training?
BASICSR_FILES = {
    'train/EDSR/train_EDSR_Mx2.yml': True,
    'train/RCAN/train_RCAN_x2.yml': True,
    'train/SwinIR/train_SwinIR_SRx2_scratch.yml': True,
    'test/EDSR/test_EDSR_Mx2.yml': False,
}
BASICSR_OPTIONS = json.loads((REPO / 'tests' / 'assets' / 'basicsr_options.json').read_text())


@pytest.mark.parametrize('path', ALL, ids=lambda p: str(p.relative_to(OPTIONS)))
def test_every_shipped_file_passes(path):
    check_options(load_options(path), str(path), not path.name.startswith('test_'))


@pytest.mark.parametrize('name', BASICSR_FILES)
def test_basicsr_own_option_files_pass(name):
    opt, is_train = BASICSR_OPTIONS[name], BASICSR_FILES[name]
    assert check_options(copy.deepcopy(opt), name, is_train) == []  # basicsr's own words: not even a warning


def shipped():
    return load_options(OPTIONS / 'train_wdsr_b_x2.yml')


@pytest.mark.parametrize(
    'change, message',
    [
        (lambda o: o['val'].update(val_frq=5000), 'unknown option val:val_frq (did you mean val_freq?)'),
        (lambda o: o.update(num_gpus=1), 'unknown option num_gpus (did you mean num_gpu?)'),
        (lambda o: o['network_g'].update(num_feats=32), 'unknown option network_g:num_feats (did you mean num_feat?)'),
        (
            lambda o: o['train']['optim_g'].update(beta=[0.9, 0.99]),
            'unknown option train:optim_g:beta (did you mean betas?)',
        ),
        (
            lambda o: o['train']['scheduler'].update(milestone=[1]),
            'train:scheduler:milestone (did you mean milestones?)',
        ),
        (lambda o: o['train']['pixel_opt'].update(weight=1), 'unknown option train:pixel_opt:weight'),
        (lambda o: o['datasets']['train'].update(use_flip=True), 'datasets:train:use_flip (did you mean use_hflip?)'),
        (
            lambda o: o['logger'].update(save_checkpoint_frq=5),
            'logger:save_checkpoint_frq (did you mean save_checkpoint_freq',
        ),
        (
            lambda o: o['dist_params'].update(timeout=5),
            'unknown option dist_params:timeout; it takes backend, port, timeout_min',
        ),
        (lambda o: o['logger'].update(save_checkpoint_freq=0), 'logger:save_checkpoint_freq=0 must be at least 1'),
        (lambda o: o['val'].update(val_freq=0), 'val:val_freq=0 must be at least 1'),
        (lambda o: o['train'].update(total_iter='many'), "train:total_iter='many' must be an integer"),
        (lambda o: o['datasets']['train'].update(gt_size=97), 'gt_size=97 is not a multiple of scale=2'),
        (lambda o: o['network_g'].update(upscale=3), 'network_g:upscale=3 differs from scale=2'),
        (lambda o: o['network_g'].update(type='WDSR_C'), "network_g:type='WDSR_C' is not registered"),
        (lambda o: o.update(model_type='WDSRModle'), "model_type='WDSRModle' is not registered"),
        (lambda o: o['datasets'].update(valid=o['datasets']['val']), 'datasets:valid must be train, val'),
        (lambda o: o['train'].update(ema_decay=1.5), 'ema_decay=1.5 must be in [0, 1)'),
        (lambda o: o['val'].pop('val_freq'), 'val:val_freq is missing'),
        (lambda o: o.update(train=5), 'option train must be a section of key: value lines, not 5'),
        (lambda o: o.update(use_amp='yes'), "use_amp='yes' must be true or false"),
        (lambda o: o['datasets'].update(val='DIV2K'), 'datasets:val must be a section'),
        (lambda o: o['train']['optim_g'].update(lr=float('nan')), 'train:optim_g:lr=nan must be a finite number'),
        (
            lambda o: o['train']['pixel_opt'].update(loss_weight=float('inf')),
            'pixel_opt:loss_weight=inf must be a finite',
        ),
        (lambda o: o['train'].update(total_iter=float('nan')), 'train:total_iter=nan must be a finite number'),
        (lambda o: o['train'].update(total_iter='1e400'), "train:total_iter='1e400' must be an integer"),
        (lambda o: o['train']['scheduler'].update(gamma='.nan'), "train:scheduler:gamma='.nan' must be a number"),
        (lambda o: o['train'].update(total_iter=None), 'train:total_iter is null; it must be an integer'),
        (lambda o: o['train'].pop('total_iter'), 'option train:total_iter is missing'),
        (
            lambda o: o['datasets']['train'].pop('batch_size_per_gpu'),
            'option datasets:train:batch_size_per_gpu is missing',
        ),
        (
            lambda o: o['datasets']['train'].update(use_hflip='no'),
            "datasets:train:use_hflip='no' must be true or false",
        ),
        (lambda o: o['path'].update(strict_load_g='false'), "path:strict_load_g='false' must be true or false"),
        (
            lambda o: o['datasets']['val'].update(name='../../outside'),
            "datasets:val:name='../../outside' must be a plain",
        ),
        (
            lambda o: o['val']['metrics']['psnr'].update(test_y_channel='yes'),
            "val:metrics:psnr:test_y_channel='yes' must be true or false",
        ),
    ],
)
def test_bad_option_named(change, message):
    opt = shipped()
    change(opt)
    with pytest.raises(OptionError) as error:
        check_options(opt, 'train_wdsr_b_x2.yml', True)
    assert message in str(error.value) and str(error.value).startswith('train_wdsr_b_x2.yml: ')


def edited_recipe(tmp_path, *edits):
    """The x2 recipe with each ``(old, new)`` line edit made as a user types it, read and checked."""
    text = (OPTIONS / 'train_wdsr_b_x2.yml').read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / 'x.yml').write_text(text)
    opt = load_options(tmp_path / 'x.yml')
    check_options(opt, 'x.yml', True)
    return opt


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3 and 6e5, without a dot, as strings
    opt = edited_recipe(
        tmp_path,
        ('lr: !!float 0.001', 'lr: 1e-3'),
        ('total_iter: 600000', 'total_iter: 6e5'),
        ('val_freq: !!float 5000', 'val_freq: 5.0e+3'),
        ('milestones: [200000, 400000]', 'milestones: [2e5, 4e5]'),
    )
    assert opt['train']['scheduler']['milestones'] == [200000, 400000]
    assert opt['train']['optim_g']['lr'] == 1e-3 and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['train']['total_iter'] == 600000 and isinstance(opt['train']['total_iter'], int)
    assert opt['val']['val_freq'] == 5000 and isinstance(opt['val']['val_freq'], int)


def test_a_huge_frequency_means_never(tmp_path):
    """CodeFormer writes `val_freq: !!float 5e10  # no validation`: basicsr only tests current_iter % freq."""
    opt = edited_recipe(
        tmp_path,
        ('val_freq: !!float 5000', 'val_freq: !!float 5e10  # no validation'),
        ('save_checkpoint_freq: !!float 5000', 'save_checkpoint_freq: !!float 1e10'),
        ('print_freq: 100', 'print_freq: !!float 1e12'),
    )
    frequencies = (opt['val']['val_freq'], opt['logger']['save_checkpoint_freq'], opt['logger']['print_freq'])
    assert frequencies == (5 * 10**10, 10**10, 10**12)
    # as basicsr's loop tests them over the run's iterations: never
    assert not any(i % f == 0 for f in frequencies for i in range(1, opt['train']['total_iter'] + 1))


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    path = tmp_path / 'twice.yml'
    path.write_text('name: first\nmodel_type: WDSRModel\ntrain:\n  total_iter: 5\n  total_iter: 6\n')
    with pytest.raises(
        ValueError,
        match=r"twice.yml, line 5: key 'total_iter' is written twice in one section "
        r'\(lines 4 and 5\) with different values',
    ):
        load_options(path)
    path.write_text('name: first\nmodel_type: WDSRModel\nname: second\n')  # would train into another experiment
    with pytest.raises(ValueError, match=r"key 'name' is written twice in one section \(lines 1 and 3\)"):
        load_options(path)
    path.write_text('base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n')  # a merge key may be overridden
    assert load_options(path)['derived'] == {'a': 1, 'b': 3}
    path.write_text('train:\n  total_iter: 5\n  total_iter: 5.0\n')  # equal in Python, but not the same value
    with pytest.raises(ValueError, match='with different values'):
        load_options(path)


def test_a_key_written_twice_alike_is_a_warning(tmp_path):
    """SAFMN's files write `resume_state: ~` twice in path:, which changes nothing (YAML keeps the second)."""
    text = (OPTIONS / 'train_wdsr_b_x2.yml').read_text()
    assert '  resume_state: ~\n' in text
    path = tmp_path / 'alike.yml'
    path.write_text(text.replace('  resume_state: ~\n', '  resume_state: ~\n  resume_state: ~\n'))
    line = text[: text.index('  resume_state: ~\n')].count('\n') + 1
    warnings: list[str] = []
    opt = load_options(path, warnings)
    assert opt == load_options(OPTIONS / 'train_wdsr_b_x2.yml')
    assert warnings == [
        f"{path}, line {line + 1}: key 'resume_state' is written twice in one section (lines {line} and "
        f'{line + 1}), alike; the second changes nothing.'
    ]


def test_not_yaml_is_named(tmp_path):
    path = tmp_path / 'broken.yml'
    path.write_text('name: x\ntrain: [1, 2\n')
    with pytest.raises(ValueError, match='broken.yml is not valid YAML: .*line 3'):
        load_options(path)


def test_a_test_file_with_an_empty_val_is_refused():
    opt = load_options(OPTIONS / 'test_wdsr_b_x2.yml')
    opt['val'] = None
    with pytest.raises(OptionError, match='option val:save_img \\(true or false\\) is missing'):
        check_options(opt, 'test.yml', False)


def test_null_from_force_yml_is_refused_before_anything_moves():
    from wdsr_basicsr.options import apply_force_yml

    opt = shipped()
    apply_force_yml(opt, ['train:total_iter='])
    assert opt['train']['total_iter'] is None
    with pytest.raises(OptionError, match='train:total_iter is null'):
        check_options(opt, 'x.yml', True)


def test_basicsr_table_is_what_basicsr_source_reads():
    """The committed table is remade from basicsr's installed source (the development script's own function)."""
    from wdsr_basicsr.options.source_reads import basicsr_table
    from wdsr_basicsr.options.vocabulary import TABLE

    assert json.loads(Path(TABLE).read_text()) == basicsr_table()


def test_the_table_holds_reads_basicsr_makes():
    """Spot checks against basicsr 1.4.2's own lines (grep-able in site-packages), made independently of the reader."""
    import inspect

    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.models.sr_model import SRModel

    from wdsr_basicsr.options.vocabulary import basicsr_table

    classes = basicsr_table()['classes']
    sr, paired = (classes[f'{c.__module__}.{c.__qualname__}']['reads'] for c in (SRModel, PairedImageDataset))
    assert "train_opt.get('ema_decay', 0)" in inspect.getsource(SRModel) and 'ema_decay' in sr['train']
    assert "self.opt['val'].get('pbar', False)" in inspect.getsource(SRModel) and 'pbar' in sr['val']
    assert "self.opt['gt_size']" in inspect.getsource(PairedImageDataset) and 'gt_size' in paired['datasets:*']


def test_the_reader_counts_loads_not_stores():
    import ast

    from wdsr_basicsr.options.source_reads import _SectionReads

    reads = _SectionReads({'opt': ()})
    code = "def f(opt):\n    opt['rank'] = 0\n    del opt['gone']\n    x = opt['train']['lr']\n    y = opt.get('val')\n"
    reads.function(ast.parse(code).body[0], None)
    assert reads.reads == {(): {'train', 'val'}, ('train',): {'lr'}}


def test_the_check_reads_no_source(monkeypatch):
    """Declared, not guessed: with no source readable (a .pyc-only install), the verdicts are the same."""
    import inspect

    def no_source(obj):
        raise OSError('no source')

    edited = shipped()
    edited['val']['val_frq'] = 5
    expected = check_options(shipped(), 'x.yml', True)
    monkeypatch.setattr(inspect, 'getsource', no_source)
    monkeypatch.setattr(inspect, 'getsourcelines', no_source)
    assert check_options(shipped(), 'x.yml', True) == expected
    with pytest.raises(OptionError, match='unknown option val:val_frq'):
        check_options(edited, 'x.yml', True)
