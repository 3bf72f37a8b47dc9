"""Run a network with PyTorch, ONNX Runtime or OpenVINO, the runtimes deployers use.

Each backend runs the same network, weight norm folded; ONNX Runtime and OpenVINO run its ONNX export (opset
17, dynamic batch, height and width), exported once to a temporary file. They are optional extras
(``pip install "wdsr-basicsr[deploy]"``); asking for one that is not installed names the extra.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from collections.abc import Callable
from os import path as osp

import numpy as np
import torch
from torch import nn

from .utils.timing import interleaved_median_ms

logger = logging.getLogger(__name__)

BACKENDS = ('torch', 'onnxruntime', 'openvino')
#: What to install for each optional backend.
EXTRAS = {
    'onnxruntime': 'pip install "wdsr-basicsr[deploy]" (or: pip install onnx onnxscript onnxruntime)',
    'openvino': 'pip install "wdsr-basicsr[deploy]" (or: pip install onnx onnxscript openvino)',
}
_MODULES = {'onnxruntime': 'onnxruntime', 'openvino': 'openvino'}


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that is not installed (the message names what to install)."""


def installed(backend: str) -> bool:
    """Whether ``backend`` can run here."""
    if backend == 'torch':
        return True
    try:
        __import__(_MODULES[backend])
        __import__('onnx')
    except ImportError:
        return False
    return True


def check_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailableError` (naming the extra) or ``ValueError`` unless ``backend`` can run."""
    if backend not in BACKENDS:
        raise ValueError(f'backend {backend!r} is not one of {", ".join(BACKENDS)}.')
    if not installed(backend):
        raise BackendUnavailableError(f'backend {backend} is not installed: {EXTRAS[backend]}.')


def runtime_errors(backend: str) -> tuple[type[Exception], ...]:
    """The exception types a backend's runs fail with (out of memory, a bad input), beyond ``RuntimeError``.

    PyTorch and OpenVINO raise ``RuntimeError``; ONNX Runtime raises its own
    types, which derive from ``Exception`` only.
    """
    if backend != 'onnxruntime':
        return ()
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(obj for obj in vars(state).values() if inspect.isclass(obj) and issubclass(obj, Exception))


def export_onnx(net: nn.Module, path: str, num_in_ch: int = 3, opset: int = 17) -> None:
    """Export ``net`` (eval mode, CPU) to ONNX at ``path``, dynamic batch, height and width, input ``lq``."""
    torch.onnx.export(
        net,
        (torch.rand(1, num_in_ch, 16, 16),),
        path,
        input_names=['lq'],
        output_names=['sr'],
        opset_version=opset,
        dynamo=False,
        dynamic_axes={'lq': {0: 'batch', 2: 'height', 3: 'width'}, 'sr': {0: 'batch', 2: 'height', 3: 'width'}},
    )


def make_runner(net: nn.Module, backend: str, num_in_ch: int = 3) -> Callable:
    """A callable that runs ``net`` (folded, eval mode) on a CPU float tensor with ``backend``.

    Args:
        net (nn.Module): The network, on the CPU, weight norm folded.
        backend (str): One of :data:`BACKENDS`.
        num_in_ch (int): Its input channels (for the export). Default: 3.

    Returns:
        callable: ``run(x) -> Tensor``, (N, C, H, W) float32 in, float32 out.
    """
    check_backend(backend)
    if backend == 'torch':

        def run_torch(x):
            with torch.no_grad():
                return net(x)

        return run_torch
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = osp.join(tmp, 'net.onnx')
        export_onnx(net, onnx_path, num_in_ch)
        return onnx_runner(onnx_path, backend)


def onnx_runner(onnx_path: str, backend: str) -> Callable:
    """A callable that runs the ONNX file ``onnx_path`` with ONNX Runtime or OpenVINO, on the CPU in fp32.

    The file is read once; the runner does not need it afterwards.

    Args:
        onnx_path (str): An export of :func:`export_onnx`.
        backend (str): ``'onnxruntime'`` or ``'openvino'``.

    Returns:
        callable: ``run(x) -> Tensor``, (N, C, H, W) float32 in, float32 out.
    """
    check_backend(backend)
    if backend == 'onnxruntime':
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(onnx_path, options, providers=['CPUExecutionProvider'])
        return lambda x: torch.from_numpy(session.run(None, {'lq': np.ascontiguousarray(x.numpy())})[0])
    import openvino

    compiled = openvino.Core().compile_model(
        onnx_path, 'CPU', {'PERFORMANCE_HINT': 'LATENCY', 'INFERENCE_PRECISION_HINT': 'f32'}
    )
    request = compiled.create_infer_request()

    def run_openvino(x):
        return torch.from_numpy(np.array(request.infer({0: np.ascontiguousarray(x.numpy())})[0]))

    return run_openvino


def fastest_backend(
    net: nn.Module, num_in_ch: int = 3, size: int = 96, rounds: int = 3
) -> tuple[str, Callable, dict[str, float]]:
    """The installed backend that runs ``net`` fastest on a ``size`` x ``size`` input here, and its runner.

    Each installed backend is timed on the same input in alternating rounds (median); the first call of each
    (warm-up, graph compilation) is not timed.

    Returns:
        tuple[str, callable, dict[str, float]]: The backend, its runner and the milliseconds of each.
    """
    runners = {b: make_runner(net, b, num_in_ch) for b in BACKENDS if installed(b)}
    x = torch.rand(1, num_in_ch, size, size)
    medians = dict(
        zip(runners, interleaved_median_ms([(run, x) for run in runners.values()], 'cpu', warmup=1, runs=rounds))
    )
    best = min(medians, key=lambda b: medians[b])
    return best, runners[best], medians


def choose_backend(
    net: nn.Module, backend: str, num_in_ch: int = 3, device: str = 'cpu', amp_dtype: torch.dtype | None = None
) -> tuple[Callable, str]:
    """The network as ``backend`` runs it: the module on ``device``, or a runner of another runtime.

    Args:
        net (nn.Module): The network, on the CPU, weight norm folded, eval mode.
        backend (str): ``'auto'`` or one of :data:`BACKENDS`. ``'auto'`` times the installed runtimes on the CPU
            in fp32 (:func:`fastest_backend`); on a GPU, or with ``amp_dtype``, PyTorch runs it.
        num_in_ch (int): Its input channels. Default: 3.
        device (str): Where PyTorch runs it. Default: 'cpu'.
        amp_dtype (torch.dtype | None): Autocast dtype of the run. Default: None (fp32).

    Returns:
        tuple[callable, str]: The network or runner, and the backend's name.

    Raises:
        RuntimeError: If the backend is not installed (naming the extra).
        ValueError: If it cannot run as asked (a GPU, or fp16/bf16, with a CPU runtime).
    """
    torch_only = device != 'cpu' or amp_dtype is not None
    if backend in ('onnxruntime', 'openvino') and torch_only:
        raise ValueError(
            f'--backend {backend} runs on the CPU in fp32: drop --device cuda, --half and --bf16, '
            'or use --backend torch.'
        )
    if backend == 'torch' or (backend == 'auto' and torch_only):
        return net.to(device), 'torch'
    if backend != 'auto':
        return make_runner(net, backend, num_in_ch), backend
    best, runner, times = fastest_backend(net, num_in_ch)
    logger.info('backend auto: ' + ', '.join(f'{b} {ms:.1f} ms' for b, ms in times.items()) + f' -> {best}')
    return (net if best == 'torch' else runner), best
