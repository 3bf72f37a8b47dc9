"""The option loader of the training and test entries.

It replaces basicsr's ``parse_options`` (:mod:`wdsr_basicsr.compat` points
basicsr's pipelines at :func:`parse_options`) and keeps the rest of basicsr's
parsing, with these differences:

* YAML is read with a safe loader: mappings and ``!!float`` as in basicsr, but
  a ``!!python/...`` tag is refused with the file, line and tag, never run.
* ``--force_yml key:sub=value`` walks the keys as plain dictionary keys and
  reads the value as a YAML scalar or list; nothing is evaluated.
* ``--local-rank`` (what ``python -m torch.distributed.launch`` passes) and
  ``--local_rank`` are both accepted.
* The distributed start takes ``dist_params`` (``backend``, ``port``,
  ``timeout_min``) for every launcher, after :func:`~wdsr_basicsr.utils.dist.check_launch`
  has refused launcher and device combinations that cannot work.
"""
import argparse
import difflib
import inspect
import random
from os import path as osp

import torch
import yaml

from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info

from .utils.dist import DIST_PARAMS, check_launch, init_dist, local_rank_from_env

#: The keys basicsr 1.4.2 (and this package) read, section by section. ``network_g``, the optimizer, the
#: scheduler, the losses and the metrics take the keywords of what their ``type`` names.
TOP_KEYS = ('name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path', 'train', 'val',
            'logger', 'dist_params', 'use_amp', 'amp_bf16', 'use_channels_last', 'find_unused_parameters')
DATASET_KEYS = ('name', 'type', 'dataroot_gt', 'dataroot_lq', 'meta_info_file', 'filename_tmpl', 'io_backend',
                'gt_size', 'use_hflip', 'use_rot', 'use_shuffle', 'num_worker_per_gpu', 'batch_size_per_gpu',
                'dataset_enlarge_ratio', 'prefetch_mode', 'num_prefetch_queue', 'pin_memory', 'persistent_workers',
                'mean', 'std', 'color')
PATH_KEYS = ('pretrain_network_g', 'strict_load_g', 'param_key_g', 'resume_state', 'ignore_resume_networks')
TRAIN_KEYS = ('ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt')
VAL_KEYS = ('val_freq', 'save_img', 'suffix', 'metrics', 'pbar', 'tile', 'tile_pad', 'self_ensemble')
LOGGER_KEYS = ('print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb')
WANDB_KEYS = ('project', 'resume_id', 'entity')
OPTIMIZERS = {'Adam': torch.optim.Adam}  # what basicsr's BaseModel.get_optimizer builds
#: Numbers basicsr computes with: a string such as '1e-3' (YAML 1.1 reads it so) is read as a number.
NUMBERS = {
    ('scale', ): (int, 1), ('manual_seed', ): (int, 0), ('datasets', '*', 'gt_size'): (int, 1),
    ('datasets', '*', 'num_worker_per_gpu'): (int, 0), ('datasets', '*', 'batch_size_per_gpu'): (int, 1),
    ('datasets', '*', 'dataset_enlarge_ratio'): (int, 1), ('train', 'ema_decay'): (float, 0),
    ('train', 'total_iter'): (int, 1), ('train', 'warmup_iter'): (int, -1), ('train', 'optim_g', 'lr'): (float, 0),
    ('train', 'optim_g', 'weight_decay'): (float, 0), ('train', 'optim_g', 'eps'): (float, 0),
    ('train', 'scheduler', 'gamma'): (float, 0), ('val', 'val_freq'): (int, 1), ('val', 'tile'): (int, 0),
    ('val', 'tile_pad'): (int, 0), ('logger', 'print_freq'): (int, 1), ('logger', 'save_checkpoint_freq'): (int, 1),
    ('dist_params', 'timeout_min'): (float, 0),
}


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader; basicsr's ``!!float`` is a standard tag and works."""


def load_options(path):
    """Read an option file with a safe YAML loader.

    Args:
        path (str): The YAML file.

    Returns:
        dict: The options.

    Raises:
        ValueError: If the file uses a tag the safe loader does not construct
            (``!!python/object/apply`` and the like), naming the file, line and
            tag, or if its top level is not a mapping.
    """
    with open(path, encoding='utf-8') as f:
        try:
            opt = yaml.load(f, Loader=_SafeLoader)  # noqa: S506  (a SafeLoader subclass)
        except yaml.constructor.ConstructorError as error:
            mark = error.problem_mark
            raise ValueError(f'{path}, line {mark.line + 1}: {error.problem}; option files may hold plain values '
                             'only, nothing is executed.') from None
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: an option file is a YAML mapping (name:, model_type:, ...), not {type(opt).__name__}.')
    return opt


def apply_force_yml(opt, entries):
    """Apply ``--force_yml`` entries ``key:sub:leaf=value`` to ``opt`` in place.

    Every key but the last must name an existing section; the value is read as a
    YAML scalar or flow list (``1e-4``, ``true``, ``~``, ``[1, 2]``).

    Args:
        opt (dict): The options.
        entries (list[str]): The ``--force_yml`` arguments.

    Raises:
        ValueError: Naming the entry at fault.
    """
    for entry in entries:
        keys, sep, text = entry.partition('=')
        path = [k.strip() for k in keys.split(':')]
        if not sep or not all(path):
            raise ValueError(f'--force_yml {entry!r}: expected key:sub=value.')
        try:
            value = yaml.load(text.strip(), Loader=_SafeLoader) if text.strip() else None  # noqa: S506
        except yaml.YAMLError as error:
            raise ValueError(f'--force_yml {entry!r}: the value is not a YAML scalar or list ({error}).') from None
        if isinstance(value, str) and text.strip().lower() == 'none':  # basicsr's spelling of null
            value = None
        section = opt
        for depth, key in enumerate(path[:-1]):
            if not isinstance(section.get(key), dict):
                raise ValueError(f'--force_yml {entry!r}: {":".join(path[:depth + 1])} is not a section of the options.')
            section = section[key]
        section[path[-1]] = value


class OptionError(ValueError):
    """An option that cannot work, named with its file and key path."""


def _refuse_unknown(section, known, where, opt_path):
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f' (did you mean {close[0]}?)' if close else f'; known: {", ".join(map(str, known))}'
            raise OptionError(f'{opt_path}: unknown option {where}{key}{hint}')


def _keywords(factory, skip):
    """The keyword names ``factory`` takes, or None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in skip and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _check_typed_section(section, registry_get, where, opt_path, skip=()):
    """A section with a ``type``: refuse a type the registry lacks and keywords its constructor does not take."""
    if not isinstance(section, dict) or 'type' not in section:
        raise OptionError(f'{opt_path}: {where} needs a type.')
    try:
        factory = registry_get(section['type'])
    except KeyError:
        raise OptionError(f'{opt_path}: {where}type={section["type"]!r} is not registered.') from None
    known = _keywords(factory, ('self', ) + tuple(skip))
    if known is not None:
        _refuse_unknown(section, ['type'] + known, f'{where}', opt_path)


def _number(opt, keys, kind, minimum, opt_path):
    """Read ``opt[keys...]`` as a number of ``kind`` >= ``minimum`` (a numeric string is converted)."""
    parents = [opt]
    for key in keys[:-1]:
        parents = [v for p in parents for k, v in (p.items() if isinstance(p, dict) else ())
                   if (key == '*' or k == key) and isinstance(v, dict)]
    for parent in parents:
        if keys[-1] not in parent or parent[keys[-1]] is None:
            continue
        value = parent[keys[-1]]
        name = ':'.join(keys).replace('*', '<set>')
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise OptionError(f'{opt_path}: {name}={parent[keys[-1]]!r} must be a number.') from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise OptionError(f'{opt_path}: {name}={parent[keys[-1]]!r} must be {"an integer" if kind is int else "a number"}.')
        if value < minimum:
            raise OptionError(f'{opt_path}: {name}={value!r} must be at least {minimum}.')
        parent[keys[-1]] = kind(value)


def check_options(opt, opt_path, is_train):
    """Check an option file against basicsr's vocabulary and ranges, before any work.

    Every key is one basicsr or this package reads (``network_g``, the
    optimizer, the scheduler, the losses and the metrics: the keywords their
    ``type`` takes), numbers written as strings are read as numbers, sizes and
    frequencies are positive, ``gt_size`` is a multiple of ``scale`` and the
    network's ``upscale`` equals ``scale``. Numbers are converted in place.

    Args:
        opt (dict): The options.
        opt_path (str): The option file, named in the errors.
        is_train (bool): Training (``train``, ``datasets:train`` required) or testing.

    Raises:
        OptionError: Naming the file, the key and, for a misspelt key, the closest known one.
    """
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    from basicsr.models import lr_scheduler

    _refuse_unknown(opt, TOP_KEYS, '', opt_path)
    for key in ('name', 'model_type', 'scale', 'num_gpu', 'datasets', 'network_g', 'path') + (
            ('train', 'logger') if is_train else ('val', )):
        if key not in opt:
            raise OptionError(f'{opt_path}: option {key} is missing.')
    for key in ('datasets', 'network_g', 'path', 'train', 'val', 'logger', 'dist_params'):
        if key in opt and not isinstance(opt[key], dict) and not (key in ('val', 'dist_params') and opt[key] is None):
            raise OptionError(f'{opt_path}: option {key} must be a section of key: value lines, not {opt[key]!r}.')
    for phase, dataset in opt['datasets'].items():
        if not isinstance(dataset, dict):
            raise OptionError(f'{opt_path}: datasets:{phase} must be a section of key: value lines.')
    for key in ('use_amp', 'amp_bf16', 'use_channels_last'):
        if key in opt and not isinstance(opt[key], bool):
            raise OptionError(f'{opt_path}: {key}={opt[key]!r} must be true or false.')
    if opt['model_type'] not in MODEL_REGISTRY:
        raise OptionError(f'{opt_path}: model_type={opt["model_type"]!r} is not registered.')
    for keys, (kind, minimum) in NUMBERS.items():
        _number(opt, keys, kind, minimum, opt_path)
    if is_train and 'train' not in opt['datasets']:
        raise OptionError(f'{opt_path}: datasets has no train set.')
    for phase, dataset in opt['datasets'].items():
        if phase != 'train' and phase.split('_')[0] not in ('val', 'test'):
            raise OptionError(f'{opt_path}: datasets:{phase} must be train, val, val_<n> or test_<n>.')
        _refuse_unknown(dataset, DATASET_KEYS, f'datasets:{phase}:', opt_path)
        if dataset.get('type') not in DATASET_REGISTRY:
            raise OptionError(f'{opt_path}: datasets:{phase}:type={dataset.get("type")!r} is not registered.')
        if phase == 'train' and dataset.get('gt_size') and dataset['gt_size'] % opt['scale']:
            raise OptionError(f'{opt_path}: datasets:train:gt_size={dataset["gt_size"]} is not a multiple of '
                              f'scale={opt["scale"]}.')
    _check_typed_section(opt['network_g'], ARCH_REGISTRY.get, 'network_g:', opt_path)
    upscale = opt['network_g'].get('upscale')
    if upscale is not None and upscale != opt['scale']:
        raise OptionError(f'{opt_path}: network_g:upscale={upscale} differs from scale={opt["scale"]}.')
    known_paths = [k for k in opt['path'] if k.startswith(('pretrain_network_', 'strict_load_', 'param_key_'))]
    _refuse_unknown(opt['path'], PATH_KEYS + tuple(known_paths), 'path:', opt_path)
    if is_train:
        train = opt['train']
        _refuse_unknown(train, TRAIN_KEYS, 'train:', opt_path)
        _check_typed_section(train.get('optim_g'), OPTIMIZERS.__getitem__, 'train:optim_g:', opt_path, ('params', ))
        _check_typed_section(train.get('scheduler'), lambda t: {
            'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
            'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}[t], 'train:scheduler:', opt_path,
                             ('optimizer', 'last_epoch'))
        for loss in ('pixel_opt', 'perceptual_opt'):
            if train.get(loss) is not None:
                _check_typed_section(train[loss], LOSS_REGISTRY.get, f'train:{loss}:', opt_path)
        if not 0 <= train.get('ema_decay', 0) < 1:
            raise OptionError(f'{opt_path}: train:ema_decay={train["ema_decay"]} must be in [0, 1).')
        _refuse_unknown(opt['logger'], LOGGER_KEYS, 'logger:', opt_path)
        _refuse_unknown(opt['logger'].get('wandb') or {}, WANDB_KEYS, 'logger:wandb:', opt_path)
        for key in ('print_freq', 'save_checkpoint_freq'):
            if key not in opt['logger']:
                raise OptionError(f'{opt_path}: option logger:{key} is missing.')
    if opt.get('val') is not None:
        _refuse_unknown(opt['val'], VAL_KEYS, 'val:', opt_path)
        if is_train and 'val_freq' not in opt['val']:
            raise OptionError(f'{opt_path}: option val:val_freq is missing (or remove val to train without it).')
        for name, metric in (opt['val'].get('metrics') or {}).items():
            _check_typed_section(metric, METRIC_REGISTRY.get, f'val:metrics:{name}:', opt_path, ('img', 'img2'))
    _refuse_unknown(opt.get('dist_params') or {}, DIST_PARAMS, 'dist_params:', opt_path)


def check_name(name, opt_path):
    """Refuse an experiment name that is not a plain directory name, before anything on disk moves.

    basicsr archives whatever ``experiments/<name>`` or ``results/<name>`` points
    at; a name with a separator, ``..`` or an absolute path would point outside.

    Args:
        name: The ``name`` option.
        opt_path (str): The option file, named in the error.

    Raises:
        ValueError: Naming the file and the name.
    """
    if not isinstance(name, str) or name in ('', '.', '..') or any(c in name for c in '/\\\0') or osp.isabs(name):
        raise ValueError(f'{opt_path}: name={name!r} must be a plain directory name (not empty, no path separator, '
                         'not . or ..): it becomes experiments/<name> and results/<name>.')


def parse_options(root_path, is_train=True):
    """Parse the command line and option file of ``train.py`` / ``test.py``, start torch.distributed.

    Args:
        root_path (str): Where ``experiments/`` (training) or ``results/``
            (testing) go.
        is_train (bool): Training (True) or testing. Default: True.

    Returns:
        tuple[dict, argparse.Namespace]: The options, with basicsr's derived
        entries (``dist``, ``rank``, ``world_size``, dataset phases, paths), and
        the parsed arguments.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local-rank', '--local_rank', dest='local_rank', type=int, default=None,
                        help='set by python -m torch.distributed.launch; torchrun sets $LOCAL_RANK instead')
    parser.add_argument('--force_yml', nargs='+', default=None, help='e.g. train:ema_decay=0.999')
    args = parser.parse_args()

    opt = load_options(args.opt)
    apply_force_yml(opt, args.force_yml or [])
    check_name(opt.get('name'), args.opt)
    check_options(opt, args.opt, is_train)

    local_rank = local_rank_from_env(args.launcher, args.local_rank)
    uses_gpu = check_launch(opt, args.launcher, local_rank, args.opt)
    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
        dist_params = dict(opt.get('dist_params') or {})
        if dist_params.get('backend') in (None, 'auto'):
            dist_params['backend'] = 'nccl' if uses_gpu else 'gloo'
        init_dist(args.launcher, local_rank, **dist_params)
    else:
        print('Disable distributed.', flush=True)
    opt['rank'], opt['world_size'] = get_dist_info()

    seed = opt.get('manual_seed')
    if seed is None:
        seed = opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(seed + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    derive_options(opt, root_path, is_train)
    return opt, args


def derive_options(opt, root_path, is_train):
    """Add basicsr's derived entries to checked options, in place: phases, scales, paths, ``num_gpu: auto``.

    Args:
        opt (dict): Options that passed :func:`check_options`.
        root_path (str): Where ``experiments/`` (training) or ``results/``
            (testing) go.
        is_train (bool): Training or testing.
    """
    opt['is_train'] = is_train
    if opt['num_gpu'] == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]  # val_1, val_2, test_1, ...
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])
    for key, value in opt['path'].items():
        if value is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = osp.expanduser(value)

    if is_train:
        experiments_root = osp.join(root_path, 'experiments', opt['name'])
        opt['path'].update(experiments_root=experiments_root, models=osp.join(experiments_root, 'models'),
                           training_states=osp.join(experiments_root, 'training_states'), log=experiments_root,
                           visualization=osp.join(experiments_root, 'visualization'))
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = osp.join(root_path, 'results', opt['name'])
        opt['path'].update(results_root=results_root, log=results_root,
                           visualization=osp.join(results_root, 'visualization'))
