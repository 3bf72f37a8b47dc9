"""Export (ONNX, TorchScript, safetensors): parity with PyTorch, atomic writes, refused inputs."""

import os

import numpy as np
import pytest
import torch

from helpers import SMALL_WDSR_B
from wdsr_basicsr.export import export
from wdsr_basicsr.loading import network_from_checkpoint


@pytest.mark.parametrize('fmt', ['torchscript', 'onnx'])
def test_export_matches_pytorch(checkpoint, tmp_path, fmt):
    output = tmp_path / f'net.{fmt}'
    diff = export(checkpoint, fmt, str(output))
    assert output.exists() and diff < 1e-4
    if fmt == 'onnx':  # dynamic batch, height and width, checked by an independent runtime
        import onnxruntime

        session = onnxruntime.InferenceSession(str(output), providers=['CPUExecutionProvider'])
        x = np.random.rand(3, 3, 13, 21).astype(np.float32)
        net, _ = network_from_checkpoint(checkpoint)
        with torch.no_grad():
            assert np.abs(session.run(None, {'lq': x})[0] - net(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_export_refuses_code_running_pickle(tmp_path):

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path / "pwned"}',))

    torch.save({'params': Evil(), 'network_g': SMALL_WDSR_B}, tmp_path / 'evil.pth')
    with pytest.raises(RuntimeError, match='refused'):
        export(str(tmp_path / 'evil.pth'), 'torchscript', str(tmp_path / 'x.pt'))
    assert not (tmp_path / 'pwned').exists()


@pytest.mark.parametrize('fmt', ['safetensors', 'onnx', 'torchscript'])
def test_a_failed_export_leaves_the_existing_file(checkpoint, tmp_path, monkeypatch, fmt):
    from wdsr_basicsr import export as export_module

    output = tmp_path / f'good.{fmt}'
    output.write_bytes(b'the good export from yesterday')
    monkeypatch.setattr(export_module, 'TOLERANCE', -1.0)  # every check fails
    with pytest.raises(RuntimeError, match='differs from PyTorch .* nothing was written'):
        export(checkpoint, fmt, str(output))
    assert output.read_bytes() == b'the good export from yesterday'
    assert sorted(os.listdir(tmp_path)) == sorted(['good.' + fmt, 'net.pth'])  # no temporary file left


@pytest.mark.parametrize('channels', [1, 4])
def test_export_feeds_the_network_its_own_channels(tmp_path, channels):
    from basicsr.archs import build_network

    network_g = dict(
        SMALL_WDSR_B, num_in_ch=channels, num_out_ch=channels, **({'rgb_mean': [0.5] * 4} if channels == 4 else {})
    )
    net = build_network(network_g)
    torch.save({'params': net.state_dict(), 'network_g': network_g}, tmp_path / 'net.pth')
    for fmt in ('onnx', 'torchscript', 'safetensors'):
        assert export(str(tmp_path / 'net.pth'), fmt, str(tmp_path / f'net.{fmt}')) < 1e-4


def test_export_onto_its_checkpoint_is_refused(checkpoint):
    with pytest.raises(ValueError, match='is the checkpoint itself'):
        export(checkpoint, 'torchscript', checkpoint)
