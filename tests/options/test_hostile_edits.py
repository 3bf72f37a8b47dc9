"""Small edits of the shipped demo file, as a user makes them: each key judged where it stands, by what it must be.

Each refused edit gets one line naming the file, the key with its section and what it must be; each accepted one
trains as before (a warning names a key that nothing reads).
"""

import sys

import pytest

from helpers import OPTIONS, TRAIN, run, write_options
from wdsr_basicsr.options import OptionError, check_options, load_options
from wdsr_basicsr.options.check import model_keys
from wdsr_basicsr.utils.dist import check_launch

DEMO = OPTIONS / 'demo_wdsr_b_x2.yml'
LOSS = ('train', 'pixel_opt')


def edit(opt, keys, value):
    """``opt`` with ``opt[keys...] = value``; a value of DELETE removes the key."""
    section = opt
    for key in keys[:-1]:
        section = section[key]
    if value is DELETE:
        del section[keys[-1]]
    else:
        section[keys[-1]] = value
    return opt


DELETE = object()
REFUSED = [
    (('ema_decay',), 0.999, 'ema_decay: belongs under train:'),
    (('train', 'val_freq'), 100, 'train:val_freq: belongs under val:'),
    (('val', 'batch_size_per_gpu'), 4, 'val:batch_size_per_gpu: belongs under datasets:<name>:'),
    (('datasets', 'val', 'save_img'), False, 'datasets:val:save_img: belongs under val:'),
    (('logger', 'gt_size'), 96, 'logger:gt_size: belongs under datasets:<name>:'),
    (('val', 'metrics', 'psnr', 'crop_border'), -2, 'val:metrics:psnr:crop_border=-2 must be at least 0.'),
    (
        ('val', 'metrics', 'psnr', 'crop_boder'),
        2,
        'unknown option val:metrics:psnr:crop_boder (did you mean crop_border?)',
    ),
    (
        ('val', 'metrics', 'psnr', 'crop_border'),
        '2',
        "val:metrics:psnr:crop_border='2' must be an integer (quoted, it is text).",
    ),
    (('network_g',), 5, 'option network_g must be a section of key: value lines with a type, not 5.'),
    (('val', 'metrics'), ['psnr'], "option val:metrics must be a section of key: value lines, not ['psnr']."),
    (('manual_seed',), 4294967296, 'manual_seed=4294967296 must be at most 4294967295.'),
    (('train', 'total_iter'), 1e30, 'train:total_iter=1e+30 must be at most 2147483647.'),
    (('train', 'total_iter'), 10**12, 'train:total_iter=1000000000000 must be at most 2147483647.'),
    (
        ('datasets', 'train', 'io_backend'),
        'disk',
        "option datasets:train:io_backend must be a section of key: value lines with a type, not 'disk'.",
    ),
    (('train', 'optim_g'), None, 'train:optim_g is null; it must be a section of key: value lines with a type.'),
    (LOSS + ('type',), DELETE, 'option train:pixel_opt has no type: it names what is built.'),
    (('train', 'scheduler', 'type'), DELETE, 'option train:scheduler has no type: it names what is built.'),
    (('network_g', 'num_feat'), '8', "network_g:num_feat='8' must be a number (quoted, it is text)."),
    (('train', 'optim_g', 'betas'), [2, 3], 'train:optim_g:betas[0]=2 must be in [0, 1).'),
    (
        ('train', 'optim_g', 'betas'),
        [0.9, 0.999, 0.5],  # torch's Adam takes the first two and ignores the third
        'train:optim_g:betas=[0.9, 0.999, 0.5] must be a list of 2 values, not 3.',
    ),
    (LOSS + ('loss_weight',), -1.0, 'train:pixel_opt:loss_weight=-1.0 must be at least 0.'),  # it would maximise L1
    (('datasets', 'train', 'color'), 'Y', "datasets:train:color='Y' must be one of y."),  # basicsr compares with 'y'
    (('network_g', 'norm'), 'Weight', "network_g:norm='Weight' must be one of weight, batch, none."),
    (
        ('network_g', 'rgb_mean'),
        [0.5, 0.5],
        'network_g:rgb_mean=[0.5, 0.5] must be a list of 3 values, not 2.',  # num_in_ch's default, 3
    ),
    (('datasets', 'train', 'sampling'), 'images', "datasets:train:sampling='images' must be one of image, record."),
    (('dist_params', 'timeout_min'), 0, 'dist_params:timeout_min=0 must be above 0.'),
    (('dist_params', 'backend'), 'mpi', "dist_params:backend='mpi' must be one of auto, nccl, gloo."),
    (('train', 'scheduler', 'milestones'), 100, 'train:scheduler:milestones=100 must be a list [a, b, ...].'),
    (LOSS + ('loss_weight',), 'x', "train:pixel_opt:loss_weight='x' must be a number (quoted, it is text)."),
    (('train', 'scheduler', 'gamma'), True, 'train:scheduler:gamma=True must be a number.'),
]
ACCEPTED = [  # words nothing reads: a warning each, never a refusal (none is a typo of a key of its section)
    (
        ('title',),
        'WDSR-B demo',
        "option title has no effect: WDSRModel, CheckedPairedImageDataset and basicsr's pipeline do not read it there.",
    ),
    (('train', 'epochs'), 10, 'option train:epochs has no effect'),
    (('model',), 'wdsr', 'option model has no effect'),
    (('val', 'dataset'), 'DIV2K', 'option val:dataset has no effect'),
]


@pytest.mark.parametrize(
    'keys, value, message', REFUSED, ids=lambda v: ':'.join(map(str, v)) if isinstance(v, tuple) else None
)
def test_a_hostile_edit_is_refused_where_it_stands(keys, value, message):
    with pytest.raises(OptionError) as error:
        check_options(edit(load_options(DEMO), keys, value), 'demo.yml', True)
    assert str(error.value) == f'demo.yml: {message}' or str(error.value).startswith(f'demo.yml: {message}')


@pytest.mark.parametrize('keys, value, warning', ACCEPTED, ids=lambda v: ':'.join(v) if isinstance(v, tuple) else None)
def test_a_word_nothing_reads_is_a_warning(keys, value, warning):
    warnings = check_options(edit(load_options(DEMO), keys, value), 'demo.yml', True)
    assert [w for w in warnings if warning in w] and len(warnings) == 1, warnings


def test_yaml_1_1_numbers_are_numbers_in_lists_too(tmp_path):
    text = DEMO.read_text()
    assert 'milestones: [1500]' in text
    (tmp_path / 'd.yml').write_text(text.replace('milestones: [1500]', 'milestones: [2e0, 15e2]'))
    opt = load_options(tmp_path / 'd.yml')
    check_options(opt, 'd.yml', True)
    assert opt['train']['scheduler']['milestones'] == [2, 1500]
    assert all(type(m) is int for m in opt['train']['scheduler']['milestones'])


def test_a_duplicate_with_the_same_value_is_a_warning():
    """BasicSR's test_TOF_official.yml writes save_img at the top level and under val: basicsr runs it."""
    opt = load_options(DEMO)
    warnings = check_options(edit(opt, ('save_img',), opt['val']['save_img']), 'demo.yml', True)
    assert warnings == ['demo.yml: option save_img has no effect: val:save_img is the one read (SRFormer writes both).']
    opt = load_options(DEMO)  # with another value too (SRFormer's test files): basicsr runs it, reading val's
    warnings = check_options(edit(opt, ('save_img',), not opt['val']['save_img']), 'demo.yml', True)
    assert warnings == ['demo.yml: option save_img has no effect: val:save_img is the one read (SRFormer writes both).']


@pytest.mark.slow
@pytest.mark.parametrize('entry', ['wdsr', 'basicsr'])
def test_every_entry_refuses_in_one_line(tmp_path, entry):
    opt_file = write_options(tmp_path / 'd.yml', edit(load_options(DEMO), ('ema_decay',), 0.999))
    command = [sys.executable, TRAIN] if entry == 'wdsr' else [sys.executable, '-m', 'basicsr.train']
    result = run(command + ['-opt', opt_file], tmp_path, timeout=120)
    # (runpy warns that basicsr's __init__ imported basicsr.train before running it as __main__: basicsr's own)
    lines = [line for line in result.stderr.splitlines() if "RuntimeWarning: 'basicsr.train' found" not in line]
    assert result.returncode == 1 and lines == [
        f'error: {opt_file}: ema_decay: belongs under train: (WDSRModel, '
        'CheckedPairedImageDataset and basicsr read it there; where it stands '
        'nothing does).'
    ], result.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['d.yml']


def test_an_integral_number_for_an_integer_keyword_is_made_an_integer():
    """``num_feat: 1.6e1`` is 16.0 in YAML; WDSR_B's num_feat is an int (nn.Conv2d refuses 16.0)."""
    opt = edit(load_options(DEMO), ('network_g', 'num_feat'), 1.6e1)
    check_options(opt, 'demo.yml', True)
    assert type(opt['network_g']['num_feat']) is int and opt['network_g']['num_feat'] == 16
    opt = edit(load_options(DEMO), ('network_g', 'res_scale'), 0.1)  # a float stays a float
    check_options(opt, 'demo.yml', True)
    assert opt['network_g']['res_scale'] == 0.1


def test_basicsr_package_level_parse_options_is_ours():
    import basicsr

    from wdsr_basicsr.compat import entry_parse_options

    assert basicsr.parse_options is entry_parse_options  # ours (and the __main__ copy's resume, see compat)


@pytest.mark.parametrize(
    'edits, message',
    [
        ({('align_channels',): 8, ('network_g', 'norm'): 'batch'}, "align_channels needs norm 'weight' or 'none'"),
        (
            {('align_channels',): 8, ('network_g',): {'type': 'RDN', 'num_feat': 8, 'num_block': 1, 'upscale': 2}},
            'align_channels pads WDSR-A and WDSR-B, not RDN',
        ),
        (
            {('datasets', 'train', 'cache_device'): 'cpu', ('datasets', 'train', 'cache_data'): False}
            | {('datasets', 'train', 'sampling'): DELETE},
            'datasets:train: cache_device is read with cache_data: true only',
        ),
        (
            {('datasets', 'train', 'cache_device'): 'cuda'},
            'datasets:train: cache_device: cuda, but torch sees no CUDA GPU here',
        ),
    ],
    ids=['align_batchnorm', 'align_rdn', 'cache_device_without_cache', 'cache_device_cuda_on_cpu'],
)
def test_this_steps_options_are_refused_in_one_line_before_any_work(edits, message):
    """The keys of the GPU step and the device cache: refused by the option check (what the entries run first)."""
    opt = load_options(DEMO)
    for keys, value in edits.items():
        edit(opt, keys, value)
    with pytest.raises(OptionError) as error:
        check_options(opt, 'demo.yml', True)
    assert str(error.value).startswith(f'demo.yml: {message}') and '\n' not in str(error.value)


def test_align_channels_is_refused_under_a_launcher(tmp_path):
    opt = edit(load_options(DEMO), ('align_channels',), 8)
    with pytest.raises(ValueError, match=r"d\.yml: align_channels: a distributed run trains through DDP's own"):
        check_launch(opt, 'pytorch', 0, 'd.yml', model_keys=model_keys(opt))


@pytest.mark.parametrize(
    'keys, value, message',
    [
        (('logger', 'keep_checkpoints'), 0, 'logger:keep_checkpoints'),
        (('logger', 'keep_checkpoints'), 'two', 'logger:keep_checkpoints'),
        (('logger', 'keep_checkpoints'), 2.5, 'logger:keep_checkpoints'),
        (('val', 'best_metric'), 'lpips', "val:best_metric='lpips' is not computed by the validation (val:metrics has"),
    ],
    ids=['keep_0', 'keep_word', 'keep_fraction', 'best_not_computed'],
)
def test_retention_options_are_refused_in_one_line(keys, value, message):
    """Checkpoint retention (docs/tutorials/cluster.md) on the demo file: a keep below 1 or not an integer, a best
    metric that the validation does not compute."""
    opt = edit(load_options(DEMO), keys, value)
    with pytest.raises(OptionError) as error:
        check_options(opt, 'demo.yml', True)
    assert message in str(error.value) and '\n' not in str(error.value)


def test_retention_options_as_documented_pass():
    opt = edit(edit(load_options(DEMO), ('logger', 'keep_checkpoints'), 3), ('val', 'best_metric'), 'psnr_y')
    assert 'psnr_y' in opt['val']['metrics']
    check_options(opt, 'demo.yml', True)
