"""ONNX Runtime and OpenVINO run the same network as PyTorch: outputs, the inference CLI's --backend, the
benchmark's --backends, and the messages when a runtime is missing."""

import json

import cv2
import numpy as np
import pytest
import torch

import wdsr_basicsr.backends as backends
from helpers import OPTIONS, photo
from wdsr_basicsr.archs import RDN, WDSR_A, WDSR_B, fold_weight_norm
from wdsr_basicsr.benchmark.cli import main as benchmark_main
from wdsr_basicsr.inference import main as inference_main

NETS = {
    'wdsr_a': lambda: WDSR_A(num_feat=8, num_block=2, upscale=3),
    'wdsr_b': lambda: WDSR_B(num_feat=8, num_block=2, upscale=2, res_scale=0.5),
    'rdn': lambda: RDN(num_feat=8, num_block=2, num_layer=2, growth=4, upscale=4),
}


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
@pytest.mark.parametrize('name', sorted(NETS))
def test_runtimes_agree_with_pytorch(backend, name):
    torch.manual_seed(0)
    net = fold_weight_norm(NETS[name]()).eval()
    run = backends.make_runner(net, backend)
    for shape in ((1, 3, 13, 17), (2, 3, 20, 9)):  # any batch, height and width
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = net(x)
        got = run(x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2))  # a strided input too
        assert got.shape == expected.shape and (got - expected).abs().max() < 1e-4


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'net.pth'
    torch.save(
        {
            'params': WDSR_B(num_feat=8, num_block=2).state_dict(),
            'network_g': {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 2, 'upscale': 2},
        },
        path,
    )
    return str(path)


def test_cli_backends_give_the_same_image(checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 30, 26))
    outputs = {}
    for backend in ('torch', 'onnxruntime', 'openvino', 'auto'):
        out = tmp_path / backend
        assert (
            inference_main(
                [
                    '-i',
                    str(tmp_path / 'a.png'),
                    '-o',
                    str(out),
                    '--model_path',
                    checkpoint,
                    '--device',
                    'cpu',
                    '--backend',
                    backend,
                    '--tile',
                    '16',
                ]
            )
            == 0
        )
        outputs[backend] = cv2.imread(str(out / 'a.png')).astype(int)
    for backend, img in outputs.items():
        assert np.abs(img - outputs['torch']).max() <= 1, backend
    chosen = capsys.readouterr().out
    assert 'backend auto: torch ' in chosen and 'onnxruntime ' in chosen and 'openvino ' in chosen and ' -> ' in chosen


def infer_one_photo(tmp_path, checkpoint, *flags):
    """wdsr-inference on the CPU of one photograph written into ``tmp_path``; its exit status."""
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 20, 20))
    command = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--model_path', checkpoint, '--device', 'cpu']
    return inference_main(command + list(flags))


def test_missing_runtime_names_the_extra(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(backends, 'installed', lambda backend: backend != 'openvino')
    assert infer_one_photo(tmp_path, checkpoint, '--backend', 'openvino') == 2
    assert 'backend openvino is not installed: pip install "wdsr-basicsr[deploy]"' in capsys.readouterr().err
    assert (
        benchmark_main(
            [
                '--opt',
                str(OPTIONS / 'demo_wdsr_b_x2.yml'),
                '--lr-size',
                '8',
                '8',
                '--device',
                'cpu',
                '--backends',
                'torch',
                'openvino',
                '--rounds',
                '1',
            ]
        )
        == 1
    )
    assert 'pip install "wdsr-basicsr[deploy]"' in capsys.readouterr().err


def test_cpu_runtime_with_bf16_is_refused(checkpoint, tmp_path, capsys):
    assert infer_one_photo(tmp_path, checkpoint, '--backend', 'onnxruntime', '--bf16') == 2
    assert '--backend onnxruntime runs on the CPU in fp32' in capsys.readouterr().err


def test_benchmark_backend_table(tmp_path):
    out = tmp_path / 'rows.json'
    assert (
        benchmark_main(
            [
                '--opt',
                str(OPTIONS / 'demo_wdsr_b_x2.yml'),
                '--lr-size',
                '12',
                '16',
                '--device',
                'cpu',
                '--backends',
                'torch',
                'onnxruntime',
                'openvino',
                '--rounds',
                '2',
                '--json',
                str(out),
                '--markdown',
                str(tmp_path / 't.md'),
            ]
        )
        == 0
    )
    row = json.loads(out.read_text())[0]
    assert set(row['backends_ms']) == {'torch', 'onnxruntime', 'openvino'}
    assert row['backends_ms']['torch'] == row['latency_ms']
    assert row['torch_vs_best_peer'] == pytest.approx(
        row['latency_ms'] / min(row['backends_ms']['onnxruntime'], row['backends_ms']['openvino'])
    )
    assert max(row['backends_max_diff'].values()) < 1e-4
    assert '| demo_wdsr_b_x2 | ' in (tmp_path / 't.md').read_text().split('torch / best peer')[1]
