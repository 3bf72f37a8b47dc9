"""The option loader of every training and test entry: ours, basicsr's own, a sibling plugin's.

It replaces basicsr's ``parse_options`` (:mod:`wdsr_basicsr.compat` points
basicsr's pipelines and ``basicsr.utils.options`` at :func:`parse_options`)
and keeps the rest of basicsr's parsing, with these differences:

* YAML is read with a safe loader: mappings and ``!!float`` as in basicsr, but
  a ``!!python/...`` tag is refused with the file, line and tag, never run.
* ``--force_yml key:sub=value`` walks the keys as plain dictionary keys and
  reads the value as a YAML scalar or list; nothing is evaluated.
* ``--local-rank`` (what ``python -m torch.distributed.launch`` passes) and
  ``--local_rank`` are both accepted.
* The distributed start takes ``dist_params`` (``backend``, ``port``,
  ``timeout_min``) for every launcher, after :func:`~wdsr_basicsr.utils.dist.check_launch`
  has refused launcher and device combinations that cannot work.
* Before any work, :func:`check_options` judges every key against what the
  file's registered classes and basicsr's pipeline read (so another plugin's
  files keep meaning what they meant), and refuses only what cannot work.
* A run rooted at an installed site directory (``python -m basicsr.train``)
  writes under the current directory instead (:func:`derive_options`).
"""
import argparse
import ast
import difflib
import functools
import importlib
import inspect
import math
import os
import random
import site
import sys
import sysconfig
import textwrap
from os import path as osp

import torch
import torchvision
import yaml

from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.models import lr_scheduler
from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from .utils.dist import DIST_PARAMS, check_launch, init_dist, local_rank_from_env

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
            ('logger', 'use_tb_logger'), ('find_unused_parameters', ))


class DuplicateKeyError(yaml.YAMLError):
    """A key written twice in one mapping of an option file."""


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key written twice in one mapping (YAML would keep the last silently).

    basicsr's ``!!float`` is a standard tag and works; merge keys (``<<: *base``)
    may be overridden, as YAML means them to be.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            lines = {}
            for key_node, _ in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in lines:
                    raise DuplicateKeyError(f'line {line}: key {key!r} is written twice in one section (lines '
                                            f'{lines[key]} and {line}); YAML would keep the second silently.')
                lines.setdefault(key, line)
        return super().construct_mapping(node, deep)


def load_options(path):
    """Read an option file with a safe YAML loader.

    Args:
        path (str): The YAML file.

    Returns:
        dict: The options.

    Raises:
        ValueError: If the file uses a tag the safe loader does not construct
            (``!!python/object/apply`` and the like), naming the file, line and
            tag, if a key is written twice in one section (both lines), if it
            is not YAML, or if its top level is not a mapping.
    """
    with open(path, encoding='utf-8') as f:
        try:
            opt = yaml.load(f, Loader=_SafeLoader)  # noqa: S506  (a SafeLoader subclass)
        except yaml.constructor.ConstructorError as error:
            mark = error.problem_mark
            raise ValueError(f'{path}, line {mark.line + 1}: {error.problem}; option files may hold plain values '
                             'only, nothing is executed.') from None
        except DuplicateKeyError as error:
            raise ValueError(f'{path}, {error}') from None
        except yaml.YAMLError as error:
            raise ValueError(f'{path} is not valid YAML: {" ".join(str(error).split())}') from None
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


# ---------------------------------------------------------------- the vocabulary, read off the registered classes

#: basicsr's pipeline (train.py, test.py, data loaders, loggers, resume checks) and this package's start-up:
#: the option keys these modules read are known in every option file, beside those of the model and dataset
#: classes (and their bases) that the file names.
PIPELINE_MODULES = ('basicsr.train', 'basicsr.test', 'basicsr.data', 'basicsr.data.prefetch_dataloader',
                    'basicsr.utils.logger', 'basicsr.utils.misc', 'basicsr.utils.options', __name__,
                    'wdsr_basicsr.utils.dist')
_NOT_SCANNED = ('builtins', 'abc', 'typing', 'torch')


def edit_distance(a, b):
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    previous, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        before, previous, row = previous, row, [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[-1]


def misspelt(key, known):
    """The known key that ``key`` is a typo of (1 edit away, 2 for keys longer than 6), or None."""
    key = str(key)
    best = min(((edit_distance(key, str(k)), str(k)) for k in known), default=None)
    return best[1] if best and best[0] <= (1 if len(key) <= 6 else 2) else None


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.lru_cache(maxsize=None)
def _module_tree(module_name):
    """The parsed source of a loaded module, or None when it has none (compiled, generated)."""
    try:
        return ast.parse(inspect.getsource(importlib.import_module(module_name)))
    except (OSError, TypeError, SyntaxError):
        return None


@functools.lru_cache(maxsize=None)
def keys_read(module_name):
    """The option keys a module reads: ``x['key']``, ``x.get('key')`` / ``pop`` / ``setdefault``, ``'key' in x``.

    Args:
        module_name (str): A module (with its source on disk).

    Returns:
        frozenset[str] | None: The keys, or None when the module's source cannot be read.
    """
    tree = _module_tree(module_name)
    if tree is None:
        return None
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            key = _string(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            key = _string(node.args[0]) if node.func.attr in ('get', 'pop', 'setdefault') else None
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key = _string(node.left)
        else:
            key = None
        if key is not None:
            keys.add(key)
    return frozenset(keys)


def _modules_of(cls):
    """The modules that define ``cls`` and its bases (not Python's or torch's)."""
    return [klass.__module__ for klass in cls.__mro__ if klass.__module__.split('.')[0] not in _NOT_SCANNED]


def _registered(registry, name):
    """What ``registry`` builds for ``name`` (basicsr's ``get``: ``name``, else ``name_basicsr``), or None."""
    for key in (name, f'{name}_basicsr'):
        if isinstance(key, str) and key in registry:
            return registry.get(key)
    return None


def _require_registered(registry, name, where, kind, opt_path):
    """What ``registry`` holds for ``name``; an unregistered name is refused, naming the type and the registry."""
    found = _registered(registry, name)
    if found is None:
        close = misspelt(name, [key for key, _ in registry])
        hint = f'did you mean {close}? ' if close else ''
        raise OptionError(f'{opt_path}: {where}type={name!r} is not registered with basicsr: no {kind} of that name '
                          f'is registered ({hint}a class of another package is registered when that package is '
                          'installed and imported, e.g. by its own train.py).')
    return found


def _keywords(factory, skip):
    """The keyword names ``factory`` takes, or None when it takes ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in skip and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _refuse_unknown(section, known, where, opt_path, taker='it'):
    """Refuse every key of ``section`` not in ``known`` (a signature: certain), with the closest or the list."""
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f' (did you mean {close[0]}?)' if close else f'; {taker} takes {", ".join(map(str, known))}'
            raise OptionError(f'{opt_path}: unknown option {where}{key}{hint}')


def _check_signature(section, factory, where, opt_path, skip=()):
    """Refuse keywords (besides ``type``) that ``factory`` does not take (anything goes with ``**kwargs``), and a
    value that is not true or false for a keyword whose default is."""
    known = _keywords(factory, ('self', ) + tuple(skip))
    if known is not None:
        _refuse_unknown(section, ['type'] + known, where, opt_path, getattr(factory, '__name__', 'it'))
    try:
        defaults = {name: p.default for name, p in inspect.signature(factory).parameters.items()}
    except (TypeError, ValueError):
        return
    for key, value in section.items():
        if isinstance(defaults.get(key), bool) and not isinstance(value, bool):
            raise OptionError(f'{opt_path}: {where}{key}={value!r} must be true or false (unquoted).')


def _resolve(node, namespace):
    """The object a dotted name (``torch.optim.Adam``) stands for in ``namespace``, or None."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in namespace:
        return None
    obj = namespace[node.id]
    for name in reversed(names):
        obj = getattr(obj, name, None)
    return obj


def built_types(cls, method, fallback):
    """The types a model's ``get_optimizer`` / ``setup_schedulers`` builds, read from its ``if`` branches.

    A branch ``if x == 'A':`` or ``if x in ('A', 'B'):`` builds the first class
    called in its body (``torch.optim.Adam(...)``,
    ``lr_scheduler.MultiStepRestartLR(...)``), else ``fallback(name)``.
    Definitions along the MRO are merged, the most derived winning.

    Args:
        cls (type): The model class.
        method (str): The method's name.
        fallback (callable): ``name -> class or None`` for branches that call no class by name.

    Returns:
        dict[str, type | None] | None: Type name to class; None when no branch could be read.
    """
    found = {}
    for klass in reversed(cls.__mro__):
        func = klass.__dict__.get(method)
        if func is None:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.ops[0], (ast.Eq, ast.In))):
                continue
            right = node.test.comparators[0]
            names = [_string(e) for e in right.elts] if isinstance(right, (ast.List, ast.Tuple, ast.Set)) else [
                _string(right)]
            if not names or None in names:
                continue
            called = (_resolve(call.func, func.__globals__) for stmt in node.body for call in ast.walk(stmt)
                      if isinstance(call, ast.Call))
            factory = next((obj for obj in called if inspect.isclass(obj)), None)
            found.update((name, factory or fallback(name)) for name in names)
    return found or None


def _optimizer(name):
    return getattr(torch.optim, name, None)


def _scheduler(name):
    return getattr(lr_scheduler, name, None) or getattr(torch.optim.lr_scheduler, name, None)


def _keys_of(modules):
    """The keys the ``modules`` read, and whether every one of them could be read."""
    read = [keys_read(m) for m in dict.fromkeys(modules)]
    return frozenset().union(*(r for r in read if r is not None)), None not in read


def _registered_modules():
    """The modules of every registered model and dataset class (and their bases)."""
    return [m for registry in (MODEL_REGISTRY, DATASET_REGISTRY) for _, obj in registry if inspect.isclass(obj)
            for m in _modules_of(obj)]


class _Vocabulary:
    """The keys that an option file's classes and basicsr's pipeline read, and how an unknown key is judged.

    A key that the file's model or dataset classes (or the pipeline) read is
    known. One that only another registered class reads has no effect here: a
    warning. One that nothing reads and is a typo of a known key is refused;
    any other is a warning, and so is everything when some source could not be
    read (a class without source cannot be judged).
    """

    def __init__(self, classes):
        self.keys, self.judgeable = _keys_of(list(PIPELINE_MODULES) + [m for c in classes for m in _modules_of(c)])
        self.names = ', '.join(dict.fromkeys(c.__name__ for c in classes))
        self._elsewhere = None

    def check(self, section, where, opt_path, warnings, skip=()):
        """Judge every key of ``section`` (but ``skip``); refuse a typo, append a warning for a key without effect."""
        for key in section:
            if key in skip or key in self.keys:
                continue
            if self._elsewhere is None:
                self._elsewhere = _keys_of(_registered_modules())[0]
            close = misspelt(key, self.keys)
            if key not in self._elsewhere and close and self.judgeable:
                raise OptionError(f'{opt_path}: unknown option {where}{key} (did you mean {close}?)')
            others = ' (other registered classes do)' if key in self._elsewhere else ''
            warnings.append(f"{opt_path}: option {where}{key} has no effect: {self.names} and basicsr's pipeline do "
                            f'not read it{others}.')


# ---------------------------------------------------------------- the check


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


def check_options(opt, opt_path, is_train):
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
    model = _require_registered(MODEL_REGISTRY, opt['model_type'], 'model_', 'model', opt_path)
    dataset_classes = []
    for phase, dataset in datasets.items():
        if not isinstance(dataset, dict):
            raise OptionError(f'{opt_path}: datasets:{phase} must be a section of key: value lines.')
        if phase != 'train' and phase.split('_')[0] not in ('val', 'test'):
            raise OptionError(f'{opt_path}: datasets:{phase} must be train, val, val_<n> or test_<n>.')
        dataset_classes.append(_require_registered(DATASET_REGISTRY, dataset.get('type'), f'datasets:{phase}:',
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

    vocabulary = _Vocabulary([model] + dataset_classes)
    warnings = []
    networks = [key for key, value in opt.items() if key.startswith('network_') and isinstance(value, dict)]
    vocabulary.check(opt, '', opt_path, warnings)
    for key in networks:
        network = opt[key]
        arch = _require_registered(ARCH_REGISTRY, network.get('type'), f'{key}:', 'architecture', opt_path)
        _check_signature(network, arch, f'{key}:', opt_path)
    upscale = opt.get('network_g', {}).get('upscale')
    if upscale is not None and 'scale' in opt and upscale != opt['scale']:
        raise OptionError(f'{opt_path}: network_g:upscale={upscale} differs from scale={opt["scale"]}.')
    for phase, dataset in datasets.items():
        vocabulary.check(dataset, f'datasets:{phase}:', opt_path, warnings, skip=('io_backend', ))
        if 'name' in dataset and not is_plain_name(dataset['name']):
            raise OptionError(f'{opt_path}: datasets:{phase}:name={dataset["name"]!r} must be a plain name (no path '
                              'separator, not . or ..): results go to visualization/<name>/ and '
                              'metrics_<name>.json.')
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
            function = _require_registered(METRIC_REGISTRY, metric.get('type'), where, 'metric', opt_path)
            _check_signature(metric, function, where, opt_path, ('img', 'img2'))
    _refuse_unknown(dist_params, DIST_PARAMS, 'dist_params:', opt_path)
    return warnings


def _check_train(train, model, vocabulary, opt_path, warnings):
    """``train``: its keys, the optimizers and scheduler the model builds, the losses; ``ema_decay`` in [0, 1)."""
    typed = [key for key, value in train.items() if isinstance(value, dict) and 'type' in value]
    vocabulary.check(train, 'train:', opt_path, warnings, skip=typed)
    optimizers = built_types(model, 'get_optimizer', _optimizer)
    schedulers = built_types(model, 'setup_schedulers', _scheduler)
    for key in typed:
        section, where = train[key], f'train:{key}:'
        if key.startswith('optim_'):
            _check_built(section, optimizers, _optimizer, model, 'get_optimizer', where, opt_path, warnings, ('params', ))
        elif key == 'scheduler':
            _check_built(section, schedulers, _scheduler, model, 'setup_schedulers', where, opt_path, warnings,
                         ('optimizer', 'last_epoch'))
        else:
            loss = _require_registered(LOSS_REGISTRY, section['type'], where, 'loss', opt_path)
            _check_signature(section, loss, where, opt_path)
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


def _check_built(section, built, fallback, model, method, where, opt_path, warnings, skip):
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
        _check_signature(section, factory, where, opt_path, skip)


def is_plain_name(name):
    """Whether ``name`` can be one file or folder name: a non-empty string, no separator, not ``.`` or ``..``."""
    return isinstance(name, str) and name not in ('', '.', '..') and not any(c in name for c in '/\\\0')


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
    if not is_plain_name(name):
        raise ValueError(f'{opt_path}: name={name!r} must be a plain directory name (not empty, no path separator, '
                         'not . or ..): it becomes experiments/<name> and results/<name>.')


def parse_options(root_path, is_train=True):
    """Parse the command line and option file of ``train.py`` / ``test.py``, start torch.distributed.

    Args:
        root_path (str): Where ``experiments/`` (training) or ``results/``
            (testing) go, unless ``path: experiments_root`` / ``results_root``
            say otherwise (:func:`derive_options`). basicsr's own ``train.py``
            passes the parent of the basicsr package: when that is an installed
            site directory, the current directory is used instead.
        is_train (bool): Training (True) or testing. Default: True.

    Raises:
        OptionError: If the option file cannot be read, or an option or the
            launch cannot work, naming the file and key; nothing has started.

    Returns:
        tuple[Options, argparse.Namespace]: The options, with basicsr's derived
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

    local_rank = local_rank_from_env(args.launcher, args.local_rank)
    try:
        opt = Options(load_options(args.opt))
        apply_force_yml(opt, args.force_yml or [])
        check_name(opt.get('name'), args.opt)
        warnings = check_options(opt, args.opt, is_train)
        uses_gpu = check_launch(opt, args.launcher, local_rank, args.opt)
    except (ValueError, OSError) as error:  # the file, a key or the launch is at fault: before any work
        raise OptionError(str(error)) from error
    opt['dist'] = args.launcher != 'none'
    if opt['dist']:
        dist_params = dict(opt.get('dist_params') or {})
        if dist_params.get('backend') in (None, 'auto'):
            dist_params['backend'] = 'nccl' if uses_gpu else 'gloo'
        init_dist(args.launcher, local_rank, **dist_params)
    else:
        print('Disable distributed.', flush=True)
    opt['rank'], opt['world_size'] = get_dist_info()
    if opt['rank'] == 0:
        for warning in warnings:
            print(f'Warning: {warning}', file=sys.stderr, flush=True)

    seed = opt.get('manual_seed')
    if seed is None:
        seed = opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(seed + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    derive_options(opt, root_path, is_train)
    return opt, args


def is_site_directory(path):
    """Whether ``path`` is one of the interpreter's site-packages directories (where pip installs)."""
    sites = [sysconfig.get_paths()[key] for key in ('purelib', 'platlib')] + [site.getusersitepackages()]
    sites += getattr(site, 'getsitepackages', list)()  # absent in some old virtualenvs
    return osp.realpath(path) in {osp.realpath(p) for p in sites}


class Options(dict):
    """The options of a run: a dict whose ``root_path`` is never an installed site directory.

    basicsr's ``train_pipeline`` stores the root it was given after parsing
    (``opt['root_path'] = root_path``, then ``tb_logger/`` goes under it); run
    as ``python -m basicsr.train`` that root is site-packages. The root that
    :func:`derive_options` chose is kept instead.
    """

    def __setitem__(self, key, value):
        if key == 'root_path' and 'root_path' in self and is_site_directory(value):
            value = self['root_path']
        super().__setitem__(key, value)


def derive_options(opt, root_path, is_train):
    """Add basicsr's derived entries to checked options, in place: phases, scales, paths, ``num_gpu: auto``.

    Runs go to ``experiments/<name>`` (training) or ``results/<name>`` (testing)
    under ``path: experiments_root`` / ``results_root`` when the file gives
    them (as BasicSR's current main reads them), else under ``root_path``, or
    under the current directory when ``root_path`` is an installed site
    directory (basicsr's ``train.py`` run as ``python -m basicsr.train``).

    Args:
        opt (dict): Options that passed :func:`check_options`.
        root_path (str): The entry's root.
        is_train (bool): Training or testing.
    """
    if is_site_directory(root_path):
        root_path = os.getcwd()
    opt['root_path'] = root_path
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
        parent = opt['path'].get('experiments_root') or osp.join(root_path, 'experiments')
        experiments_root = osp.join(osp.expanduser(parent), opt['name'])
        opt['path'].update(experiments_root=experiments_root, models=osp.join(experiments_root, 'models'),
                           training_states=osp.join(experiments_root, 'training_states'), log=experiments_root,
                           visualization=osp.join(experiments_root, 'visualization'))
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        parent = opt['path'].get('results_root') or osp.join(root_path, 'results')
        results_root = osp.join(osp.expanduser(parent), opt['name'])
        opt['path'].update(results_root=results_root, log=results_root,
                           visualization=osp.join(results_root, 'visualization'))
