"""Inference CLI: what the input is, is what comes out; outputs planned before any work; failures per image."""

import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from helpers import SMALL_WDSR_B, photo
from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.inference import main as inference_main
from wdsr_basicsr.loading import network_from_checkpoint
from wdsr_basicsr.utils.image_io import read_image


def infer(checkpoint, src, out, *extra):
    return inference_main(['-i', str(src), '-o', str(out), '--model_path', checkpoint, '--device', 'cpu', *extra])


def test_keeps_what_the_input_is(checkpoint, tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    rgb = photo('astronaut', 30, 26)
    cv2.imwrite(str(src / 'rgb.jpg'), rgb)
    cv2.imwrite(str(src / 'rgb8.png'), rgb)
    cv2.imwrite(str(src / 'gray.png'), cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(src / 'deep.png'), rgb.astype(np.uint16) * 257)
    alpha = np.tile(np.linspace(0, 255, 26, dtype=np.uint8), (30, 1))
    cv2.imwrite(str(src / 'rgba.png'), np.dstack([rgb, alpha]))
    (src / 'broken.png').write_bytes(b'\x89PNG not really')
    out = tmp_path / 'out'
    assert infer(checkpoint, src, out) == 1  # one file failed
    assert sorted(os.listdir(out)) == ['deep.png', 'gray.png', 'rgb.jpg', 'rgb8.png', 'rgba.png']
    res = {n: cv2.imread(str(out / n), cv2.IMREAD_UNCHANGED) for n in os.listdir(out)}
    assert res['rgb.jpg'].shape == (60, 52, 3) and res['rgb.jpg'].dtype == np.uint8
    assert res['gray.png'].shape == (60, 52) and res['gray.png'].dtype == np.uint8
    assert res['deep.png'].shape == (60, 52, 3) and res['deep.png'].dtype == np.uint16
    assert res['deep.png'].max() > 255  # really 16-bit values
    assert res['rgba.png'].shape == (60, 52, 4)
    assert np.array_equal(res['rgba.png'][:, :, 3], cv2.resize(alpha, (52, 60), interpolation=cv2.INTER_CUBIC))
    # same pixels stored as 8 and as 16 bit give the same result, up to the 8-bit rounding
    assert np.abs(res['deep.png'].astype(np.float64) / 257 - res['rgb8.png']).max() <= 0.51


def test_gray_alpha_in_gray_alpha_out(checkpoint, tmp_path):
    gray = cv2.cvtColor(photo('astronaut', 20, 18), cv2.COLOR_BGR2GRAY)
    alpha = np.tile(np.linspace(0, 255, 18, dtype=np.uint8), (20, 1))
    Image.fromarray(np.dstack([gray, alpha]), 'LA').save(tmp_path / 'ga.png')
    assert infer(checkpoint, tmp_path / 'ga.png', tmp_path / 'out') == 0
    with Image.open(tmp_path / 'out' / 'ga.png') as result:
        assert result.mode == 'LA' and result.size == (36, 40)
        assert np.array_equal(np.asarray(result)[:, :, 1], cv2.resize(alpha, (36, 40), interpolation=cv2.INTER_CUBIC))
        # the gray channel is what the gray image alone gives
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    assert infer(checkpoint, tmp_path / 'g.png', tmp_path / 'out') == 0
    with Image.open(tmp_path / 'out' / 'ga.png') as result:
        assert np.array_equal(np.asarray(result)[:, :, 0], cv2.imread(str(tmp_path / 'out' / 'g.png'), 0))


def folder_of_photos(folder):
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), photo('astronaut', 12, 10))
    cv2.imwrite(str(folder / 'b.jpg'), photo('coffee', 12, 10))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_inputs_are_never_written_over(checkpoint, tmp_path, capsys):
    src = tmp_path / 'photos'
    before = folder_of_photos(src)
    assert infer(checkpoint, src, src) == 2
    assert 'would replace the input' in capsys.readouterr().err
    assert infer(checkpoint, src, src, '--overwrite') == 2  # not even with --overwrite
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    assert infer(checkpoint, src, src, '--suffix', 'x2') == 0  # names that cannot collide: allowed
    assert sorted(p.name for p in src.iterdir()) == ['a.png', 'a_x2.png', 'b.jpg', 'b_x2.jpg']
    assert all((src / n).read_bytes() == data for n, data in before.items())


def test_output_collisions_found_before_any_work(checkpoint, tmp_path, capsys):
    src = tmp_path / 'photos'
    folder_of_photos(src)
    cv2.imwrite(str(src / 'a.jpg'), photo('chelsea', 12, 10))  # a.png and a.jpg
    assert infer(checkpoint, src, tmp_path / 'out', '--ext', 'png') == 2
    err = capsys.readouterr().err
    assert 'a.jpg' in err and 'a.png' in err and 'would both be written to' in err
    assert not (tmp_path / 'out').exists()  # nothing written


def test_existing_outputs_need_overwrite(checkpoint, tmp_path, capsys):
    src = tmp_path / 'photos'
    folder_of_photos(src)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'an earlier result')
    assert infer(checkpoint, src, out) == 2
    assert (
        '1 output(s) exist already' in capsys.readouterr().err and (out / 'a.png').read_bytes() == b'an earlier result'
    )
    assert infer(checkpoint, src, out, '--overwrite') == 0
    assert cv2.imread(str(out / 'a.png')).shape == (24, 20, 3)


def test_unreadable_file_named(checkpoint, tmp_path, capsys):
    (tmp_path / 'bad.png').write_bytes(b'nothing')
    assert infer(checkpoint, tmp_path / 'bad.png', tmp_path / 'out') == 1
    captured = capsys.readouterr()
    assert 'bad.png' in captured.out + captured.err


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_like_pil(tmp_path, orientation):
    pil = Image.fromarray(photo('chelsea', 12, 17)[:, :, ::-1].copy())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / 'o.png'
    pil.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))[:, :, ::-1]
    assert np.array_equal(read_image(str(path)), expected)


def test_tiles_equal_whole_image_within_one_grey_level(checkpoint, tmp_path):
    cv2.imwrite(str(tmp_path / 'big.png'), photo('coffee', 41, 57))
    assert infer(checkpoint, tmp_path / 'big.png', tmp_path / 'whole') == 0
    assert infer(checkpoint, tmp_path / 'big.png', tmp_path / 'tiled', '--tile', '16') == 0
    whole = cv2.imread(str(tmp_path / 'whole' / 'big.png')).astype(int)
    tiled = cv2.imread(str(tmp_path / 'tiled' / 'big.png')).astype(int)
    assert np.abs(whole - tiled).max() <= 1


def test_ensemble_suffix_ext_and_bf16(checkpoint, tmp_path):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 20, 24))
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'o', '--ensemble', '--suffix', 'x2', '--ext', 'jpg') == 0
    assert os.listdir(tmp_path / 'o') == ['a_x2.jpg']
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'fp32') == 0
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'bf16', '--bf16') == 0
    fp32 = cv2.imread(str(tmp_path / 'fp32' / 'a.png')).astype(int)
    bf16 = cv2.imread(str(tmp_path / 'bf16' / 'a.png')).astype(int)
    assert np.abs(fp32 - bf16).mean() < 3


def test_checkpoint_without_network_needs_opt(tmp_path, capsys):
    net = WDSR_B(num_feat=8, num_block=2, upscale=2)
    old = {k: v for k, v in net.state_dict().items() if k not in ('mean', 'img_range', 'res_scale')}
    torch.save({'params_ema': old}, tmp_path / 'bare.pth')  # saved before the settings were kept
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 10, 12))
    assert infer(str(tmp_path / 'bare.pth'), tmp_path / 'a.png', tmp_path / 'o') == 2
    assert 'pass the option file it was trained with as --opt' in capsys.readouterr().err
    (tmp_path / 'opt.yml').write_text('network_g:\n  type: WDSR_B\n  num_feat: 8\n  num_block: 2\n  upscale: 2\n')
    assert (
        infer(str(tmp_path / 'bare.pth'), tmp_path / 'a.png', tmp_path / 'o', '--opt', str(tmp_path / 'opt.yml')) == 0
    )


def test_tiled_upscale_holds_no_whole_image_in_floats(checkpoint):
    import tracemalloc

    from wdsr_basicsr.inference import upscale_image

    net, _ = network_from_checkpoint(checkpoint)
    img = photo('astronaut', 96, 80)
    tracemalloc.start()
    out = upscale_image(img, net, 2, tile=16, tile_pad=6)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the uint8 result (46 KB) and per-tile buffers; one float copy of the output alone would be 4 x 46 KB
    assert peak < 1.5 * out.nbytes, (peak, out.nbytes)
    # the network's own output on the whole image, converted by hand: RGB in [0, 1], rounded, back to BGR
    x = torch.from_numpy(img[:, :, ::-1].astype(np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expected = (net(x)[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()[:, :, ::-1]
    assert out.dtype == np.uint8 and np.abs(out.astype(float) - expected).max() <= 1


def test_a_failing_image_is_skipped_and_summarised(checkpoint, tmp_path, monkeypatch, capsys):
    import wdsr_basicsr.inference as inference

    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), photo('coffee', 20, 24))
    cv2.imwrite(str(src / 'huge.png'), photo('coffee', 30, 24))
    real = inference.sr_forward

    def forward(net, x, *args, **kwargs):
        if x.shape[-2] == 30:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 9.00 GiB')
        return real(net, x, *args, **kwargs)

    monkeypatch.setattr(inference, 'sr_forward', forward)
    assert infer(checkpoint, src, tmp_path / 'out') == 1
    assert os.listdir(tmp_path / 'out') == ['a.png']
    captured = capsys.readouterr()
    assert '1 of 2 images written' in captured.out
    assert f'1 failed:\n  {src / "huge.png"}: CUDA out of memory' in captured.err and '--tile' in captured.err


def test_tile_smaller_than_the_receptive_field_is_refused(checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 20, 24))
    # WDSR-B, 2 blocks: radius 1 (head 3x3) + 2 x 1 (a 3x3 per block) + 1 (tail 3x3) + 2 (skip 5x5, summed as
    # the bound does) = 6, so the receptive field is 13 px across
    smallest = 13
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'out', '--tile', str(smallest - 1)) == 2
    assert f'the smallest tile that works is --tile {smallest}' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'out', '--tile', str(smallest)) == 0


# ---------------------------------------------------------------- hostile input: a message, the rest done


def write_png_16bit_gray_alpha(path, h=6, w=5):
    """A 16-bit gray + alpha PNG, written byte by byte (colour type 4), as other tools write them."""
    import struct
    import zlib

    row = np.stack([np.full(w, 1000, '>u2'), np.full(w, 65535, '>u2')], 1).tobytes()
    raw = b''.join(b'\x00' + row for _ in range(h))

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 4, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(raw))
        + chunk(b'IEND', b'')
    )


def test_frames_and_bit_depths_that_cannot_be_kept_are_refused_by_name(checkpoint, tmp_path, capsys):
    frames = [Image.fromarray(photo('coffee', 12, 10)[:, :, ::-1] // (i + 1)) for i in range(3)]
    frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
    assert infer(checkpoint, tmp_path / 'anim.gif', tmp_path / 'out') == 1
    assert 'anim.gif: holds 3 frames (an animation' in capsys.readouterr().err
    src = tmp_path / 'in'
    src.mkdir()
    write_png_16bit_gray_alpha(src / 'ga16.png')
    cv2.imwrite(str(src / 'ok.png'), photo('coffee', 12, 10))
    assert infer(checkpoint, src, tmp_path / 'out') == 1
    assert 'ga16.png: is 16-bit gray with alpha' in capsys.readouterr().err
    assert os.listdir(tmp_path / 'out') == ['ok.png']


def test_nan_settings_in_a_checkpoint_are_refused(tmp_path, capsys):
    net = WDSR_B(num_feat=8, num_block=2, upscale=2)
    state = net.state_dict()
    state['img_range'] = torch.tensor(float('nan'))
    torch.save({'params': state, 'network_g': SMALL_WDSR_B}, tmp_path / 'nan.pth')
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 12, 10))
    assert infer(str(tmp_path / 'nan.pth'), tmp_path / 'a.png', tmp_path / 'out') == 2
    assert 'img_range hold NaN or infinite values' in capsys.readouterr().err and not (tmp_path / 'out').exists()


def test_an_onnxruntime_failure_skips_the_image_only(checkpoint, tmp_path, capsys, monkeypatch):
    """ONNX Runtime's errors are not RuntimeError: out of memory on one image must not end the run."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    from wdsr_basicsr import inference

    real = inference.upscale_image

    def upscale(img, *args, **kwargs):
        if img.shape[0] == 14:
            raise RuntimeException('[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad_alloc')
        return real(img, *args, **kwargs)

    monkeypatch.setattr(inference, 'upscale_image', upscale)
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'big.png'), photo('coffee', 14, 10))
    cv2.imwrite(str(src / 'small.png'), photo('coffee', 12, 10))
    assert infer(checkpoint, src, tmp_path / 'out', '--backend', 'onnxruntime') == 1
    assert 'big.png: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad_alloc (out of memory' in capsys.readouterr().err
    assert os.listdir(tmp_path / 'out') == ['small.png']


def test_a_write_failure_skips_the_image_only(checkpoint, tmp_path, capsys, monkeypatch):
    from wdsr_basicsr import inference

    real = inference.write_image

    def write(path, img):
        if img.ndim == 3 and img.shape[2] == 2:
            raise OSError(28, 'No space left on device')
        return real(path, img)

    monkeypatch.setattr(inference, 'write_image', write)
    src = tmp_path / 'in'
    src.mkdir()
    gray = cv2.cvtColor(photo('coffee', 12, 10), cv2.COLOR_BGR2GRAY)
    Image.fromarray(np.dstack([gray, gray]), 'LA').save(src / 'ga.png')
    cv2.imwrite(str(src / 'rgb.png'), photo('coffee', 12, 10))
    assert infer(checkpoint, src, tmp_path / 'out') == 1
    assert 'ga.png: [Errno 28] No space left on device' in capsys.readouterr().err
    assert os.listdir(tmp_path / 'out') == ['rgb.png']


@pytest.mark.parametrize(
    'extra, message',
    [
        (('--tile_pad', '-1'), '--tile_pad -1: the context around a tile is 0 or more pixels'),
        (('--tile', '-8'), '--tile -8: a tile size is 0'),
    ],
)
def test_bad_flags_named_before_the_model_loads(checkpoint, tmp_path, capsys, extra, message):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 12, 10))
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'out', *extra) == 2
    assert message in capsys.readouterr().err and not (tmp_path / 'out').exists()


def test_output_that_is_a_file_is_named(checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 12, 10))
    (tmp_path / 'taken').write_text('a file')
    for out in (tmp_path / 'taken', tmp_path / 'taken' / 'below'):
        assert infer(checkpoint, tmp_path / 'a.png', out) == 2
        assert f'{tmp_path / "taken"} is a file; -o names a folder' in capsys.readouterr().err


@pytest.mark.parametrize(
    'network_g, message',
    [
        (
            {
                'type': 'RRDBNet',
                'num_in_ch': 3,
                'num_out_ch': 3,
                'num_feat': 8,
                'num_block': 1,
                'num_grow_ch': 4,
                'scale': 2,
            },
            None,
        ),
        (
            {
                'type': 'WDSR_B',
                'num_in_ch': 4,
                'num_out_ch': 4,
                'num_feat': 8,
                'num_block': 1,
                'upscale': 2,
                'rgb_mean': [0.5] * 4,
            },
            'the network takes 4 and gives 4 channels; images are upscaled by networks of gray (1) '
            'or colour (3) channels',
        ),
        (
            dict(SMALL_WDSR_B, num_feats=8),
            "does not fit WDSR_B: WDSR_B.__init__() got an unexpected keyword argument 'num_feats'",
        ),
    ],
)
def test_networks_inference_cannot_run_are_named(tmp_path, capsys, network_g, message):
    from basicsr.archs import build_network

    net = build_network(dict(network_g, num_feat=8) if 'num_feats' not in network_g else SMALL_WDSR_B)
    torch.save({'params': net.state_dict(), 'network_g': network_g}, tmp_path / 'net.pth')
    cv2.imwrite(str(tmp_path / 'a.png'), photo('coffee', 12, 10))
    code = infer(str(tmp_path / 'net.pth'), tmp_path / 'a.png', tmp_path / 'out', '--backend', 'torch')
    if message is None:  # RRDBNet says `scale`, not `upscale`
        assert code == 0 and cv2.imread(str(tmp_path / 'out' / 'a.png')).shape == (24, 20, 3)
    else:
        assert code == 2 and message in capsys.readouterr().err


def test_png_and_jpg_of_one_stem_keep_their_formats(checkpoint, tmp_path):
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'x.png'), photo('coffee', 12, 10))
    cv2.imwrite(str(src / 'x.jpg'), photo('chelsea', 12, 10))
    assert infer(checkpoint, src, tmp_path / 'out') == 0
    assert sorted(os.listdir(tmp_path / 'out')) == ['x.jpg', 'x.png']


def test_rerun_into_the_input_folder_with_a_suffix(checkpoint, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), photo('coffee', 12, 10))
    assert infer(checkpoint, src, src, '--suffix', 'x2') == 0
    assert infer(checkpoint, src, src, '--suffix', 'x2') == 2  # the earlier result is not an input, it is kept
    assert '1 output(s) exist already' in capsys.readouterr().err
    assert infer(checkpoint, src, src, '--suffix', 'x2', '--overwrite') == 0
    assert sorted(os.listdir(src)) == ['a.png', 'a_x2.png']


def test_real_esrgan_s_flags_mean_the_same(checkpoint, tmp_path, capsys):
    """inference_realesrgan.py -i in -o out -s 2 -t 16 --suffix out: the same words work; -s 4 on an x2 network is
    one line before any work (WDSR does not resample its output)."""
    src = tmp_path / 'in'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), photo('astronaut', 30, 26))
    (src / 'anim.gif').write_bytes(b'GIF89a')  # not read in a folder: named
    (src / 'notes.txt').write_text('x')
    assert infer(checkpoint, src, tmp_path / 'out', '-s', '2', '-t', '16', '--suffix', 'out') == 0
    err = capsys.readouterr().err
    assert f'left out {src / "anim.gif"}: not one of the image types read' in err
    assert f'left out {src / "notes.txt"}: not one of the image types read' in err
    assert cv2.imread(str(tmp_path / 'out' / 'a_out.png')).shape == (60, 52, 3)
    assert infer(checkpoint, src, tmp_path / 'out4', '-s', '4') == 2
    assert 'error: -s/--outscale 4: the network of --model_path' in capsys.readouterr().err
    assert not (tmp_path / 'out4').exists()


def test_tiles_show_their_count(checkpoint, tmp_path, capsys):
    """A tiled image shows a bar of its tiles: 40x30 input, --tile 16 gives ceil(40/16) x ceil(30/16) = 6 tiles."""
    cv2.imwrite(str(tmp_path / 'a.png'), photo('astronaut', 40, 30))
    assert infer(checkpoint, tmp_path / 'a.png', tmp_path / 'out', '--tile', '16') == 0
    bars = [line for line in capsys.readouterr().err.replace('\r', '\n').splitlines() if 'tile' in line]
    assert any('/6 [' in line for line in bars), bars  # n/6 tiles with its rate and ETA
