"""Distributed runs: start (torchrun, torch.distributed.launch, slurm), launch checks, cross-rank helpers.

torch.distributed does the work; this module decides the backend and device of
each process from the environment and the ``dist_params`` options, refuses
combinations that cannot work before anything starts, and gathers what
validation needs from every rank.
"""

from __future__ import annotations

import atexit
import datetime
import gc
import logging
import os
import subprocess
from collections.abc import Callable, Collection

import torch
import torch.distributed as dist

from ..declare import Rule
from .compile import toolchain_problem
from .preempt import Preempted

logger = logging.getLogger(__name__)

DIST_BACKENDS = ('nccl', 'gloo')
#: What ``dist_params`` may hold (:func:`init_dist` reads it; the option check judges it by these rules).
DIST_PARAMS = {
    'backend': Rule(
        'str', null=True, words=('auto', *DIST_BACKENDS), doc='auto: NCCL when the run uses GPUs, gloo otherwise.'
    ),
    'port': Rule('int', 1, 65535, doc='slurm only: the rendezvous port (torchrun takes --master_port).'),
    'timeout_min': Rule(
        'number', 0, None, null=True, low_open=True, doc='Minutes a rank waits in a collective for the others.'
    ),
}


def local_rank_from_env(launcher: str, cli_local_rank: int | None = None) -> int:
    """The local rank of this process.

    Args:
        launcher (str): 'pytorch' (torchrun, ``torch.distributed.launch``) or 'slurm'.
        cli_local_rank (int | None): ``--local-rank`` / ``--local_rank`` from the
            command line (``torch.distributed.launch`` passes it). Default: None.

    Returns:
        int: ``--local-rank`` when given, else ``$LOCAL_RANK`` (torchrun) or
        ``$SLURM_LOCALID`` (slurm), else 0.
    """
    if cli_local_rank is not None:
        return cli_local_rank
    if launcher == 'slurm':
        return int(os.environ.get('SLURM_LOCALID', 0))
    return int(os.environ.get('LOCAL_RANK', 0))


def check_launch(opt: dict, launcher: str, local_rank: int, opt_path: str, *, model_keys: Collection[str]) -> bool:
    """Refuse launcher, device and option combinations that cannot work, before any work starts.

    ``dist_params``' values are the option check's (:data:`DIST_PARAMS`); here, what they mean on this machine.

    Args:
        opt (dict): The options (``num_gpu``, ``dist_params``, ``use_amp``, ``amp_bf16``, ``use_compile``).
        launcher (str): 'none', 'pytorch' or 'slurm'.
        local_rank (int): This process's local rank (ignored for 'none').
        opt_path (str): The option file, named in the errors.
        model_keys (Collection[str]): The top-level keys the model reads: ``use_amp`` and ``use_compile``
            are judged only where it reads them (another model ignores them).

    Returns:
        bool: Whether the run uses CUDA GPUs (``num_gpu`` not 0, GPUs visible).

    Raises:
        ValueError: Naming the option or flag at fault and what would work.
    """
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    num_gpu = opt.get('num_gpu')
    if num_gpu != 'auto' and (not isinstance(num_gpu, int) or isinstance(num_gpu, bool) or num_gpu < 0):
        raise ValueError(f'{opt_path}: num_gpu={num_gpu!r} must be auto or a number of GPUs (0 for the CPU).')
    dist_params = opt.get('dist_params') or {}
    backend = dist_params.get('backend')
    uses_gpu = num_gpu == 'auto' and gpus > 0 or num_gpu not in ('auto', 0)
    if num_gpu not in ('auto', 0) and gpus == 0:
        raise ValueError(f'{opt_path}: num_gpu={num_gpu} but no CUDA GPU is visible; use num_gpu: 0 (CPU) or auto.')
    if launcher == 'none':
        if isinstance(num_gpu, int) and num_gpu > gpus:
            raise ValueError(
                f'{opt_path}: num_gpu={num_gpu} but {gpus} GPU(s) are visible; use num_gpu: auto or at most {gpus}.'
            )
    else:
        world_size = int(os.environ.get('WORLD_SIZE', os.environ.get('SLURM_NTASKS', 1)))
        if num_gpu not in ('auto', 0) and num_gpu != world_size:
            raise ValueError(
                f'{opt_path}: num_gpu={num_gpu} but the launcher started {world_size} process(es); '
                f'under {launcher} num_gpu counts all processes: use num_gpu: auto or {world_size}.'
            )
        if backend == 'nccl' and gpus == 0:
            raise ValueError(
                f'{opt_path}: dist_params:backend=nccl needs CUDA GPUs and none is visible; '
                'use backend: gloo or auto (gloo on the CPU).'
            )
        if uses_gpu and local_rank >= gpus:
            raise ValueError(
                f'local rank {local_rank} (--local-rank / LOCAL_RANK) but {gpus} GPU(s) are visible '
                f'on this node: start at most {gpus} process(es) per node.'
            )
    if 'use_amp' in model_keys and opt.get('use_amp') and not opt.get('amp_bf16') and not uses_gpu:
        raise ValueError(
            f'{opt_path}: use_amp with fp16 (amp_bf16: false) needs a CUDA GPU; on the CPU set '
            'amp_bf16: true (bf16 autocast) or use_amp: false.'
        )
    if launcher != 'none' and 'align_channels' in model_keys and opt.get('align_channels'):
        raise ValueError(
            f"{opt_path}: align_channels: a distributed run trains through DDP's own forward, which pads "
            'nothing; leave it out under --launcher.'
        )
    compiles = 'use_compile' in model_keys and opt.get('use_compile') is True  # auto runs eagerly without one
    problem = toolchain_problem('cuda' if uses_gpu else 'cpu') if compiles else None
    if problem:
        raise ValueError(f'{opt_path}: use_compile: {problem}.')
    return uses_gpu


def init_dist(
    launcher: str, local_rank: int, backend: str, port: int | None = None, timeout_min: float | None = None
) -> None:
    """Start torch.distributed for ``--launcher pytorch`` or ``--launcher slurm``.

    With NCCL each process takes the GPU of its local rank. With slurm the
    rendezvous address is the first host of ``$SLURM_NODELIST`` and the port
    ``port``, else ``$MASTER_PORT``, else 29500.

    Args:
        launcher (str): 'pytorch' or 'slurm'.
        local_rank (int): This process's local rank (:func:`local_rank_from_env`).
        backend (str): 'nccl' (one GPU per process) or 'gloo'.
        port (int | None): Master port for slurm. Default: None.
        timeout_min (float | None): Minutes a collective may wait for the other
            ranks before the run fails on every rank (torch's default, 10 min for
            NCCL and 30 for gloo, when None). Default: None.
    """
    if launcher == 'slurm':
        proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
        first_host = subprocess.getoutput(f'scontrol show hostname {os.environ["SLURM_NODELIST"]} | head -n1')
        os.environ.setdefault('MASTER_ADDR', first_host)
        os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))
        os.environ.update(WORLD_SIZE=str(ntasks), RANK=str(proc_id), LOCAL_RANK=str(local_rank))
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher!r} (expected pytorch or slurm).')
    if backend == 'nccl':
        torch.cuda.set_device(local_rank)
    timeout = None if timeout_min is None else datetime.timedelta(minutes=timeout_min)
    dist.init_process_group(backend=backend, timeout=timeout)
    # basicsr's own train.py never ends the process group: a gloo group alive at exit can abort the process
    # ("terminate called without an active exception") after a run that succeeded.
    atexit.register(destroy_process_group)


def destroy_process_group(synchronize: bool = False) -> None:
    """End torch.distributed's process group, if one is running (our entries, or at exit for basicsr's).

    Args:
        synchronize (bool): Wait for every rank first (after a run that succeeded), so that no rank tears its
            gloo pairs down while a peer still uses them: that aborted a rank of a finished 2-rank CPU run
            ("terminate called without an active exception", SIGABRT). Not after a failure, where a peer may
            never arrive. Default: False.
    """
    if dist.is_available() and dist.is_initialized():
        # the finished pipeline's model is unreachable but held in reference cycles (bound methods that compat
        # wraps): collected now, its DDP reducer ends while the group it talks to still lives, not at exit
        gc.collect()
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def all_gather(obj: object) -> list:
    """The list of ``obj`` from every rank (rank order); ``[obj]`` without torch.distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def run_reporting_rank(pipeline: Callable, root_path: str) -> None:
    """Run a basicsr pipeline; if it fails in a distributed run, say which rank failed and why, then re-raise.

    Args:
        pipeline (callable): ``train_pipeline`` or ``test_pipeline``.
        root_path (str): Passed to ``pipeline``.
    """
    try:
        pipeline(root_path)
    except Preempted:  # every rank saved at the same iteration: end together, as after a run that succeeded
        destroy_process_group(synchronize=True)
        raise
    except Exception as error:
        if dist.is_available() and dist.is_initialized():
            hint = ''
            if isinstance(error, dist.DistError) or 'timed out' in str(error).lower():
                hint = (
                    ' A collective failed or timed out: another rank died or stalled (the wait is bounded by '
                    'dist_params:timeout_min); the launcher lists the ranks that exited.'
                )
            logger.error(f'[rank {dist.get_rank()} of {dist.get_world_size()}] {type(error).__name__}: {error}.{hint}')
        raise
    destroy_process_group(synchronize=True)
