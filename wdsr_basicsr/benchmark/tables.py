"""The benchmark's rows as the tables and plot a paper prints."""

from __future__ import annotations

import os
import statistics
from os import path as osp


def markdown(rows: list[dict]) -> str:
    """The table a user pastes into a paper."""
    lines = [
        '| name | arch | scale | params (effective) | params (raw) | GMACs | latency ms (folded / unfolded) '
        '| ms per GMAC | Mpix/s | GFLOP/s (vs 3x3 conv) |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        lines.append(
            f'| {r["name"]} | {r["arch"]} | x{r["scale"]} | {r["params_effective"] / 1e6:.3f} M | '
            f'{r["params_raw"] / 1e6:.3f} M | {r["gmacs"]:.2f} | {r["latency_ms"]:.1f} / '
            f'{r["latency_unfolded_ms"]:.1f} | {r["latency_ms"] / r["gmacs"]:.2f} | {r["mpix_per_s"]:.2f} | '
            f'{r["gflops"]:.1f} ({r["gflops_vs_conv"] * 100:.0f}%) |'
        )
    first = rows[0]
    references = [r['reference_gflops'] for r in rows]
    lines.append('')
    lines.append(
        f'LR input {first["lr_size"][0]}x{first["lr_size"][1]}, {first["device"]}, {first["dtype"]}, '
        f'channels-last {first["channels_last"]}, compile {first["compile"]}. The plain 3x3 64->64 conv, '
        f'timed in the same rounds as each row, reached {min(references):.1f}-{max(references):.1f} '
        f'GFLOP/s (median {statistics.median(references):.1f}); each row is compared with its own rounds. '
        'Effective parameters: weight norm folded (as the paper counts); raw: trainable tensors.'
    )
    compared = [r for r in rows if 'backends_ms' in r]
    if compared:
        lines += [''] + backend_table(compared)
    scored = [r for r in rows if 'metrics' in r]
    if scored:
        lines += [''] + paper_table(scored)
    return '\n'.join(lines) + '\n'


def backend_table(rows: list[dict]) -> list[str]:
    """PyTorch against the other runtimes on the same folded network, as markdown lines."""
    names = list(dict.fromkeys(b for r in rows for b in r['backends_ms']))
    lines = [
        '| name | ' + ' | '.join(f'{b} ms' for b in names) + ' | torch / best peer | max diff from torch |',
        '|---|' + '---:|' * (len(names) + 2),
    ]
    for r in rows:
        times = ' | '.join(f'{r["backends_ms"][b]:.1f}' if b in r['backends_ms'] else '-' for b in names)
        diff = max(r['backends_max_diff'].values())
        lines.append(f'| {r["name"]} | {times} | {r["torch_vs_best_peer"]:.2f} | {diff:.1e} |')
    first = rows[0]
    lines += [
        '',
        f'Medians of interleaved rounds in one run, LR input {first["lr_size"][0]}x{first["lr_size"][1]}, '
        'CPU, fp32, weight norm folded; ONNX Runtime and OpenVINO run the ONNX export (opset 17) of the same '
        'network (OpenVINO with INFERENCE_PRECISION_HINT f32). torch / best peer < 1: PyTorch is faster.',
    ]
    return lines


def _psnr_ssim_keys(metrics):
    """The PSNR and SSIM entries of a set's metrics: on Y where the option file computes them on Y."""
    psnr = 'psnr_y' if 'psnr_y' in metrics else 'psnr'
    ssim = 'ssim_y' if 'ssim_y' in metrics else 'ssim'
    return psnr, ssim


def paper_table(rows: list[dict]) -> list[str]:
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
            cells.append(f'{m[psnr]:.2f} / {m[ssim]:.4f}' if ssim in m else f'{m[psnr]:.2f} / -')
        lines.append(
            f'| {r["name"]} | x{r["scale"]} | {r["params_effective"] / 1e6:.2f} M | {r["gmacs_720p"]:.1f} | '
            + ' | '.join(cells)
            + ' |'
        )
    lines += [
        '',
        f"PSNR (dB) / SSIM ({', '.join(keys)} of each option file's val:metrics, whose crop_border they "
        'use; the test files compute them on Y with border = scale). Parameters with weight norm folded; '
        'GMACs of one forward to a 1280x720 output.',
    ]
    return lines


def plot(rows: list[dict], out: str) -> None:
    """PSNR against parameters and against GMACs, one point per row (first validation set)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    scored = [r for r in rows if 'metrics' in r]
    if not scored:
        raise ValueError('--plot needs --weights: there is no PSNR to plot.')
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in (
        (axes[0], 'params_effective', 'parameters (M, effective)'),
        (axes[1], 'gmacs', 'GMACs per forward'),
    ):
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
