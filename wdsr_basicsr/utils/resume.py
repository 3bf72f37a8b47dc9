"""Resuming a training run: which training state to take, the same on every rank, on GPU or CPU.

:mod:`wdsr_basicsr.compat` gives :func:`load_resume_state` to basicsr's
training pipeline in place of its own, which maps the state to
``torch.cuda.current_device()`` (no resume without CUDA) and takes the newest
state file whatever its network files hold.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from os import path as osp
from typing import cast

import numpy as np
import torch
from basicsr.utils.misc import check_resume

from ..files import is_leftover, remove_leftovers
from .checkpoint import load_checkpoint
from .dist import all_gather

logger = logging.getLogger(__name__)

STATE_NAME = re.compile(r'\d+\.state')


def load_resume_state(opt: dict):
    """Load the training state to resume from (:func:`find_resume_state`), the same on every rank.

    In a distributed run every rank must resume from the same iteration (or all
    start afresh); ranks that see different ``experiments/`` folders (no shared
    filesystem) stop here, before any collective could hang on it.

    Raises:
        RuntimeError: Naming what each rank found, if they differ.
    """
    state = find_resume_state(opt)
    seen = all_gather(None if state is None else state['iter'])
    if len(set(seen)) > 1:
        found = ', '.join(
            f'rank {rank}: ' + ('nothing' if it is None else f'iteration {it}') for rank, it in enumerate(seen)
        )
        raise RuntimeError(
            f'The ranks found different training states to resume from ({found}); every rank must see '
            'the same experiments/ folder (a shared filesystem).'
        )
    return state


def find_resume_state(opt: dict) -> dict | None:
    """Load the training state to resume from (``path: resume_state`` or the newest with ``--auto_resume``).

    A state is taken only when its file and the network files of its iteration
    (``net_g_<iter>.pth`` with ``params``, and ``params_ema`` when training with
    EMA) all load. With ``--auto_resume`` the newest such state is taken and
    each one skipped is printed with the reason; files in ``training_states/``
    that are not ``<iter>.state`` are skipped with a warning; when states exist
    but none can be resumed from, the run stops with the list instead of
    starting again from iteration 0. Temporary files left by a killed save are
    removed first.

    Returns:
        dict | None: The state, on the CPU (optimizers move it to their device).

    Raises:
        RuntimeError: If ``path: resume_state`` cannot be resumed from, or no
            state under ``--auto_resume`` can.
    """
    experiments_root = opt['path']['experiments_root']
    if opt['rank'] == 0:
        remove_temporaries(experiments_root)
    state_dir = osp.join(experiments_root, 'training_states')
    if opt['auto_resume']:
        candidates = _states_newest_first(state_dir)
    else:
        candidates = [opt['path']['resume_state']] if opt['path'].get('resume_state') else []
    if not candidates:
        return None
    reasons = []
    for path in candidates:
        try:
            with torch.serialization.safe_globals([Counter]):  # MultiStepRestartLR keeps its milestones in one
                state = load_checkpoint(path, 'path:resume_state')
            _check_resumable(opt, state, path)
        except (RuntimeError, ValueError, FileNotFoundError) as error:
            if not opt['auto_resume']:
                raise RuntimeError(str(error)) from error
            logger.warning(f'Skipping {path}: {error}')
            reasons.append(f'{path}: {error}')
            continue
        opt['path']['resume_state'] = path
        check_resume(opt, state['iter'])
        return state
    raise RuntimeError(
        f'--auto_resume: none of the {len(candidates)} training state(s) in {state_dir} can be resumed '
        'from; nothing was started (training from iteration 0 would write over them). Repair or move '
        'them, or train under another name:\n  ' + '\n  '.join(reasons)
    )


def _states_newest_first(state_dir: str) -> list[str]:
    """The ``<iter>.state`` files of ``state_dir``, newest first; any other file is named in a warning."""
    names = sorted(os.listdir(state_dir)) if osp.isdir(state_dir) else []
    for name in names:
        if not STATE_NAME.fullmatch(name) and not is_leftover(name):
            logger.warning(f'Warning: {osp.join(state_dir, name)} is not a training state (<iter>.state); ignored.')
    states = sorted((n for n in names if STATE_NAME.fullmatch(n)), key=lambda n: int(n.split('.')[0]), reverse=True)
    return [osp.join(state_dir, n) for n in states]


def _check_resumable(opt, state, path):
    """Raise ValueError / RuntimeError unless ``state`` and its iteration's network files can be resumed from."""
    if not isinstance(state, dict) or not {'iter', 'optimizers', 'schedulers'} <= set(state):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f'{path} is not a training state (it has {keys}); path:resume_state takes a file from '
            'experiments/<name>/training_states/, network files go to path:pretrain_network_g.'
        )
    models = opt['path']['models']
    wanted = ['params'] + (['params_ema'] if (opt.get('train') or {}).get('ema_decay', 0) > 0 else [])
    for network in (key for key in opt if key.startswith('network_')):
        net_path = osp.join(models, f'net_{network[len("network_") :]}_{state["iter"]}.pth')
        checkpoint = load_checkpoint(net_path, f'the network file of {path}')
        missing = [key for key in wanted if key not in checkpoint]
        if missing:
            raise ValueError(f'{net_path} (the network file of {path}) has no {missing}.')


def remove_temporaries(experiments_root: str) -> None:
    """Remove the temporary files that a save killed mid-write left in ``models/`` and ``training_states/``."""
    for folder in ('models', 'training_states'):
        folder = osp.join(experiments_root, folder)
        if not osp.isdir(folder):
            continue
        for leftover in remove_leftovers(folder):
            logger.warning(f'Removed {leftover}, left by an interrupted save.')


def random_states() -> dict:
    """This process's random states (Python's, NumPy's, torch's CPU and CUDA ones) as tensors and plain values,
    which a training state loads with ``weights_only=True``."""
    kind, keys, position, has_gauss, gauss = cast(tuple, np.random.get_state())
    return {
        'python': random.getstate(),
        'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        'torch': torch.get_rng_state(),
        'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def restore_random_states(states: dict) -> None:
    """Set this process's random states to ``states`` (:func:`random_states`); CUDA's where it has as many GPUs."""
    random.setstate(states['python'])
    kind, keys, position, has_gauss, gauss = states['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available() and len(states['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states['cuda'])
