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
* Distributed start (``basicsr.utils.dist_util.init_dist``): basicsr always
  asks for NCCL and calls ``torch.cuda.set_device``. Ours picks NCCL and one
  GPU per local rank when CUDA is there, gloo on CPU otherwise (a
  ``dist_params: {backend: ...}`` option still wins), for ``--launcher
  pytorch`` (torchrun) and ``--launcher slurm``.
* DDP wrapping (``BaseModel.model_to_device``): basicsr passes CUDA device ids
  even on CPU. Ours passes them only on GPU, and converts BatchNorm to
  SyncBatchNorm under DDP on GPU (the ``norm: batch`` variant).
* Resume (``basicsr.train.load_resume_state``): basicsr maps the state to
  ``torch.cuda.current_device()``, which fails without CUDA. Ours loads it on
  the CPU with ``weights_only=True`` (optimizers move it to their device); with ``--auto_resume`` it
  takes the newest state that loads, skipping (with a warning) a damaged one.
"""
import importlib
import importlib.util
import os
import subprocess
import sys
from collections import Counter
from os import path as osp

import torch
import torch.distributed as dist

_OLD_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_NEW_FUNCTIONAL_TENSOR = 'torchvision.transforms._functional_tensor'


def _alias_torchvision_functional_tensor():
    """Make ``torchvision.transforms.functional_tensor`` importable again."""
    if _OLD_FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_OLD_FUNCTIONAL_TENSOR) is not None:
        return
    sys.modules[_OLD_FUNCTIONAL_TENSOR] = importlib.import_module(_NEW_FUNCTIONAL_TENSOR)


_alias_torchvision_functional_tensor()

# basicsr's modules can be imported from here on.
import basicsr.train  # noqa: E402
import basicsr.utils.dist_util  # noqa: E402
import basicsr.utils.options  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.utils import scandir  # noqa: E402
from basicsr.utils.misc import check_resume  # noqa: E402
from wdsr_basicsr.utils.checkpoint import load_checkpoint  # noqa: E402

# MultiStepRestartLR keeps its milestones in a Counter: allow it in weights_only loads.
torch.serialization.add_safe_globals([Counter])


def default_backend():
    """'nccl' when CUDA is available, 'gloo' otherwise."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, port=None):
    """Start torch.distributed for ``--launcher pytorch`` (torchrun) or ``--launcher slurm``.

    Args:
        launcher (str): 'pytorch' or 'slurm'.
        backend (str | None): 'nccl', 'gloo' or None for :func:`default_backend`.
        port (int | None): Master port for slurm. Default: $MASTER_PORT or 29500.
    """
    backend = backend or default_backend()
    if launcher == 'pytorch':
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
    elif launcher == 'slurm':
        proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        local_rank = int(os.environ.get('SLURM_LOCALID', proc_id % max(torch.cuda.device_count(), 1)))
        first_host = subprocess.getoutput(f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
        os.environ.setdefault('MASTER_ADDR', first_host)
        os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))
        os.environ.update(WORLD_SIZE=str(ntasks), RANK=str(proc_id), LOCAL_RANK=str(local_rank))
    else:
        raise ValueError(f'Invalid launcher type: {launcher!r} (expected pytorch or slurm).')
    if backend == 'nccl':
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend)


def model_to_device(self, net):
    """Move ``net`` to the model's device; wrap it in DDP (device ids on GPU only) or DataParallel."""
    net = net.to(self.device)
    if self.opt['dist']:
        if self.device.type == 'cuda':
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            device_ids = [torch.cuda.current_device()]
        else:
            device_ids = None
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


def load_resume_state(opt):
    """Load the training state to resume from (``path: resume_state`` or the newest with ``--auto_resume``).

    Returns:
        dict | None: The state, on the CPU or the current GPU.
    """
    if opt['auto_resume']:
        state_dir = osp.join('experiments', opt['name'], 'training_states')
        candidates = []
        if osp.isdir(state_dir):
            names = scandir(state_dir, suffix='.state', recursive=False, full_path=False)
            candidates = [osp.join(state_dir, n) for n in sorted(names, key=lambda n: int(n.split('.')[0]), reverse=True)]
    elif opt['path'].get('resume_state'):
        candidates = [opt['path']['resume_state']]
    else:
        return None
    for path in candidates:
        try:  # on the CPU: the optimizers move their state to their parameters' device when loading it
            state = load_checkpoint(path, 'path:resume_state')
        except RuntimeError as error:
            if not opt['auto_resume']:
                raise
            print(f'Skipping: {error}', flush=True)
            continue
        opt['path']['resume_state'] = path
        check_resume(opt, state['iter'])
        return state
    return None


basicsr.utils.dist_util.init_dist = init_dist
basicsr.utils.options.init_dist = init_dist
BaseModel.model_to_device = model_to_device
basicsr.train.load_resume_state = load_resume_state
