"""The check of an option file before any work: each key where it stands, each value by what it must be.

* Keys: a key of a section that the file's classes read elsewhere is refused with where it belongs; a typo of
  a key of its own section is refused with that key; a key that nothing reads is a warning
  (:class:`~.vocabulary.Vocabulary`). The keywords of what is built by ``type`` (networks, losses, metrics,
  optimizers, schedulers) are judged by the factory's signature.
* Values: the table of :mod:`.rules` for what basicsr's pipeline and this package read; the signatures'
  defaults and annotations for keywords; optimizers and schedulers are built once on a dummy parameter, so
  their own checks speak (``betas``, ``milestones``).
"""

from __future__ import annotations

import fnmatch
import inspect
from os import path as osp

import torch
import torchvision
from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
from basicsr.losses.basic_loss import PerceptualLoss
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from ..archs.aligned import check_alignable
from ..data.pair_sizes import patch_fault
from ..declare import inherited_rules, relations_fault
from ..utils.dist import DIST_PARAMS
from .errors import OptionError
from .rules import KEYED_SECTIONS, RULES
from .values import (
    check_finite,
    check_values,
    checked,
    declared_rules,
    matches,
    name,
    pattern_rule,
    section_at,
    sections,
    signature_rule,
    sized,
)
from .vocabulary import (
    ClassKeys,
    Vocabulary,
    misspelt,
    optimizer_class,
    parameters,
    require_registered,
    scheduler_class,
)

#: Options every file needs, and those a training file needs besides (basicsr reads them unguarded).
REQUIRED = ((), 'name'), ((), 'model_type'), ((), 'num_gpu'), ((), 'datasets'), ((), 'path')
REQUIRED_TO_TRAIN = (
    ((), 'train'),
    ((), 'logger'),
    (('train',), 'total_iter'),
    (('logger',), 'print_freq'),
    (('logger',), 'save_checkpoint_freq'),
    (('datasets', 'train'), 'batch_size_per_gpu'),
    (('datasets', 'train'), 'num_worker_per_gpu'),
)
#: The names a section of ``datasets`` may have (basicsr reads the phase before the first ``_``).
PHASES = ('train', 'val', 'test')


def check_options(opt: dict, opt_path: str, is_train: bool, left: list | None = None) -> list[str]:
    """Check an option file before any work: its sections, keys where they stand, values, registered types.

    Numbers are made the type their reader computes with (``6e5`` iterations: 600000), in place.

    Args:
        opt (dict): The options.
        opt_path (str): The option file, named in every message.
        is_train (bool): Training (``train``, ``logger``, ``datasets:train`` required) or testing (``val``).
        left (list | None): Where to add ``(section, key)`` for each key left to the run: in a section that a
            class reads which declares nothing, and not known to be read (:mod:`.observed` watches them).

    Returns:
        list[str]: Warnings: keys that nothing reads where they stand, weights that basicsr will download.

    Raises:
        OptionError: One line naming the file, the key with its section, and what it must be.
    """
    try:
        _require(opt, is_train)
        check_finite(opt, ())
        check_values(opt, [(section, key, rule) for (section, key), rule in RULES.items()])
        model, datasets = _registered_classes(opt)
        declared = declared_rules(model, datasets)
        check_values(opt, declared)
        vocabulary = Vocabulary(model, datasets)
        warnings = _check_keys(opt, vocabulary, declared, left if left is not None else [])
        warnings += _check_built(opt, model, vocabulary)
        _check_relations(opt, model, datasets)
    except OptionError as error:
        raise OptionError(f'{opt_path}: {error}') from None
    return [f'{opt_path}: {warning}' for warning in warnings]


def model_keys(opt: dict) -> set[str]:
    """The top-level keys that the model class of checked options (with its bases) is known to read."""
    model = require_registered(MODEL_REGISTRY, opt['model_type'], 'model_', 'model')
    return ClassKeys(model, 'model', ()).reads.get((), set())


def _require(opt, is_train):
    for section, key in REQUIRED + (REQUIRED_TO_TRAIN if is_train else ()):
        parent = section_at(opt, section)
        if parent is not None and key not in parent:
            _missing(parent, section, key, '')
    if is_train and isinstance(opt['datasets'], dict) and 'train' not in opt['datasets']:
        raise OptionError('datasets has no train set.')
    if is_train and isinstance(opt.get('val'), dict) and 'val_freq' not in opt['val']:
        _missing(opt['val'], ('val',), 'val_freq', ' (or remove val to train without it)')
    if not is_train and not isinstance((opt.get('val') or {}).get('save_img'), bool):
        raise OptionError(
            "option val:save_img (true or false) is missing: basicsr's test pipeline reads it (a "
            'top-level save_img or suffix is not read; they go under val).'
        )


def _missing(parent, section, key, hint):
    """Refuse a missing key: as a typo where a key of its section is one (``val_frq`` for ``val_freq``)."""
    typo = next((k for k in parent if misspelt(k, [key]) == key), None)
    if typo is not None:
        raise OptionError(f'unknown option {name(section + (typo,))} (did you mean {key}?)')
    raise OptionError(f'option {name(section + (key,))} is missing{hint}.')


def _registered_classes(opt):
    """The model class and the dataset class of each phase (registered names refused with the closest)."""
    model = require_registered(MODEL_REGISTRY, opt['model_type'], 'model_', 'model')
    datasets = {}
    for phase, dataset in opt['datasets'].items():
        if phase != 'train' and str(phase).split('_')[0] not in PHASES[1:]:
            raise OptionError(f'datasets:{phase} must be train, val, val_<n> or test_<n>.')
        datasets[phase] = require_registered(DATASET_REGISTRY, dataset.get('type'), f'datasets:{phase}:', 'dataset')
    return model, datasets


def _check_keys(opt, vocabulary, declared, left):
    """Judge every key of the sections that the file's classes read by key (:data:`.rules.KEYED_SECTIONS`)."""
    warnings = []
    rules = [(section, key, rule) for (section, key), rule in RULES.items()] + declared

    def fits(where, key, value, present):
        """Whether ``value`` could be that of ``key`` in ``where``: by its rule, else of the type of ``present``."""
        rule = next((r for s, k, r in rules if matches(where, s) and fnmatch.fnmatchcase(key, k)), None)
        if rule is None:
            return isinstance(value, dict) == isinstance(present, dict) and type(value) in (type(present), int, float)
        try:
            checked(value, sized(rule, {}, {}), where + (key,))  # reads the value, returns a converted copy
        except OptionError:
            return False
        return True

    for section in KEYED_SECTIONS:
        for where, parent in sections(opt, section):
            for key in parent:
                if str(key) not in vocabulary.known(where) and vocabulary.unknown(where):
                    left.append((where, str(key)))
                warning = vocabulary.judge(opt, where, str(key), KEYED_SECTIONS, fits)
                if warning:
                    warnings.append(warning)
    dist_params = opt.get('dist_params') or {}
    warnings += _check_keywords(dist_params, dict.fromkeys(DIST_PARAMS), False, ('dist_params',), 'it', typed=False)
    return warnings


def _check_keywords(section, named, takes_more, where, taker, extra=(), typed=True):
    """Refuse a keyword the factory does not take (a typo of one it takes: with it); returns warnings."""
    warnings = []
    for key in section:
        if (typed and key == 'type') or key in named or key in extra:
            continue
        close = misspelt(key, list(named))
        if close or not takes_more:
            hint = f' (did you mean {close}?)' if close else f'; {taker} takes {", ".join(["type"] * typed + [*named])}'
            raise OptionError(f'unknown option {name(where + (key,))}{hint}')
        warnings.append(
            f'option {name(where + (key,))}: {taker} does not name it (it takes **kwargs); check that it is read.'
        )
    return warnings


def _check_factory(section, factory, where, skip=(), extra=()):
    """Keywords and their values against ``factory``'s declared rules (``option_keys``), else its signature."""
    signature = parameters(factory, ('type',) + tuple(skip))
    if signature is None:
        return []
    named, takes_more = signature
    warnings = _check_keywords(section, named, takes_more, where, getattr(factory, '__name__', 'it'), extra)
    declared = inherited_rules(factory).get((), {}) if inspect.isclass(factory) else {}
    defaults = {k: p.default for k, p in named.items() if p.default is not inspect.Parameter.empty}
    for key, parameter in named.items():
        rule = declared.get(key) or signature_rule(parameter)
        if key in section and rule is not None and pattern_rule(where, key) is None:
            section[key] = checked(section[key], sized(rule, section, defaults), where + (key,))
    return warnings


def _check_built(opt, model, vocabulary):
    """What is built by type: networks, the losses, optimizers and scheduler of ``train``, the metrics."""
    warnings = []
    for key, network in opt.items():
        if str(key).startswith('network_') and isinstance(network, dict):
            arch = require_registered(ARCH_REGISTRY, network['type'], f'{key}:', 'architecture')
            warnings += _check_factory(network, arch, (key,))
    train = opt.get('train') or {}
    for key, section in train.items():
        if not (isinstance(section, dict) and fnmatch.fnmatchcase(key, '*_opt')):
            continue
        loss = require_registered(LOSS_REGISTRY, section['type'], f'train:{key}:', 'loss')
        warnings += _check_factory(section, loss, ('train', key))
        if inspect.isclass(loss) and issubclass(loss, PerceptualLoss):
            warnings += _vgg_weights(section, f'train:{key}')
    for key, section in train.items():
        if isinstance(section, dict) and (key == 'scheduler' or key.startswith('optim_')):
            warnings += _check_optimizer_or_scheduler(key, section, model, vocabulary)
    for key, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        function = require_registered(METRIC_REGISTRY, metric['type'], f'val:metrics:{key}:', 'metric')
        warnings += _check_factory(
            metric, function, ('val', 'metrics', key), ('img', 'img2'), vocabulary.known(('val', 'metrics', key))
        )
    return warnings


def _check_optimizer_or_scheduler(key, section, model, vocabulary):
    """A type that the model builds, with its keywords; then built once (torch's own checks of the values)."""
    method, fallback = (
        ('setup_schedulers', scheduler_class) if key == 'scheduler' else ('get_optimizer', optimizer_class)
    )
    built = vocabulary.model.builds(method, fallback)
    where = ('train', key)
    if built is not None and section['type'] not in built:
        raise OptionError(
            f'{name(where)}:type={section["type"]!r} is not built by {model.__name__}.{method} '
            f'(it builds {", ".join(sorted(built))}).'
        )
    factory = built[section['type']] if built is not None else fallback(section['type'])
    if factory is None:
        return [f'{name(where)}:type={section["type"]!r}: cannot tell whether {model.__name__}.{method} builds it.']
    warnings = _check_factory(section, factory, where, ('params', 'optimizer', 'last_epoch'))
    keywords = {k: v for k, v in section.items() if k != 'type'}
    parameter = torch.nn.Parameter(torch.zeros(1))
    try:
        if key == 'scheduler':
            factory(torch.optim.SGD([parameter], lr=1.0), **keywords)
        else:
            factory([parameter], **keywords)
    except (TypeError, ValueError, AssertionError, KeyError) as error:
        raise OptionError(f'{name(where)}: {factory.__name__} refuses these values: {error}') from None
    return warnings


def _vgg_weights(section, where):
    """A warning when a perceptual loss's VGG weights are not on disk: basicsr downloads them at start.

    basicsr's ``VGGFeatureExtractor`` loads ``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (under the
    current directory) when it exists, else asks torchvision for the ImageNet weights (torch hub's cache, or
    a download).
    """
    vgg_type = section.get('vgg_type', 'vgg19')
    weights = getattr(torchvision.models, f'{str(vgg_type).upper()}_Weights', None)
    url = weights.IMAGENET1K_V1.url if weights is not None else f"<the ImageNet weights of torchvision's {vgg_type}>"
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))
    if osp.isfile(VGG_PRETRAIN_PATH) or osp.isfile(cached):
        return []
    return [
        f'{where} needs the VGG weights and they are not on disk: basicsr will download {url} at start (offline, '
        f'put the file at {osp.abspath(VGG_PRETRAIN_PATH)} or {cached}).'
    ]


def _check_relations(opt, model, datasets):
    """What one value means for another: patch and scale, network and scale, dataset names, what a dataset class
    says of its own keys (:func:`~wdsr_basicsr.declare.relations_fault`), the network that ``align_channels``
    pads and the metric ``best_metric`` names (where the model reads them)."""
    scale = opt.get('scale')
    upscale = (opt.get('network_g') or {}).get('upscale')
    if upscale is not None and scale is not None and upscale != scale:
        raise OptionError(f'network_g:upscale={upscale} differs from scale={scale}.')
    reads_align = inspect.isclass(model) and 'align_channels' in inherited_rules(model).get((), {})
    if reads_align and opt.get('align_channels') and isinstance(opt.get('network_g'), dict):
        _check_alignable(opt['network_g'])
    reads_best = inspect.isclass(model) and 'best_metric' in inherited_rules(model).get(('val',), {})
    best = (opt.get('val') or {}).get('best_metric')
    metrics = (opt.get('val') or {}).get('metrics') or {}
    if reads_best and best is not None and best not in metrics:
        raise OptionError(
            f'val:best_metric={best!r} is not computed by the validation (val:metrics has {sorted(metrics)}).'
        )
    for phase, dataset in opt['datasets'].items():
        if 'name' in dataset and not is_plain_name(dataset['name']):
            raise OptionError(
                f'datasets:{phase}:name={dataset["name"]!r} must be a plain name (no path separator, '
                'not . or ..): results go to visualization/<name>/ and metrics_<name>.json.'
            )
        fault = (
            patch_fault(dataset['gt_size'], scale) if phase == 'train' and dataset.get('gt_size') and scale else None
        )
        fault = fault or relations_fault(datasets[phase], dataset)
        if fault:
            raise OptionError(f'datasets:{phase}: {fault}')


def _check_alignable(network: dict) -> None:
    """Refuse ``align_channels`` for a network it cannot pad (:func:`~..archs.aligned.check_alignable` of the
    network built without memory, on the meta device)."""
    arch = ARCH_REGISTRY.get(network['type'])
    try:
        with torch.device('meta'):
            check_alignable(arch(**{k: v for k, v in network.items() if k != 'type'}))
    except ValueError as error:
        raise OptionError(f'{error} (network_g:type={network["type"]}, norm={network.get("norm")!r}).') from None


def is_plain_name(value: object) -> bool:
    """Whether ``value`` can be one file or folder name: a non-empty string, no separator, not ``.`` or ``..``."""
    return isinstance(value, str) and value not in ('', '.', '..') and not any(c in value for c in '/\\\0')


def check_name(value: object, opt_path: str) -> None:
    """Refuse an experiment name that is not a plain directory name, before anything on disk moves.

    basicsr archives whatever ``experiments/<name>`` or ``results/<name>`` points
    at; a name with a separator, ``..`` or an absolute path would point outside.

    Args:
        value: The ``name`` option.
        opt_path (str): The option file, named in the error.

    Raises:
        ValueError: Naming the file and the name.
    """
    if not is_plain_name(value):
        raise ValueError(
            f'{opt_path}: name={value!r} must be a plain directory name (not empty, no path separator, '
            'not . or ..): it becomes experiments/<name> and results/<name>.'
        )
