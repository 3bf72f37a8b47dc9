"""Benchmark and reproduction commands: MACs by hand, rows, tables, plots, metrics against basicsr."""

import json

import pytest
import torch
import yaml
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from wdsr_basicsr.archs import WDSR_A, WDSR_B, fold_weight_norm
from wdsr_basicsr.benchmark.cli import main as benchmark_main
from wdsr_basicsr.benchmark.measure import count_macs
from wdsr_basicsr.data import CheckedPairedImageDataset


def test_macs_by_hand():
    h, w = 10, 12
    # WDSR-B, 32 features, x6, 25 low-rank, 2 blocks, x2: per LR pixel
    block = 32 * 192 + 192 * 25 + 25 * 32 * 9
    per_pixel = 3 * 32 * 9 + 2 * block + 32 * 12 * 9 + 3 * 12 * 25
    assert count_macs(WDSR_B(num_feat=32, num_block=2), torch.rand(1, 3, h, w)) == per_pixel * h * w
    per_pixel = 3 * 8 * 9 + 3 * (8 * 16 * 9 * 2) + 8 * 27 * 9 + 3 * 27 * 25
    assert (
        count_macs(WDSR_A(num_feat=8, num_block=3, expansion=2, upscale=3), torch.rand(1, 3, h, w)) == per_pixel * h * w
    )


def options(root, tmp_path, name):
    opt = {
        'name': name,
        'model_type': 'WDSRModel',
        'scale': 2,
        'num_gpu': 0,
        'datasets': {
            'val': {
                'name': 'fixture_valid',
                'type': 'CheckedPairedImageDataset',
                'dataroot_gt': str(root / 'DIV2K_valid_HR.lmdb'),
                'dataroot_lq': str(root / 'DIV2K_valid_LR_bicubic_X2.lmdb'),
                'io_backend': {'type': 'lmdb'},
            }
        },
        'network_g': {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 2, 'upscale': 2},
        'path': {},
        'val': {
            'save_img': False,
            'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': False},
                'psnr_y': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True},
                'ssim_y': {'type': 'calculate_ssim', 'crop_border': 2, 'test_y_channel': True},
            },
        },
    }
    path = tmp_path / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt))
    return str(path), opt


def test_rows_tables_plot_and_metrics(lmdb_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    opt_a, opt = options(lmdb_root, tmp_path, 'bench_a')
    opt_b, _ = options(lmdb_root, tmp_path, 'bench_b')
    torch.manual_seed(0)
    net = WDSR_B(num_feat=8, num_block=2)
    torch.save({'params': net.state_dict(), 'network_g': opt['network_g']}, tmp_path / 'w.pth')
    out = tmp_path / 'out'
    code = benchmark_main(
        [
            '--opt',
            opt_a,
            opt_b,
            '--weights',
            str(tmp_path / 'w.pth'),
            str(tmp_path / 'w.pth'),
            '--lr-size',
            '16',
            '20',
            '--device',
            'cpu',
            '--json',
            str(out / 'rows.json'),
            '--markdown',
            str(out / 'table.md'),
            '--plot',
            str(out / 'plot.png'),
        ]
    )
    assert code == 0
    assert 'benchmark_bench_a: fixture_valid (1 images)' in capsys.readouterr().err  # progress
    rows = json.loads((out / 'rows.json').read_text())
    assert [r['name'] for r in rows] == ['bench_a', 'bench_b']
    row = rows[0]
    for key in (
        'arch',
        'scale',
        'params_effective',
        'params_raw',
        'gmacs',
        'latency_ms',
        'latency_unfolded_ms',
        'mpix_per_s',
    ):
        assert key in row
    assert row['params_raw'] - row['params_effective'] == 8 + 2 * (48 + 6 + 8) + 12 + 12  # one g per output channel
    assert row['mpix_per_s'] == pytest.approx(32 * 40 / 1e6 / (row['latency_ms'] / 1000))
    assert row['gflops'] == pytest.approx(2 * row['gmacs'] / (row['latency_ms'] / 1000))
    assert row['gflops_vs_conv'] == pytest.approx(row['gflops'] / row['reference_gflops'])
    # MACs for a 1280x720 output by hand: WDSR-B 8 features, x6 (48), low rank 6, 2 blocks, x2
    per_pixel = 3 * 8 * 9 + 2 * (8 * 48 + 48 * 6 + 6 * 8 * 9) + 8 * 12 * 9 + 3 * 12 * 25
    assert row['gmacs_720p'] == pytest.approx(per_pixel * 640 * 360 / 1e9)
    # PSNR/SSIM as basicsr computes them on the plain network's output
    dataset = CheckedPairedImageDataset(dict(opt['datasets']['val'], phase='val', scale=2))
    item = dataset[0]
    with torch.no_grad():
        sr = tensor2img([fold_weight_norm(net).eval()(item['lq'][None])])
    gt = tensor2img([item['gt'][None]])
    metrics = row['metrics']['fixture_valid']
    assert metrics['psnr'] == pytest.approx(calculate_psnr(sr, gt, 2), abs=1e-3)
    assert metrics['psnr_y'] == pytest.approx(calculate_psnr(sr, gt, 2, test_y_channel=True), abs=1e-3)
    assert metrics['ssim_y'] == pytest.approx(calculate_ssim(sr, gt, 2, test_y_channel=True), abs=1e-4)
    # scored by the model's validation, which writes the per-image figures of a test run
    saved = json.loads((tmp_path / 'results' / 'benchmark_bench_a' / 'metrics_fixture_valid.json').read_text())
    assert saved['mean']['psnr_y'] == pytest.approx(metrics['psnr_y'])
    table = (out / 'table.md').read_text()
    assert '| bench_a | WDSR_B | x2 |' in table
    assert '| network | scale | params | GMACs (1280x720) | fixture_valid |' in table
    assert (
        f'| bench_b | x2 | 0.00 M | {row["gmacs_720p"]:.1f} | {metrics["psnr_y"]:.2f} / {metrics["ssim_y"]:.4f} |'
        in table
    )
    assert (out / 'plot.png').read_bytes()[:4] == b'\x89PNG'


def test_weights_need_a_set_to_score(lmdb_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    opt_a, opt = options(lmdb_root, tmp_path, 'bench_a')
    del opt['datasets']['val']
    opt['datasets']['train'] = {'name': 'x', 'type': 'CheckedPairedImageDataset'}
    (tmp_path / 'bench_a.yml').write_text(yaml.safe_dump(opt))
    torch.save({'params': WDSR_B(num_feat=8, num_block=2).state_dict()}, tmp_path / 'w.pth')
    assert benchmark_main(['--opt', opt_a, '--weights', str(tmp_path / 'w.pth'), '--device', 'cpu']) == 1
    assert 'no validation/test set' in capsys.readouterr().err


def test_plot_without_weights_is_refused(lmdb_root, tmp_path, capsys):
    opt_a, _ = options(lmdb_root, tmp_path, 'bench_a')
    assert (
        benchmark_main(['--opt', opt_a, '--lr-size', '8', '8', '--device', 'cpu', '--plot', str(tmp_path / 'p.png')])
        == 1
    )
    assert '--plot needs --weights' in capsys.readouterr().err
