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
import random
from os import path as osp

import torch
import yaml

from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info

from .utils.dist import check_launch, init_dist, local_rank_from_env


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
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
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
    return opt, args
