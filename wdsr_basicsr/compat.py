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
* Resume (``basicsr.train.load_resume_state``): basicsr maps the state to
  ``torch.cuda.current_device()``, which fails without CUDA. Ours loads it on
  the CPU with ``weights_only=True`` (optimizers move it to their device); with ``--auto_resume`` it
  takes the newest state that loads, skipping (with a warning) a damaged one.
"""
import importlib
import importlib.util
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
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.utils import scandir  # noqa: E402
from basicsr.utils.misc import check_resume  # noqa: E402
from wdsr_basicsr.options import parse_options  # noqa: E402
from wdsr_basicsr.utils.checkpoint import load_checkpoint  # noqa: E402

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


basicsr.train.parse_options = parse_options
basicsr.test.parse_options = parse_options
BaseModel.model_to_device = model_to_device
basicsr.train.load_resume_state = load_resume_state
