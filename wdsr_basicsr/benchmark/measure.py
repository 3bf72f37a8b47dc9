"""What the benchmark measures: parameters, MACs, latency against a plain 3x3 conv and other runtimes, scores."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from os import path as osp

import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils import mkdir_and_rename
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..archs import count_parameters, fold_weight_norm
from ..backends import make_runner
from ..loading import build_described
from ..models.wdsr_model import WDSRModel
from ..options import in_process_options, load_options
from ..utils.timing import interleaved_median_ms

logger = logging.getLogger(__name__)

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


#: Output size (width, height) at which SR papers quote multiply-accumulates: 1280x720 (720p).
PAPER_OUTPUT = (1280, 720)


def count_macs(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward of ``net`` on an input shaped like ``x``.

    PyTorch's FLOP counter counts the convolutions and matrix products of the
    network's layers run one after the other, on the meta device (shapes only,
    nothing computed). Device-specific fast paths compute the same function
    and are not what is counted: the zero channels WDSR-B pads its CPU matrix
    products with are not work of the network.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        copy.deepcopy(net).to('meta')(torch.empty(x.shape, device='meta'))
    return counter.get_total_flops() // 2


def prepare_for_timing(net: nn.Module, device: str, dtype: str, channels_last: bool, compile_net: bool) -> Callable:
    """The forward to time: ``net`` on ``device`` in eval mode, in the layout, autocast and compile asked."""
    net = net.to(device).eval()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    forward = torch.compile(net) if compile_net else net
    amp = DTYPES[dtype]

    def run(x):
        if amp is None:
            return forward(x)
        with torch.autocast(device, dtype=amp):
            return forward(x)

    return run


def reference_conv(h: int, w: int, device: str, dtype: str, channels_last: bool) -> tuple[Callable, torch.Tensor, int]:
    """A plain 3x3 64->64 conv and its h x w input, timed beside each network as the machine's yardstick.

    Returns:
        tuple[callable, Tensor, int]: The forward, its input and its MACs.
    """
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.rand(1, 64, h, w, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return prepare_for_timing(conv, device, dtype, channels_last, False), x, 64 * 64 * 9 * h * w


def load_network_options(path: str) -> dict:
    """The options of ``path`` (read safely), which must have a ``network_g`` section."""
    opt = load_options(path)
    if 'network_g' not in opt:
        raise ValueError(f'--opt {path} has no network_g section.')
    return opt


def gmacs_for_output(net: nn.Module, scale: int, num_in_ch: int, output: tuple[int, int] = PAPER_OUTPUT) -> float:
    """GMACs of one forward that produces an ``output`` (width, height) image.

    Every convolution of these networks is same-padded, so their MACs are a fixed
    number per LR pixel; that number times ``width * height / scale**2`` is the
    papers' figure, also where the LR size is fractional (1280 / 3).
    """
    side = 12
    per_pixel = count_macs(net, torch.empty(1, num_in_ch, side, side)) / (side * side)
    return per_pixel * output[0] * output[1] / scale**2 / 1e9


def evaluation_options(opt_path: str, weights: str | None, device: str, self_ensemble: bool, root: str) -> dict:
    """The options ``test.py`` would run for ``opt_path``, with ``weights`` as the network to score.

    Only the validation/test sets are kept (``datasets:train`` is never read), and the run is named
    ``benchmark_<name>``, so its results go to ``<root>/results/benchmark_<name>``.
    """
    opt = load_network_options(opt_path)
    opt['datasets'] = {phase: ds for phase, ds in opt['datasets'].items() if phase != 'train'}
    if not opt['datasets'] or not (opt.get('val') or {}).get('metrics'):
        raise ValueError(f'--opt {opt_path} has no validation/test set or no val:metrics to score --weights on.')
    opt['name'] = f'benchmark_{opt["name"]}'
    opt['path'].update(pretrain_network_g=weights, strict_load_g=True)
    opt['val'].update(pbar=True, self_ensemble=self_ensemble or opt['val'].get('self_ensemble', False))
    in_process_options(opt, opt_path, root, is_train=False, num_gpu=1 if device == 'cuda' else 0)
    return opt


def score(opt: dict) -> tuple[WDSRModel, dict]:
    """Build the model of ``opt`` (loading its weights) and validate it on each of its sets.

    Returns:
        tuple[WDSRModel, dict]: The model and ``{set name: {metric: mean}}``.
    """
    model = build_model(opt)
    mkdir_and_rename(opt['path']['results_root'])
    results = {}
    for ds_opt in opt['datasets'].values():
        loader = build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=opt['num_gpu'], dist=False)
        logger.info(f'{opt["name"]}: {ds_opt["name"]} ({len(loader.dataset)} images)')
        # images saved as the file says; a test file's (save_img: true) gets the results page, as test.py's does
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=opt['val'].get('save_img', False))
        results[ds_opt['name']] = dict(model.metric_results)
    return model, results


def benchmark_row(
    opt_path: str,
    *,
    weights: str | None = None,
    lr_size: tuple[int, int] = (256, 256),
    device: str = 'cpu',
    dtype: str = 'fp32',
    channels_last: bool = False,
    compile_net: bool = False,
    self_ensemble: bool = False,
    root: str = '.',
    backends=('torch',),
    rounds: int = 10,
) -> dict:
    """One row of the table for an option file (and its checkpoint, if any).

    The folded and unfolded networks are timed in the same rounds as the
    reference conv (see :func:`reference_conv`); ``gflops_vs_conv`` is the
    ratio of their GFLOP/s. ``backends`` other than ``'torch'`` (ONNX Runtime,
    OpenVINO: CPU, fp32) run the same folded network, timed in the same
    rounds; ``backends_ms`` has each one's median (``torch``: the folded
    network), ``backends_max_diff`` each one's largest difference from
    PyTorch's output, and ``torch_vs_best_peer`` the ratio of PyTorch's time
    to the fastest other one's. With ``weights``, the row also has the
    metrics of :func:`score` on the option file's sets.
    """
    opt = load_network_options(opt_path)
    net, metrics = _network(opt, opt_path, weights, device, self_ensemble, root)
    folded = fold_weight_norm(copy.deepcopy(net))
    h, w = lr_size
    x = torch.rand(1, opt['network_g'].get('num_in_ch', 3), h, w)
    macs = count_macs(folded, x)
    x = x.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    peers = {b: make_runner(folded, b, x.shape[1]) for b in backends if b != 'torch'}
    timing = (device, dtype, channels_last, compile_net)
    (reference_ms, reference_macs), latency, unfolded, peer_ms = _times(net, folded, x, peers, timing, rounds)
    gflops = 2 * macs / (latency / 1000) / 1e9
    reference_gflops = 2 * reference_macs / (reference_ms / 1000) / 1e9
    scale = opt['scale']
    settings = {'lr_size': [h, w], 'device': device, 'dtype': dtype, 'channels_last': channels_last}
    row = {
        'name': osp.splitext(osp.basename(opt_path))[0],
        'arch': opt['network_g']['type'],
        'scale': scale,
        'params_effective': count_parameters(net, 'effective'),
        'params_raw': count_parameters(net, 'raw'),
        'gmacs': macs / 1e9,
        'gmacs_720p': gmacs_for_output(folded, scale, x.shape[1]),
        'latency_ms': latency,
        'latency_unfolded_ms': unfolded,
        'mpix_per_s': h * scale * w * scale / 1e6 / (latency / 1000),
        'gflops': gflops,
        'reference_gflops': reference_gflops,
        'gflops_vs_conv': gflops / reference_gflops,
        **settings,
        'compile': compile_net,
        **_peer_figures(peers, folded, x, latency, peer_ms),
    }
    return dict(row, weights=weights, metrics=metrics) if weights else row


def _network(opt, opt_path, weights, device, self_ensemble, root):
    """The network to time, in eval mode on the CPU, and with ``weights`` its :func:`score` on the file's sets."""
    if not weights:
        return build_described(opt['network_g'], f'--opt {opt_path}').eval(), None
    model, metrics = score(evaluation_options(opt_path, weights, device, self_ensemble, root))
    return model.get_bare_model(model.net_g).cpu().eval(), metrics


def _times(net, folded, x, peers, timing, rounds):
    """Median milliseconds, timed in the same rounds: the reference conv (with its MACs), the folded and the
    unfolded network, each other runtime. ``timing`` is ``(device, dtype, channels_last, compile_net)``."""
    device, dtype, channels_last, compile_net = timing
    h, w = x.shape[-2:]
    reference, reference_x, reference_macs = reference_conv(h, w, device, dtype, channels_last)
    reference_ms, latency, unfolded, *peer_ms = interleaved_median_ms(
        [
            (reference, reference_x),
            (prepare_for_timing(folded, device, dtype, channels_last, compile_net), x),
            (prepare_for_timing(net, device, dtype, channels_last, compile_net), x),
        ]
        + [(run, x.contiguous()) for run in peers.values()],
        device,
        runs=rounds,
    )
    return (reference_ms, reference_macs), latency, unfolded, peer_ms


def _peer_figures(peers: dict, folded: torch.nn.Module, x: torch.Tensor, latency: float, peer_ms: list) -> dict:
    """The other runtimes' times, their largest difference from PyTorch's output, PyTorch against the fastest."""
    if not peers:
        return {}
    with torch.no_grad():
        expected = folded(x)
        max_diff = {b: float((run(x.contiguous()) - expected).abs().max()) for b, run in peers.items()}
    return {
        'backends_max_diff': max_diff,
        'backends_ms': dict(torch=latency, **dict(zip(peers, peer_ms))),
        'torch_vs_best_peer': latency / min(peer_ms),
    }
