"""prepare_benchmarks: BasicSR's layout (GTmod12, LRbicx*) from folders or archives, faults named."""

import os
import tarfile
import zipfile

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

from helpers import photo
from wdsr_basicsr.prepare.benchmarks import main

SIZES = {'baby': ('astronaut', 61, 50), 'bird': ('coffee', 40, 37)}


def write(folder, crops):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, spec in crops.items():
        cv2.imwrite(str(folder / f'{stem}.png'), photo(*spec))


def benchmark_input(root):
    write(root / 'Set5' / 'HR', SIZES)  # EDSR's benchmark.tar layout
    write(root / 'zip_src', {'monarch': ('chelsea', 50, 49)})
    (root / 'zip_src' / 'broken.png').write_bytes(b'\x89PNG cut')
    with zipfile.ZipFile(root / 'Set14.zip', 'w') as z:  # an archive instead of a folder
        for p in (root / 'zip_src').iterdir():
            z.write(p, f'Set14/{p.name}')
    write(root / 'BSD100', {'3096': ('coffee', 30, 40), 'tiny': ('coffee', 11, 30)})  # another name for B100
    write(root / 'tar_src', {'ARMS': ('astronaut', 36, 24)})
    with tarfile.open(root / 'Manga109.tar.gz', 'w:gz') as t:
        t.add(root / 'tar_src' / 'ARMS.png', 'Manga109/ARMS.png')
    return root  # no Urban100


def test_layout_names_and_bicubic(tmp_path, capsys):
    src = benchmark_input(tmp_path / 'in')
    out = tmp_path / 'datasets'
    assert main(['--input', str(src), '--output', str(out)]) == 1  # Urban100 missing, two images left out
    err = capsys.readouterr().err
    assert 'Urban100: no images found' in err
    assert 'broken.png cannot be read as an image' in err and 'tiny.png is 30x11, smaller than 12 px' in err
    assert 'Set5: 2 images prepared, the benchmark has 5' in err
    assert sorted(os.listdir(out)) == ['B100', 'Manga109', 'Set14', 'Set5']
    assert sorted(os.listdir(out / 'Set5')) == ['GTmod12', 'LRbicx2', 'LRbicx3', 'LRbicx4']
    assert sorted(os.listdir(out / 'Set5' / 'GTmod12')) == ['baby.png', 'bird.png']
    assert os.listdir(out / 'Set14' / 'LRbicx3') == ['monarch.png'] and os.listdir(out / 'B100' / 'GTmod12') == [
        '3096.png'
    ]
    gt = cv2.imread(str(out / 'Set5' / 'GTmod12' / 'baby.png'))
    assert gt.shape == (60, 48, 3) and np.array_equal(gt, photo('astronaut', 61, 50)[:60, :48])  # mod-12 crop
    for s in (2, 3, 4):
        lr = cv2.imread(str(out / 'Set5' / f'LRbicx{s}' / 'baby.png'))
        expected = np.clip(np.round(imresize(gt / 255.0, 1 / s) * 255), 0, 255).astype(
            np.uint8
        )  # basicsr's MATLAB bicubic
        assert lr.shape == (60 // s, 48 // s, 3) and np.array_equal(lr, expected)
    # a rerun keeps what is done
    stamp = (out / 'Set5' / 'GTmod12' / 'baby.png').stat().st_mtime_ns
    main(['--input', str(src), '--output', str(out)])
    assert (out / 'Set5' / 'GTmod12' / 'baby.png').stat().st_mtime_ns == stamp
    assert not [n for n in os.listdir(out) if n.startswith('.')]  # no temporary folder left


def test_archive_member_outside_is_refused(tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    write(tmp_path / 'x', {'evil': ('coffee', 24, 24)})
    with zipfile.ZipFile(src / 'Set5.zip', 'w') as z:
        z.write(tmp_path / 'x' / 'evil.png', '../../evil.png')
    assert main(['--input', str(src), '--output', str(tmp_path / 'out'), '--sets', 'Set5']) == 1
    assert 'would be written outside' in capsys.readouterr().err
    assert not (tmp_path / 'evil.png').exists()


def test_test_entry_reports_every_set(tmp_path, monkeypatch):
    import sys

    import torch
    from basicsr.archs import build_network

    from helpers import OPTIONS, TEST, make_lmdbs, run, write_options
    from wdsr_basicsr.options import load_options
    from wdsr_basicsr.prepare.benchmarks import SETS

    src = tmp_path / 'in'
    for name in SETS:
        write(src / name, {'img': ('coffee', 40, 52)})
    out = tmp_path / 'datasets'
    assert main(['--input', str(src), '--output', str(out), '--scales', '3']) == 0  # partial sets only warn
    div2k = make_lmdbs(tmp_path / 'DIV2K', (3,))
    opt = load_options(OPTIONS / 'test_wdsr_a_x3.yml')
    opt['num_gpu'] = 0
    opt['network_g'].update(num_feat=8, num_block=1)
    for dataset in opt['datasets'].values():  # only the roots move
        if dataset['io_backend']['type'] == 'disk':
            dataset['dataroot_gt'] = dataset['dataroot_gt'].replace('datasets', str(out), 1)
            dataset['dataroot_lq'] = dataset['dataroot_lq'].replace('datasets', str(out), 1)
        else:
            dataset['dataroot_gt'] = dataset['dataroot_gt'].replace('datasets/DIV2K', str(div2k), 1)
            dataset['dataroot_lq'] = dataset['dataroot_lq'].replace('datasets/DIV2K', str(div2k), 1)
    weights = tmp_path / 'net.pth'
    torch.save({'params': build_network(dict(opt['network_g'])).state_dict()}, weights)
    opt['path']['pretrain_network_g'] = str(weights)
    result = run([sys.executable, TEST, '-opt', write_options(tmp_path / 't.yml', opt)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'results' / 'test_wdsr_a_x3').glob('test_*.log')).read_text()
    for name in list(SETS) + ['DIV2K_valid']:
        assert f'Validation {name}\n\t # psnr_y: ' in log and '# ssim_y: ' in log.split(f'Validation {name}')[1]
        assert (tmp_path / 'results' / 'test_wdsr_a_x3' / f'metrics_{name}.json').exists()
    # the benchmark's paper table from the same file and weights: the figures test.py wrote, every set a column
    import json

    from wdsr_basicsr.benchmark.cli import main as benchmark_main

    monkeypatch.chdir(tmp_path / 'in')  # results/benchmark_... go under the working directory
    assert (
        benchmark_main(
            [
                '--opt',
                str(tmp_path / 't.yml'),
                '--weights',
                str(weights),
                '--lr-size',
                '8',
                '8',
                '--device',
                'cpu',
                '--json',
                str(tmp_path / 'rows.json'),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / 'rows.json').read_text())[0]
    assert list(row['metrics']) == list(SETS) + ['DIV2K_valid']
    for name, metrics in row['metrics'].items():
        tested = json.loads((tmp_path / 'results' / 'test_wdsr_a_x3' / f'metrics_{name}.json').read_text())
        assert metrics == tested['mean']
    # both wrote the results page of every set (the shipped test file saves its images)
    for page in (tmp_path / 'results' / 'test_wdsr_a_x3', tmp_path / 'in' / 'results' / 'benchmark_test_wdsr_a_x3'):
        text = (page / 'index.html').read_text()
        assert all(f'"name": "{name}"' in text for name in list(SETS) + ['DIV2K_valid'])


def test_nothing_merged_nothing_lost_and_reruns_complete(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / 'in'
    write(src / 'Set5', {'a': ('coffee', 24, 24), 'b': ('chelsea', 24, 24)})
    cv2.imwrite(str(src / 'Set5' / 'a.jpg'), photo('astronaut', 24, 24))  # a.png and a.jpg: one output name
    pages = [Image.fromarray(photo('coffee', 24, 24)[:, :, ::-1]) for _ in range(2)]
    pages[0].save(src / 'Set5' / 'pages.tif', save_all=True, append_images=pages[1:])  # a multi-page file
    zip_src = tmp_path / 'z'
    write(zip_src, {'c': ('coffee', 24, 24)})
    (src / 'Set14.zip').write_bytes(b'PK\x03\x04 cut short')  # a corrupt archive
    out = tmp_path / 'datasets'
    (out / '.extract_leftover' / 'Set5').mkdir(parents=True)  # left by a killed run
    (out / '.B100.k2x9.partial').mkdir()  # a set half written (files.written_aside's name)
    assert main(['--input', str(src), '--output', str(out), '--scales', '2', '--sets', 'Set5', 'Set14']) == 1
    captured = capsys.readouterr()
    assert f'{src / "Set5" / "a.jpg"} and {src / "Set5" / "a.png"} would both be written as a.png' in captured.err
    assert 'pages.tif holds 2 frames' in captured.err
    assert 'Set5: 1 images prepared, the benchmark has 5' in captured.err
    assert f'Set14: {src / "Set14.zip"} cannot be read (BadZipFile' in captured.err
    assert os.listdir(out / 'Set5' / 'GTmod12') == ['b.png']
    assert 'Removed' in captured.out and sorted(os.listdir(out)) == ['Set5']
    # a rerun with more scales completes the set from its GTmod12
    assert main(['--input', str(src), '--output', str(out), '--scales', '2', '3', '--sets', 'Set5']) == 0
    assert 'Set5: ' + str(out / 'Set5') + ' exists; added LRbicx3.' in capsys.readouterr().out
    gt = cv2.imread(str(out / 'Set5' / 'GTmod12' / 'b.png'))
    expected = np.clip(np.round(imresize(gt / 255.0, 1 / 3) * 255), 0, 255).astype(np.uint8)
    assert np.array_equal(cv2.imread(str(out / 'Set5' / 'LRbicx3' / 'b.png')), expected)


def test_output_equal_to_input_is_refused(tmp_path, capsys):
    write(tmp_path / 'Set5', {'a': ('coffee', 24, 24)})
    assert main(['--input', str(tmp_path), '--output', str(tmp_path), '--sets', 'Set5']) == 1
    assert 'is the --input folder' in capsys.readouterr().err
    assert os.listdir(tmp_path / 'Set5') == ['a.png']
