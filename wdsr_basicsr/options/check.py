"""The check of an option file before any work: every key against the vocabulary, values, names."""
from __future__ import annotations

import inspect
import math
from os import path as osp

import torch
import torchvision

from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from ..data.paired_dataset import CheckedPairedImageDataset, cache_options_fault
from ..utils.dist import DIST_PARAMS
from .reading import OptionError
from .vocabulary import (Vocabulary, built_types, check_signature, optimizer_class, refuse_unknown,
                         require_registered, scheduler_class)


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
#: Of those, the ones whose null means something (a random seed, torch's default timeout); any other is refused.
NULLABLE = (('manual_seed', ), ('dist_params', 'timeout_min'))
#: Switches basicsr tests for truth: a string such as "no" would be true. Null is allowed (false).
BOOLEANS = (('datasets', '*', 'use_hflip'), ('datasets', '*', 'use_rot'), ('datasets', '*', 'pin_memory'),
            ('datasets', '*', 'persistent_workers'), ('val', 'save_img'), ('val', 'pbar'), ('val', 'self_ensemble'),
            ('logger', 'use_tb_logger'), ('find_unused_parameters', ), ('use_compile', ),
            ('datasets', '*', 'cache_data'))


def _parents(opt, keys):
    """The sections (with their key paths) that ``keys[:-1]`` names, ``*`` matching every key."""
    parents = [((), opt)]
    for key in keys[:-1]:
        parents = [(where + (k, ), v) for where, p in parents for k, v in (p.items() if isinstance(p, dict) else ())
                   if (key == '*' or k == key) and isinstance(v, dict)]
    return parents


def _number(opt, keys, kind, minimum, opt_path):
    """Read ``opt[keys...]`` as a finite number of ``kind`` >= ``minimum`` (a numeric string is converted).

    Null is refused, but for :data:`NULLABLE` keys.
    """
    for where, parent in _parents(opt, keys):
        if keys[-1] not in parent:
            continue
        value = parent[keys[-1]]
        name = ':'.join(where + keys[-1:])
        kind_name = 'an integer' if kind is int else 'a number'
        if value is None:
            if keys in NULLABLE:
                continue
            raise OptionError(f'{opt_path}: {name} is null; it must be {kind_name}.')
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise OptionError(f'{opt_path}: {name}={parent[keys[-1]]!r} must be {kind_name}.') from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f'{opt_path}: {name}={parent[keys[-1]]!r} must be {kind_name}.')
        if not math.isfinite(value) or (kind is int and value != int(value)):
            raise OptionError(f'{opt_path}: {name}={parent[keys[-1]]!r} must be {kind_name}.')
        if value < minimum:
            raise OptionError(f'{opt_path}: {name}={value!r} must be at least {minimum}.')
        parent[keys[-1]] = kind(value)


def _check_values(value, where, opt_path):
    """Refuse a NaN or infinite number anywhere in the options (no option of basicsr means one)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_values(item, f'{where}{key}:', opt_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f'{where[:-1]}[{index}]:', opt_path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f'{opt_path}: {where[:-1]}={value!r} must be a finite number.')


def _boolean(opt, keys, opt_path):
    """Refuse a switch of :data:`BOOLEANS` that is neither true, false nor null."""
    for where, parent in _parents(opt, keys):
        value = parent.get(keys[-1])
        if value is not None and not isinstance(value, bool):
            raise OptionError(f'{opt_path}: {":".join(where + keys[-1:])}={value!r} must be true or false '
                              '(unquoted).')



def _section(opt, key, opt_path, allow_none=False):
    value = opt.get(key)
    if value is None and allow_none:
        return {}
    if not isinstance(value, dict):
        raise OptionError(f'{opt_path}: option {key} must be a section of key: value lines, not {value!r}.')
    return value


def check_options(opt: dict, opt_path: str, is_train: bool) -> list[str]:
    """Check an option file before any work: types registered, keys that something reads, numbers and ranges.

    The vocabulary is read off what the file names: the keywords of its
    network, loss and metric types (their signatures), the optimizers and
    schedulers its model builds (``get_optimizer``, ``setup_schedulers``), and
    the option keys that its model and dataset classes (with their bases) and
    basicsr's pipeline read. So a class registered by any plugin brings its
    keys along. A key that nothing reads and is close to one that something
    reads is refused with the closest one; any other key nothing reads is
    returned as a warning. Numbers written as strings are read as numbers
    (in place); sizes and frequencies are positive, ``gt_size`` is a multiple
    of ``scale`` and a network's ``upscale`` equals ``scale``.

    Args:
        opt (dict): The options.
        opt_path (str): The option file, named in the errors.
        is_train (bool): Training (``train``, ``logger``, ``datasets:train`` required) or testing (``val``).

    Returns:
        list[str]: Warnings, one per key that nothing registered reads.

    Raises:
        OptionError: Naming the file, the key and, for a misspelt key or type, the closest known one.
    """
    for key in ('name', 'model_type', 'num_gpu', 'datasets', 'path') + (('train', 'logger') if is_train else ()):
        if key not in opt:
            raise OptionError(f'{opt_path}: option {key} is missing.')
    if not is_train and not isinstance((opt.get('val') or {}).get('save_img'), bool):
        raise OptionError(f'{opt_path}: option val:save_img (true or false) is missing: basicsr\'s test pipeline '
                          'reads it (a top-level save_img or suffix is not read; they go under val).')
    datasets, paths = _section(opt, 'datasets', opt_path), _section(opt, 'path', opt_path)
    train, val = _section(opt, 'train', opt_path, not is_train), _section(opt, 'val', opt_path, True)
    logger, dist_params = _section(opt, 'logger', opt_path, not is_train), _section(opt, 'dist_params', opt_path, True)
    for key in ('use_amp', 'amp_bf16', 'use_channels_last'):
        if key in opt and not isinstance(opt[key], bool):
            raise OptionError(f'{opt_path}: {key}={opt[key]!r} must be true or false.')
    model = require_registered(MODEL_REGISTRY, opt['model_type'], 'model_', 'model', opt_path)
    dataset_classes = []
    for phase, dataset in datasets.items():
        if not isinstance(dataset, dict):
            raise OptionError(f'{opt_path}: datasets:{phase} must be a section of key: value lines.')
        if phase != 'train' and phase.split('_')[0] not in ('val', 'test'):
            raise OptionError(f'{opt_path}: datasets:{phase} must be train, val, val_<n> or test_<n>.')
        dataset_classes.append(require_registered(DATASET_REGISTRY, dataset.get('type'), f'datasets:{phase}:',
                                                   'dataset', opt_path))
    if is_train and 'train' not in datasets:
        raise OptionError(f'{opt_path}: datasets has no train set.')
    _check_values(opt, '', opt_path)
    for keys, (kind, minimum) in NUMBERS.items():
        _number(opt, keys, kind, minimum, opt_path)
    for keys in BOOLEANS + tuple(('path', key) for key in paths if str(key).startswith('strict_load_')):
        _boolean(opt, keys, opt_path)
    if is_train:
        for section, key in (('train', 'total_iter'), ('datasets:train', 'batch_size_per_gpu'),
                             ('datasets:train', 'num_worker_per_gpu')):
            if key not in (train if section == 'train' else datasets['train']):
                raise OptionError(f'{opt_path}: option {section}:{key} is missing.')

    vocabulary = Vocabulary([model] + dataset_classes)
    warnings = []
    networks = [key for key, value in opt.items() if key.startswith('network_') and isinstance(value, dict)]
    vocabulary.check(opt, '', opt_path, warnings)
    for key in networks:
        network = opt[key]
        arch = require_registered(ARCH_REGISTRY, network.get('type'), f'{key}:', 'architecture', opt_path)
        check_signature(network, arch, f'{key}:', opt_path)
    upscale = opt.get('network_g', {}).get('upscale')
    if upscale is not None and 'scale' in opt and upscale != opt['scale']:
        raise OptionError(f'{opt_path}: network_g:upscale={upscale} differs from scale={opt["scale"]}.')
    for (phase, dataset), dataset_class in zip(datasets.items(), dataset_classes):
        vocabulary.check(dataset, f'datasets:{phase}:', opt_path, warnings, skip=('io_backend', ))
        if 'name' in dataset and not is_plain_name(dataset['name']):
            raise OptionError(f'{opt_path}: datasets:{phase}:name={dataset["name"]!r} must be a plain name (no path '
                              'separator, not . or ..): results go to visualization/<name>/ and '
                              'metrics_<name>.json.')
        fault = cache_options_fault(dataset) if isinstance(dataset_class, type) and issubclass(
            dataset_class, CheckedPairedImageDataset) else None
        if fault:
            raise OptionError(f'{opt_path}: datasets:{phase}: {fault}')
        if phase == 'train' and dataset.get('gt_size') and opt.get('scale') and dataset['gt_size'] % opt['scale']:
            raise OptionError(f'{opt_path}: datasets:train:gt_size={dataset["gt_size"]} is not a multiple of '
                              f'scale={opt["scale"]}.')
    vocabulary.check(paths, 'path:', opt_path, warnings)
    if is_train:
        _check_train(train, model, vocabulary, opt_path, warnings)
        vocabulary.check(logger, 'logger:', opt_path, warnings)
        if isinstance(logger.get('wandb'), dict):
            vocabulary.check(logger['wandb'], 'logger:wandb:', opt_path, warnings)
        for key in ('print_freq', 'save_checkpoint_freq'):
            if key not in logger:
                raise OptionError(f'{opt_path}: option logger:{key} is missing.')
    if val:
        vocabulary.check(val, 'val:', opt_path, warnings, skip=('metrics', ))
        if is_train and 'val_freq' not in val:
            raise OptionError(f'{opt_path}: option val:val_freq is missing (or remove val to train without it).')
        for name, metric in (val.get('metrics') or {}).items():
            where = f'val:metrics:{name}:'
            if not isinstance(metric, dict):
                raise OptionError(f'{opt_path}: {where[:-1]} must be a section with a type.')
            function = require_registered(METRIC_REGISTRY, metric.get('type'), where, 'metric', opt_path)
            check_signature(metric, function, where, opt_path, ('img', 'img2'))
    refuse_unknown(dist_params, DIST_PARAMS, 'dist_params:', opt_path)
    return warnings


def _check_train(train, model, vocabulary, opt_path, warnings):
    """``train``: its keys, the optimizers and scheduler the model builds, the losses; ``ema_decay`` in [0, 1)."""
    typed = [key for key, value in train.items() if isinstance(value, dict) and 'type' in value]
    vocabulary.check(train, 'train:', opt_path, warnings, skip=typed)
    optimizers = built_types(model, 'get_optimizer', optimizer_class)
    schedulers = built_types(model, 'setup_schedulers', scheduler_class)
    for key in typed:
        section, where = train[key], f'train:{key}:'
        if key.startswith('optim_'):
            _check_built(section, optimizers, optimizer_class, model, 'get_optimizer', where=where, opt_path=opt_path,
                         warnings=warnings, skip=('params', ))
        elif key == 'scheduler':
            _check_built(section, schedulers, scheduler_class, model, 'setup_schedulers', where=where,
                         opt_path=opt_path, warnings=warnings, skip=('optimizer', 'last_epoch'))
        else:
            loss = require_registered(LOSS_REGISTRY, section['type'], where, 'loss', opt_path)
            check_signature(section, loss, where, opt_path)
            if inspect.isclass(loss) and issubclass(loss, PerceptualLoss):
                _check_vgg_weights(section, where, opt_path)
    if not 0 <= train.get('ema_decay', 0) < 1:
        raise OptionError(f'{opt_path}: train:ema_decay={train["ema_decay"]} must be in [0, 1).')


def _check_vgg_weights(section, where, opt_path):
    """Refuse a perceptual loss whose VGG weights are not on disk (torchvision would download them mid-start).

    basicsr's ``VGGFeatureExtractor`` loads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (under the
    current directory) when it exists, else asks torchvision for the ImageNet weights, which come from torch
    hub's cache or are downloaded.
    """
    vgg_type = section.get('vgg_type', 'vgg19')
    weights = getattr(torchvision.models, f'{str(vgg_type).upper()}_Weights', None)
    url = weights.IMAGENET1K_V1.url if weights is not None else f'<the ImageNet weights of torchvision\'s {vgg_type}>'
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))
    if not osp.isfile(VGG_PRETRAIN_PATH) and not osp.isfile(cached):
        raise OptionError(f'{opt_path}: {where[:-1]} needs the VGG weights, and they are not on disk (nothing is '
                          f'downloaded at start): put {osp.basename(url)} from {url} at {osp.abspath(VGG_PRETRAIN_PATH)} '
                          f'or {cached}, or remove {where[:-1]}.')


def _check_built(section, built, fallback, model, method, *, where, opt_path, warnings, skip):
    """An optimizer or scheduler section: a type that ``model.<method>`` builds, with its keywords."""
    name = section['type']
    if built is None:  # the method's branches could not be read: judge by the class of that name, if any
        factory = fallback(name) if isinstance(name, str) else None
        if factory is None:
            warnings.append(f'{opt_path}: {where}type={name!r}: cannot tell whether {model.__name__}.{method} '
                            'builds it.')
            return
    elif name not in built:
        raise OptionError(f'{opt_path}: {where}type={name!r} is not built by {model.__name__}.{method} '
                          f'(it builds {", ".join(sorted(built))}).')
    else:
        factory = built[name]
    if factory is not None:
        check_signature(section, factory, where, opt_path, skip)


def is_plain_name(name: object) -> bool:
    """Whether ``name`` can be one file or folder name: a non-empty string, no separator, not ``.`` or ``..``."""
    return isinstance(name, str) and name not in ('', '.', '..') and not any(c in name for c in '/\\\0')


def check_name(name: object, opt_path: str) -> None:
    """Refuse an experiment name that is not a plain directory name, before anything on disk moves.

    basicsr archives whatever ``experiments/<name>`` or ``results/<name>`` points
    at; a name with a separator, ``..`` or an absolute path would point outside.

    Args:
        name: The ``name`` option.
        opt_path (str): The option file, named in the error.

    Raises:
        ValueError: Naming the file and the name.
    """
    if not is_plain_name(name):
        raise ValueError(f'{opt_path}: name={name!r} must be a plain directory name (not empty, no path separator, '
                         'not . or ..): it becomes experiments/<name> and results/<name>.')


