"""Benchmark networks from their option files: parameters, MACs, latency, and PSNR/SSIM with weights.

Usage: python scripts/benchmark.py --opt FILE [FILE ...] [--weights CKPT ...] [--self-ensemble]
[--lr-size H W] [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--channels-last] [--compile]
[--backends torch onnxruntime openvino] [--rounds N] [--json OUT] [--markdown OUT] [--plot OUT.png]

One row per option file. Latency is the median of timed forwards after warm-up (synchronised on GPU),
of the network with weight norm folded (``latency_ms``) and as trained (``latency_unfolded_ms``). A plain
3x3 64->64 convolution at the same size is timed in the same alternating rounds, as the machine's
reference GFLOP/s. ``--backends`` adds ONNX Runtime and OpenVINO (optional extras) on the same folded
network, timed in the same rounds (CPU, fp32), with each one's largest difference from PyTorch's output.

With ``--weights`` (one checkpoint per option file, e.g. ``options/test_wdsr_b_x2.yml``), each network is
scored the way ``test.py`` scores it: ``WDSRModel.validation`` on every validation/test set of the option
file, with its ``val`` metrics, tiling and self-ensemble settings (per-image figures in
``results/benchmark_<name>/metrics_<set>.json``). The markdown then carries the table SR papers print: a
row per network and scale (parameters, GMACs for a 1280x720 output), a column per set (PSNR / SSIM).
"""
import argparse
import copy
import json
import os
import statistics
import sys
from os import path as osp

import torch
from torch.utils.flop_counter import FlopCounterMode

from basicsr.archs import build_network
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils import mkdir_and_rename

from .archs import count_parameters, fold_weight_norm
from .backends import BACKENDS, make_runner
from .options import check_name, check_options, derive_options, load_options
from .utils.timing import interleaved_median_ms

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}

#: Output size (width, height) at which SR papers quote multiply-accumulates: 1280x720 (720p).
PAPER_OUTPUT = (1280, 720)


def count_macs(net, x):
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


def prepare_for_timing(net, device, dtype, channels_last, compile_net):
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


def reference_conv(h, w, device, dtype, channels_last):
    """A plain 3x3 64->64 conv and its h x w input, timed beside each network as the machine's yardstick.

    Returns:
        tuple[callable, Tensor, int]: The forward, its input and its MACs.
    """
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    x = torch.rand(1, 64, h, w, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return prepare_for_timing(conv, device, dtype, channels_last, False), x, 64 * 64 * 9 * h * w


def load_network_options(path):
    """The options of ``path`` (read safely), which must have a ``network_g`` section."""
    opt = load_options(path)
    if 'network_g' not in opt:
        raise ValueError(f'--opt {path} has no network_g section.')
    return opt


def gmacs_for_output(net, scale, num_in_ch, output=PAPER_OUTPUT):
    """GMACs of one forward that produces an ``output`` (width, height) image.

    Every convolution of these networks is same-padded, so their MACs are a fixed
    number per LR pixel; that number times ``width * height / scale**2`` is the
    papers' figure, also where the LR size is fractional (1280 / 3).
    """
    side = 12
    per_pixel = count_macs(net, torch.empty(1, num_in_ch, side, side)) / (side * side)
    return per_pixel * output[0] * output[1] / scale**2 / 1e9


def evaluation_options(opt_path, weights, device, self_ensemble, root):
    """The options ``test.py`` would run for ``opt_path``, with ``weights`` as the network to score.

    Only the validation/test sets are kept (``datasets:train`` is never read), and the run is named
    ``benchmark_<name>``, so its results go to ``<root>/results/benchmark_<name>``.
    """
    opt = load_network_options(opt_path)
    check_name(opt.get('name'), opt_path)
    check_options(opt, opt_path, is_train=False)
    opt['datasets'] = {phase: ds for phase, ds in opt['datasets'].items() if phase != 'train'}
    if not opt['datasets'] or not (opt['val'] or {}).get('metrics'):
        raise ValueError(f'--opt {opt_path} has no validation/test set or no val:metrics to score --weights on.')
    opt['name'] = f"benchmark_{opt['name']}"
    opt.update(num_gpu=1 if device == 'cuda' else 0, dist=False, rank=0, world_size=1)
    opt['path'].update(pretrain_network_g=weights, strict_load_g=True)
    opt['val'].update(pbar=True, self_ensemble=self_ensemble or opt['val'].get('self_ensemble', False))
    derive_options(opt, root, is_train=False)
    return opt


def score(opt):
    """Build the model of ``opt`` (loading its weights) and validate it on each of its sets.

    Returns:
        tuple[WDSRModel, dict]: The model and ``{set name: {metric: mean}}``.
    """
    model = build_model(opt)
    mkdir_and_rename(opt['path']['results_root'])
    results = {}
    for ds_opt in opt['datasets'].values():
        loader = build_dataloader(build_dataset(ds_opt), ds_opt, num_gpu=opt['num_gpu'], dist=False)
        print(f"{opt['name']}: {ds_opt['name']} ({len(loader.dataset)} images)", file=sys.stderr)
        # images saved as the file says; a test file's (save_img: true) gets the results page, as test.py's does
        model.validation(loader, current_iter=opt['name'], tb_logger=None,
                         save_img=opt['val'].get('save_img', False))
        results[ds_opt['name']] = dict(model.metric_results)
    return model, results


def benchmark_row(opt_path, weights, lr_size, device, dtype, channels_last, compile_net, self_ensemble=False,
                  root='.', backends=('torch', ), rounds=10):
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
    metrics = None
    if weights:
        model, metrics = score(evaluation_options(opt_path, weights, device, self_ensemble, root))
        net = model.get_bare_model(model.net_g).cpu().eval()
    else:
        net = build_network(copy.deepcopy(dict(opt['network_g']))).eval()
    folded = fold_weight_norm(copy.deepcopy(net))
    h, w = lr_size
    x = torch.rand(1, opt['network_g'].get('num_in_ch', 3), h, w)
    macs = count_macs(folded, x)
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    peers = {b: make_runner(folded, b, x.shape[1]) for b in backends if b != 'torch'}
    reference, reference_x, reference_macs = reference_conv(h, w, device, dtype, channels_last)
    reference_ms, latency, unfolded, *peer_ms = interleaved_median_ms(
        [(reference, reference_x), (prepare_for_timing(folded, device, dtype, channels_last, compile_net), x),
         (prepare_for_timing(net, device, dtype, channels_last, compile_net), x)] +
        [(run, x.contiguous()) for run in peers.values()], device, runs=rounds)
    scale = opt['scale']
    gflops = 2 * macs / (latency / 1000) / 1e9
    reference_gflops = 2 * reference_macs / (reference_ms / 1000) / 1e9
    row = {
        'name': osp.splitext(osp.basename(opt_path))[0],
        'arch': opt['network_g']['type'],
        'scale': scale,
        'params_effective': count_parameters(net, 'effective'),
        'params_raw': count_parameters(net, 'raw'),
        'gmacs': macs / 1e9,
        'gmacs_720p': gmacs_for_output(folded, opt['scale'], x.shape[1]),
        'latency_ms': latency,
        'latency_unfolded_ms': unfolded,
        'mpix_per_s': h * scale * w * scale / 1e6 / (latency / 1000),
        'gflops': gflops,
        'reference_gflops': reference_gflops,
        'gflops_vs_conv': gflops / reference_gflops,
        'lr_size': [h, w],
        'device': device,
        'dtype': dtype,
        'channels_last': channels_last,
        'compile': compile_net,
    }
    if peers:
        with torch.no_grad():
            expected = folded(x)
            row['backends_max_diff'] = {b: float((run(x.contiguous()) - expected).abs().max()) for b, run in peers.items()}
        row['backends_ms'] = dict(torch=latency, **dict(zip(peers, peer_ms)))
        row['torch_vs_best_peer'] = latency / min(peer_ms)
    if weights:
        row['weights'] = weights
        row['metrics'] = metrics
    return row


def markdown(rows):
    """The table a user pastes into a paper."""
    lines = ['| name | arch | scale | params (effective) | params (raw) | GMACs | latency ms (folded / unfolded) '
             '| ms per GMAC | Mpix/s | GFLOP/s (vs 3x3 conv) |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f"| {r['name']} | {r['arch']} | x{r['scale']} | {r['params_effective'] / 1e6:.3f} M | "
                     f"{r['params_raw'] / 1e6:.3f} M | {r['gmacs']:.2f} | {r['latency_ms']:.1f} / "
                     f"{r['latency_unfolded_ms']:.1f} | {r['latency_ms'] / r['gmacs']:.2f} | {r['mpix_per_s']:.2f} | "
                     f"{r['gflops']:.1f} ({r['gflops_vs_conv'] * 100:.0f}%) |")
    first = rows[0]
    references = [r['reference_gflops'] for r in rows]
    lines.append('')
    lines.append(f"LR input {first['lr_size'][0]}x{first['lr_size'][1]}, {first['device']}, {first['dtype']}, "
                 f"channels-last {first['channels_last']}, compile {first['compile']}. The plain 3x3 64->64 conv, "
                 f'timed in the same rounds as each row, reached {min(references):.1f}-{max(references):.1f} '
                 f'GFLOP/s (median {statistics.median(references):.1f}); each row is compared with its own rounds. '
                 'Effective parameters: weight norm folded (as the paper counts); raw: trainable tensors.')
    compared = [r for r in rows if 'backends_ms' in r]
    if compared:
        lines += [''] + backend_table(compared)
    scored = [r for r in rows if 'metrics' in r]
    if scored:
        lines += [''] + paper_table(scored)
    return '\n'.join(lines) + '\n'


def backend_table(rows):
    """PyTorch against the other runtimes on the same folded network, as markdown lines."""
    names = list(dict.fromkeys(b for r in rows for b in r['backends_ms']))
    lines = ['| name | ' + ' | '.join(f'{b} ms' for b in names) + ' | torch / best peer | max diff from torch |',
             '|---|' + '---:|' * (len(names) + 2)]
    for r in rows:
        times = ' | '.join(f"{r['backends_ms'][b]:.1f}" if b in r['backends_ms'] else '-' for b in names)
        diff = max(r['backends_max_diff'].values())
        lines.append(f"| {r['name']} | {times} | {r['torch_vs_best_peer']:.2f} | {diff:.1e} |")
    first = rows[0]
    lines += ['', f"Medians of interleaved rounds in one run, LR input {first['lr_size'][0]}x{first['lr_size'][1]}, "
              'CPU, fp32, weight norm folded; ONNX Runtime and OpenVINO run the ONNX export (opset 17) of the same '
              'network (OpenVINO with INFERENCE_PRECISION_HINT f32). torch / best peer < 1: PyTorch is faster.']
    return lines


def _psnr_ssim_keys(metrics):
    """The PSNR and SSIM entries of a set's metrics: on Y where the option file computes them on Y."""
    psnr = 'psnr_y' if 'psnr_y' in metrics else 'psnr'
    ssim = 'ssim_y' if 'ssim_y' in metrics else 'ssim'
    return psnr, ssim


def paper_table(rows):
    """The table SR papers print, as markdown lines: a row per network and scale, a column per set.

    Args:
        rows (list[dict]): Rows with ``metrics``.

    Returns:
        list[str]
    """
    sets = list(dict.fromkeys(name for r in rows for name in r['metrics']))
    keys = sorted({key for r in rows for m in r['metrics'].values() for key in _psnr_ssim_keys(m) if key in m})
    lines = [
        '| network | scale | params | GMACs (1280x720) | ' + ' | '.join(sets) + ' |',
        '|---|---:|---:|---:|' + '---:|' * len(sets),
    ]
    for r in sorted(rows, key=lambda r: r['scale']):  # stable: networks keep the order given within a scale
        cells = []
        for name in sets:
            m = r['metrics'].get(name)
            if m is None:
                cells.append('-')
                continue
            psnr, ssim = _psnr_ssim_keys(m)
            cells.append(f"{m[psnr]:.2f} / {m[ssim]:.4f}" if ssim in m else f'{m[psnr]:.2f} / -')
        lines.append(f"| {r['name']} | x{r['scale']} | {r['params_effective'] / 1e6:.2f} M | {r['gmacs_720p']:.1f} | "
                     + ' | '.join(cells) + ' |')
    lines += ['', f"PSNR (dB) / SSIM ({', '.join(keys)} of each option file's val:metrics, whose crop_border they "
              'use; the test files compute them on Y with border = scale). Parameters with weight norm folded; '
              'GMACs of one forward to a 1280x720 output.']
    return lines


def plot(rows, out):
    """PSNR against parameters and against GMACs, one point per row (first validation set)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    scored = [r for r in rows if 'metrics' in r]
    if not scored:
        raise ValueError('--plot needs --weights: there is no PSNR to plot.')
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], 'params_effective', 'parameters (M, effective)'), (axes[1], 'gmacs',
                                                                                          'GMACs per forward')):
        for r in scored:
            value = r[key] / 1e6 if key == 'params_effective' else r[key]
            first = next(iter(r['metrics'].values()))
            psnr = first[_psnr_ssim_keys(first)[0]]
            ax.scatter(value, psnr)
            ax.annotate(r['name'], (value, psnr), fontsize=7, xytext=(3, 3), textcoords='offset points')
        ax.set_xlabel(label)
        ax.set_ylabel('PSNR (dB), first set')
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters, MACs, speed and PSNR/SSIM of networks from option files.')
    parser.add_argument('--opt', nargs='+', required=True, help='Option files (their network_g and val sets).')
    parser.add_argument('--weights', nargs='+', default=None,
                        help='Checkpoints, one per option file: PSNR/SSIM on its validation/test sets.')
    parser.add_argument('--self-ensemble', action='store_true', help='Score with the x8 self-ensemble.')
    parser.add_argument('--lr-size', nargs=2, type=int, default=[256, 256], metavar=('H', 'W'),
                        help='LR input size for MACs and timing. Default: 256 256.')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32', help='Autocast dtype. Default: fp32.')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true', help='torch.compile the networks before timing.')
    parser.add_argument('--backends', nargs='+', choices=BACKENDS, default=['torch'],
                        help='Runtimes to time on the same folded network (CPU, fp32): torch, onnxruntime, openvino '
                        '(optional extras). Default: torch.')
    parser.add_argument('--rounds', type=int, default=10, help='Timed rounds (medians are reported). Default: 10.')
    parser.add_argument('--json', default=None, help='Write the rows as a JSON list.')
    parser.add_argument('--markdown', default=None, help='Write the tables as markdown.')
    parser.add_argument('--plot', default=None, help='PNG of PSNR against parameters and GMACs (needs --weights).')
    args = parser.parse_args(argv)
    if args.weights is not None and len(args.weights) != len(args.opt):
        parser.error(f'--weights gives {len(args.weights)} checkpoints for {len(args.opt)} option files.')
    if args.rounds < 1:
        parser.error(f'--rounds {args.rounds}: at least 1 timed round is needed.')
    if set(args.backends) - {'torch'} and (args.device != 'cpu' or args.dtype != 'fp32' or args.compile):
        parser.error('--backends onnxruntime/openvino are compared on the CPU in fp32 without --compile: add '
                     '--device cpu (and no --dtype, --compile).')
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.backends.cudnn.benchmark = True
    h, w = args.lr_size
    rows = []
    try:
        for i, opt_path in enumerate(args.opt):
            weights = args.weights[i] if args.weights else None
            rows.append(benchmark_row(opt_path, weights, (h, w), args.device, args.dtype, args.channels_last,
                                      args.compile, args.self_ensemble, os.getcwd(), args.backends, args.rounds))
            print(f"{rows[-1]['name']}: {rows[-1]['latency_ms']:.1f} ms", file=sys.stderr)
        table = markdown(rows)
        if args.plot:
            plot(rows, args.plot)
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(table)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    if args.markdown:
        os.makedirs(osp.dirname(osp.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, 'w') as f:
            f.write(table)
    return 0
