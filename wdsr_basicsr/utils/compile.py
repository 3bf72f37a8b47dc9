"""``torch.compile`` for the training step: what the toolchain needs, and how the step is compiled per device.

Inductor turns the captured graph into C++ (compiled with the system's C++
compiler against Python's headers) on the CPU, and into Triton kernels on CUDA
GPUs. Without them the first compiled step fails minutes into a run, deep in a
traceback; :func:`toolchain_problem` names what is missing before any work.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sysconfig
from collections.abc import Callable

import torch


def toolchain_problem(device_type: str) -> str | None:
    """What ``torch.compile`` (inductor) lacks on this machine for ``device_type``, or None when nothing is missing.

    Args:
        device_type (str): 'cpu' or 'cuda'.

    Returns:
        str | None: A sentence naming the missing piece and how to get it.
    """
    if device_type == 'cuda':
        if importlib.util.find_spec('triton') is None:
            return (
                'torch.compile on CUDA needs Triton, which is not installed (pip install triton, the version '
                f'your torch {torch.__version__} asks for)'
            )
        return None
    compiler = os.environ.get('CXX', 'g++')
    try:
        command = shlex.split(compiler)  # as inductor reads $CXX: a command line (`ccache g++`), not one name
    except ValueError as error:
        return f'torch.compile on the CPU cannot read $CXX={compiler!r} as a command line ({error})'
    if not command or shutil.which(command[0]) is None:
        return (
            f'torch.compile on the CPU needs a C++ compiler: {compiler!r} (from $CXX, else g++) is not on the '
            'PATH (apt install g++, or set CXX)'
        )
    include = sysconfig.get_paths()['include']
    if not os.path.isfile(os.path.join(include, 'Python.h')):
        return (
            f'torch.compile on the CPU needs the Python headers: {include}/Python.h is missing '
            '(apt install python3-dev, or a Python built with its headers)'
        )
    return None


def compile_step(step: Callable, device_type: str, distributed: bool) -> Callable:
    """``step`` (forward and losses) compiled by inductor for fixed shapes; on a single CUDA GPU also in CUDA graphs.

    Training patches have one shape (basicsr's training loader drops the last
    incomplete batch), so the step is compiled for static shapes; another
    shape compiles once more. CUDA graphs (``mode='reduce-overhead'``) remove
    the per-kernel launch cost that bounds small networks; each call then
    starts a new CUDA-graph step, so the previous step's outputs may be
    overwritten (read them before the next call). Under DDP the gradient
    all-reduce runs in DDP's hooks between graph pieces, so there the default
    mode is used.

    Args:
        step (Callable): The function to compile (forward and losses).
        device_type (str): 'cpu' or 'cuda'.
        distributed (bool): Whether the network is wrapped in DDP.

    Returns:
        Callable: The compiled function (same arguments and results).
    """
    if device_type != 'cuda' or distributed:
        return torch.compile(step, dynamic=False)
    compiled = torch.compile(step, mode='reduce-overhead', dynamic=False)

    def graphed_step(*args):
        torch.compiler.cudagraph_mark_step_begin()
        return compiled(*args)

    return graphed_step


def capture_step(step: Callable, device_type: str, backend: str = 'inductor') -> Callable:
    """``step`` (a whole training step: forward, backward, update) compiled as one graph, or an error at its first call.

    ``fullgraph=True``: anything that would split the graph (a host sync in a loss, an unsupported call) raises
    ``torch._dynamo.exc.Unsupported`` at the first call, before any tensor changed. The gradients inside
    (``torch.autograd.grad``) are traced with dynamo's ``trace_autograd_ops``, set for each call (a new input
    shape compiles again). On CUDA the graph is replayed as CUDA graphs (``mode='reduce-overhead'``); each call
    starts a new CUDA-graph step, so the previous call's outputs must have been read.

    Args:
        step (Callable): The function to capture.
        device_type (str): 'cpu' or 'cuda'.
        backend (str): torch.compile's backend ('aot_eager' traces and runs without code generation, for
            tests). Default: 'inductor'.

    Returns:
        Callable: The captured function (same arguments and results).
    """
    mode = 'reduce-overhead' if device_type == 'cuda' and backend == 'inductor' else None
    compiled = torch.compile(step, fullgraph=True, dynamic=False, backend=backend, mode=mode)

    def captured_step(*args):
        if mode is not None:
            torch.compiler.cudagraph_mark_step_begin()
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return compiled(*args)

    return captured_step
