"""basicsr's ``parse_options`` replaced: the command line, the checks, torch.distributed, derived paths."""

from __future__ import annotations

import argparse
import logging
import os
import random
import site
import sys
import sysconfig
from collections.abc import Callable
from os import path as osp

import torch
from basicsr.utils import set_random_seed
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import DATASET_REGISTRY

from ..declare import declared_hook, inherited_rules
from ..utils.checkpoint import CheckpointWriteError
from ..utils.dist import check_launch, init_dist, local_rank_from_env, run_reporting_rank
from ..utils.messages import show_messages
from ..utils.wandb_logger import wandb_fault
from .check import check_name, check_options, model_keys
from .errors import OptionError
from .observed import WatchedSection, watch
from .reading import apply_force_yml, load_options

logger = logging.getLogger(__name__)


def parse_options(
    root_path: str, is_train: bool = True, options_type: type[WatchedSection] = WatchedSection
) -> tuple[WatchedSection, argparse.Namespace]:
    """Parse the command line and option file of ``train.py`` / ``test.py``, start torch.distributed.

    Args:
        root_path (str): Where ``experiments/`` (training) or ``results/``
            (testing) go, unless ``path: experiments_root`` / ``results_root``
            say otherwise (:func:`derive_options`). basicsr's own ``train.py``
            passes the parent of the basicsr package: when that is an installed
            site directory, the current directory is used instead.
        is_train (bool): Training (True) or testing. Default: True.
        options_type (type[WatchedSection]): The mapping the options are returned in (reads of the keys left to
            the run are watched, :mod:`.observed`). Default: :class:`WatchedSection`.

    Raises:
        OptionError: If the option file cannot be read, or an option or the
            launch cannot work, naming the file and key; nothing has started.

    Returns:
        tuple[WatchedSection, argparse.Namespace]: The options, with basicsr's derived
        entries (``dist``, ``rank``, ``world_size``, dataset phases, paths), and
        the parsed arguments.
    """
    args = _arguments()
    local_rank = local_rank_from_env(args.launcher, args.local_rank)
    try:
        warnings: list[str] = []
        opt = options_type(load_options(args.opt, warnings))
        apply_force_yml(opt, args.force_yml or [])
        check_name(opt.get('name'), args.opt)
        left: list = []
        warnings += check_options(opt, args.opt, is_train, left)
        uses_gpu = check_launch(opt, args.launcher, local_rank, args.opt, model_keys=model_keys(opt))
    except (ValueError, OSError) as error:  # the file, a key or the launch is at fault: before any work
        raise OptionError(str(error)) from error
    watch(opt, left)  # from here on, what reads a key left to the run counts
    _start_distributed(opt, args.launcher, local_rank, uses_gpu)
    if opt['rank'] == 0:
        for warning in warnings:
            logger.warning(f'Warning: {warning}')

    seed = opt.get('manual_seed')
    if seed is None:
        seed = opt['manual_seed'] = random.randint(1, 10000)
    set_random_seed(seed + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    fault = wandb_fault(opt) if is_train else None
    if fault:
        raise OptionError(f'{args.opt}: {fault}')
    derive_options(opt, root_path, is_train)
    try:
        check_data(opt)
    except (ValueError, OSError, LookupError, MemoryError) as error:  # the data is at fault: before any work
        raise OptionError(str(error)) from error
    return opt, args


def in_process_options(opt: dict, opt_path: str, root_path: str, is_train: bool, num_gpu: int = 0) -> list[str]:
    """Make options runnable in this process, in place, as :func:`parse_options` makes them for one process.

    The one builder of a runnable ``opt`` besides the entries' (the benchmark's scoring, the tests' models):
    the name and every option checked, one process (``dist``, ``rank``, ``world_size``), basicsr's derived
    entries (:func:`derive_options`). No command line, no torch.distributed, no seed, no data check.

    Args:
        opt (dict): The options as read (:func:`~.reading.load_options`).
        opt_path (str): The option file, named in every message.
        root_path (str): As for :func:`derive_options`.
        is_train (bool): Training or testing.
        num_gpu (int): GPUs the model uses (0: the CPU). Default: 0.

    Returns:
        list[str]: The check's warnings.

    Raises:
        ValueError: As :func:`~.check.check_options` and :func:`~.check.check_name` do.
    """
    check_name(opt.get('name'), opt_path)
    warnings = check_options(opt, opt_path, is_train)
    opt.update(num_gpu=num_gpu, dist=False, rank=0, world_size=1, auto_resume=False)
    derive_options(opt, root_path, is_train)
    return warnings


def _start_distributed(opt: dict, launcher: str, local_rank: int, uses_gpu: bool) -> None:
    """torch.distributed for a launcher (``dist_params``; backend ``auto``: NCCL on GPUs, gloo on the CPU), then
    ``opt['dist']``, ``opt['rank']`` and ``opt['world_size']`` as basicsr reads them."""
    opt['dist'] = launcher != 'none'
    if opt['dist']:
        dist_params = dict(opt.get('dist_params') or {})
        if dist_params.get('backend') in (None, 'auto'):
            dist_params['backend'] = 'nccl' if uses_gpu else 'gloo'
        init_dist(launcher, local_rank, **dist_params)
    else:
        logger.info('Disable distributed.')
    opt['rank'], opt['world_size'] = get_dist_info()


def check_data(opt: dict) -> None:
    """Check each dataset whose class declares how (``check_data``, :mod:`wdsr_basicsr.declare`) against its data.

    Args:
        opt (dict): Options after :func:`derive_options` (phases, scales) and with ``world_size``.
    """
    for dataset_opt in opt['datasets'].values():
        check = declared_hook(DATASET_REGISTRY.get(dataset_opt['type']), 'check_data')
        if callable(check):
            check(dataset_opt, opt['world_size'])


def _arguments():
    """basicsr's command line (``--local-rank`` as ``torch.distributed.launch`` spells it, too)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument(
        '--local-rank',
        '--local_rank',
        dest='local_rank',
        type=int,
        default=None,
        help='set by python -m torch.distributed.launch; torchrun sets $LOCAL_RANK instead',
    )
    parser.add_argument('--force_yml', nargs='+', default=None, help='e.g. train:ema_decay=0.999')
    return parser.parse_args()


def is_site_directory(path: str) -> bool:
    """Whether ``path`` is one of the interpreter's site-packages directories (where pip installs)."""
    sites = [sysconfig.get_paths()[key] for key in ('purelib', 'platlib')] + [site.getusersitepackages()]
    sites += getattr(site, 'getsitepackages', list)()  # absent in some old virtualenvs
    return osp.realpath(path) in {osp.realpath(p) for p in sites}


def _declares(dataset_type: str | None, key: str) -> bool:
    """Whether the registered dataset class ``dataset_type`` (or a base) declares ``key`` (:mod:`..declare`)."""
    if dataset_type not in DATASET_REGISTRY:
        return False
    return key in inherited_rules(DATASET_REGISTRY.get(dataset_type)).get((), {})


def derive_options(opt: dict, root_path: str, is_train: bool) -> None:
    """Add basicsr's derived entries to checked options, in place: phases, scales, paths, ``num_gpu: auto``.

    A run on GPUs reads its training batches into pinned memory (``pin_memory``, unless the file says), and a
    training set that declares ``cache_device`` keeps its decoded images on the GPU (``cache_device: cuda``).

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
        if opt['num_gpu'] and dataset['phase'] == 'train':  # batches copied to the GPU without a wait
            dataset.setdefault('pin_memory', True)
            if dataset.get('cache_data') and _declares(dataset.get('type'), 'cache_device'):
                dataset.setdefault('cache_device', 'cuda')  # the decoded images on the GPU where they fit
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
        opt['path'].update(
            experiments_root=experiments_root,
            models=osp.join(experiments_root, 'models'),
            training_states=osp.join(experiments_root, 'training_states'),
            log=experiments_root,
            visualization=osp.join(experiments_root, 'visualization'),
        )
        if 'debug' in opt['name']:
            if 'val' in opt:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        parent = opt['path'].get('results_root') or osp.join(root_path, 'results')
        results_root = osp.join(osp.expanduser(parent), opt['name'])
        opt['path'].update(
            results_root=results_root, log=results_root, visualization=osp.join(results_root, 'visualization')
        )


def run_pipeline(pipeline: Callable) -> None:
    """Run basicsr's ``train_pipeline`` or ``test_pipeline`` rooted at the current directory.

    An option that cannot work ends the process with one line ``error: ...``
    (named by the check, before any work: no traceback), and so does a checkpoint that cannot be written.

    Args:
        pipeline (callable): ``pipeline(root_path)``.
    """
    show_messages()
    try:
        run_reporting_rank(pipeline, os.getcwd())
    except (OptionError, CheckpointWriteError) as error:
        sys.exit(f'error: {error}')
