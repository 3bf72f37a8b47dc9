"""Adapters that let basicsr 1.4.2 run with today's torch and torchvision.

This module is the only place in the project that touches basicsr's behaviour.
It is imported first by :mod:`wdsr_basicsr`, before anything imports basicsr.
Nothing here edits basicsr's files on disk: each adaptation is applied in memory
when the package is imported, and each one checks that it is still needed.

Adaptations:

* ``torchvision.transforms.functional_tensor`` was removed from torchvision
  (0.17+). basicsr 1.4.2 imports ``rgb_to_grayscale`` from it at import time
  (``basicsr/data/degradations.py``), so ``import basicsr`` fails. The module
  still exists under its private name ``_functional_tensor``; we register it
  under the old name.
* Option parsing and distributed start (``parse_options`` of basicsr's train
  and test pipelines): basicsr reads YAML with PyYAML's full loader, ``eval``s
  ``--force_yml``, always asks for NCCL and ``torch.cuda.set_device``, and
  passes ``dist_params`` to slurm only. The pipelines call
  :func:`wdsr_basicsr.options.parse_options` instead (safe YAML, launch
  checks, NCCL with one GPU per local rank or gloo on the CPU, ``dist_params``
  for every launcher, ``--local-rank``).
* DDP wrapping (``BaseModel.model_to_device``): basicsr passes CUDA device ids
  even on CPU and always broadcasts buffers. Ours passes device ids only on
  GPU, converts BatchNorm to SyncBatchNorm under DDP on GPU (the ``norm:
  batch`` variant), and broadcasts buffers only when the network holds
  BatchNorm statistics that the ranks would otherwise keep apart (a collective
  in every forward, and none is needed for constant buffers such as WDSR's
  ``mean``).
* LMDB reads (``LmdbBackend`` and ``PairedImageDataset.__getitem__``): basicsr
  maps a ``data.mdb`` cut short (SIGBUS in a DataLoader worker) and fails on a
  missing or corrupt record with ``'NoneType' object has no attribute``. Ours
  refuses the LMDB at open and names the LMDB and key of a bad record, for
  every paired dataset type (:mod:`wdsr_basicsr.data.paired_dataset`).
* Resume (``basicsr.train.load_resume_state``): basicsr maps the state to
  ``torch.cuda.current_device()``, which fails without CUDA, and takes the
  newest state file whatever its network files hold. Ours loads it on the CPU
  with ``weights_only=True`` (optimizers move it to their device) and takes
  only a state whose network files load too; see :func:`load_resume_state`.
"""
import functools
import importlib
import importlib.util
import os
import re
import sys
from collections import Counter
from os import path as osp

import torch

_OLD_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_NEW_FUNCTIONAL_TENSOR = 'torchvision.transforms._functional_tensor'


def _alias_torchvision_functional_tensor():
    """Make ``torchvision.transforms.functional_tensor`` importable again."""
    if _OLD_FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_OLD_FUNCTIONAL_TENSOR) is not None:
        return
    sys.modules[_OLD_FUNCTIONAL_TENSOR] = importlib.import_module(_NEW_FUNCTIONAL_TENSOR)


_alias_torchvision_functional_tensor()

# basicsr's modules can be imported from here on.
import basicsr.test  # noqa: E402
import basicsr.train  # noqa: E402
from basicsr.data.paired_image_dataset import PairedImageDataset  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.utils.file_client import LmdbBackend  # noqa: E402
from basicsr.utils.misc import check_resume  # noqa: E402
from wdsr_basicsr.data.paired_dataset import check_lmdb_complete, raise_if_bad_record  # noqa: E402
from wdsr_basicsr.options import parse_options  # noqa: E402
from wdsr_basicsr.utils.checkpoint import load_checkpoint  # noqa: E402
from wdsr_basicsr.utils.dist import all_gather  # noqa: E402

# MultiStepRestartLR keeps its milestones in a Counter: allow it in weights_only loads.
torch.serialization.add_safe_globals([Counter])


def model_to_device(self, net):
    """Move ``net`` to the model's device; wrap it in DDP (device ids on GPU only) or DataParallel."""
    net = net.to(self.device)
    if self.opt['dist']:
        if self.device.type == 'cuda':
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            device_ids = [torch.cuda.current_device()]
        else:
            device_ids = None
        local_statistics = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm)
            for m in net.modules())
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, broadcast_buffers=local_statistics,
            find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


STATE_NAME = re.compile(r'\d+\.state')


def load_resume_state(opt):
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
        found = ', '.join(f'rank {rank}: ' + ('nothing' if it is None else f'iteration {it}')
                          for rank, it in enumerate(seen))
        raise RuntimeError(f'The ranks found different training states to resume from ({found}); every rank must see '
                           'the same experiments/ folder (a shared filesystem).')
    return state


def find_resume_state(opt):
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
    experiments_root = osp.join('experiments', opt['name'])
    if opt['rank'] == 0:
        remove_temporaries(experiments_root)
    state_dir = osp.join(experiments_root, 'training_states')
    if opt['auto_resume']:
        if not osp.isdir(state_dir):
            return None
        names = sorted(os.listdir(state_dir))
        for name in names:
            if not STATE_NAME.fullmatch(name) and not (name.startswith('.') and name.endswith('.tmp')):
                print(f'Warning: {osp.join(state_dir, name)} is not a training state (<iter>.state); ignored.',
                      flush=True)
        candidates = [osp.join(state_dir, n) for n in sorted(
            (n for n in names if STATE_NAME.fullmatch(n)), key=lambda n: int(n.split('.')[0]), reverse=True)]
        if not candidates:
            return None
    elif opt['path'].get('resume_state'):
        candidates = [opt['path']['resume_state']]
    else:
        return None
    reasons = []
    for path in candidates:
        try:
            state = load_checkpoint(path, 'path:resume_state')
            _check_resumable(opt, state, path)
        except (RuntimeError, ValueError, FileNotFoundError) as error:
            if not opt['auto_resume']:
                raise RuntimeError(str(error)) from error
            print(f'Skipping {path}: {error}', flush=True)
            reasons.append(f'{path}: {error}')
            continue
        opt['path']['resume_state'] = path
        check_resume(opt, state['iter'])
        return state
    raise RuntimeError(f'--auto_resume: none of the {len(candidates)} training state(s) in {state_dir} can be resumed '
                       'from; nothing was started (training from iteration 0 would write over them). Repair or move '
                       'them, or train under another name:\n  ' + '\n  '.join(reasons))


def _check_resumable(opt, state, path):
    """Raise ValueError / RuntimeError unless ``state`` and its iteration's network files can be resumed from."""
    if not isinstance(state, dict) or not {'iter', 'optimizers', 'schedulers'} <= set(state):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f'{path} is not a training state (it has {keys}); path:resume_state takes a file from '
                         'experiments/<name>/training_states/, network files go to path:pretrain_network_g.')
    models = osp.join('experiments', opt['name'], 'models')
    wanted = ['params'] + (['params_ema'] if (opt.get('train') or {}).get('ema_decay', 0) > 0 else [])
    for network in (key for key in opt if key.startswith('network_')):
        net_path = osp.join(models, f"net_{network[len('network_'):]}_{state['iter']}.pth")
        checkpoint = load_checkpoint(net_path, f'the network file of {path}')
        missing = [key for key in wanted if key not in checkpoint]
        if missing:
            raise ValueError(f'{net_path} (the network file of {path}) has no {missing}.')


def remove_temporaries(experiments_root):
    """Remove the temporary files that a save killed mid-write left in ``models/`` and ``training_states/``."""
    for folder in ('models', 'training_states'):
        folder = osp.join(experiments_root, folder)
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.startswith('.') and name.endswith('.tmp'):
                print(f'Removing {osp.join(folder, name)}, left by an interrupted save.', flush=True)
                os.remove(osp.join(folder, name))


_lmdb_backend_init = LmdbBackend.__init__
_paired_getitem = PairedImageDataset.__getitem__


@functools.wraps(_lmdb_backend_init)
def lmdb_backend_init(self, db_paths, *args, **kwargs):
    """basicsr's ``LmdbBackend.__init__``, after :func:`check_lmdb_complete` of every LMDB."""
    for path in [db_paths] if isinstance(db_paths, str) else db_paths:
        check_lmdb_complete(path)
    _lmdb_backend_init(self, db_paths, *args, **kwargs)


@functools.wraps(_paired_getitem)
def paired_getitem(self, index):
    """basicsr's ``PairedImageDataset.__getitem__``; a failure from a bad record names its LMDB and key."""
    try:
        return _paired_getitem(self, index)
    except Exception as error:
        raise_if_bad_record(self, index, error)
        raise


LmdbBackend.__init__ = lmdb_backend_init
PairedImageDataset.__getitem__ = paired_getitem
basicsr.train.parse_options = parse_options
basicsr.test.parse_options = parse_options
BaseModel.model_to_device = model_to_device
basicsr.train.load_resume_state = load_resume_state
