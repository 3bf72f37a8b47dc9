"""A user's folder of images prepared as training reads them: mixed formats, MATLAB bicubic, bad input in one line."""

import json

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from helpers import OPTIONS, photo
from wdsr_basicsr.options import load_options
from wdsr_basicsr.prepare import PreparationError
from wdsr_basicsr.prepare.folder import RECORD, prepare_folder

RECIPE = str(OPTIONS / 'train_wdsr_b_x2.yml')  # gt_size 96
SMALL = {'crop_size': 96, 'step': 48, 'workers': 2, 'recipe': RECIPE, 'scales': (2, 3)}


def mixed_folder(folder):
    """Photographs as a user has them: PNG colour, PNG gray, 16-bit PNG, JPEG, BMP, TIFF, WebP (sizes not
    multiples of 12)."""
    folder.mkdir()
    cv2.imwrite(str(folder / 'a_colour.png'), photo('astronaut', 130, 110))
    cv2.imwrite(str(folder / 'b_gray.png'), cv2.cvtColor(photo('coffee', 101, 125), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / 'c_16bit.png'), photo('chelsea', 110, 103).astype(np.uint16) * 257)
    cv2.imwrite(str(folder / 'd_photo.jpg'), photo('rocket', 120, 140), [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(folder / 'e_bitmap.bmp'), photo('coffee', 108, 99))
    cv2.imwrite(str(folder / 'f_scan.tif'), photo('astronaut', 99, 131))
    cv2.imwrite(str(folder / 'g_web.webp'), photo('chelsea', 100, 100), [cv2.IMWRITE_WEBP_QUALITY, 101])
    (folder / 'notes.txt').write_text('not an image')
    return folder


def test_a_mixed_folder_prepares_as_basicsr_reads_it(tmp_path):
    """Every image is what basicsr's OpenCV colour read gives; each LR is basicsr's MATLAB imresize of the HR
    cropped to the scale; the LMDBs hold every key; the option file is the recipe pointing here."""
    photos = mixed_folder(tmp_path / 'photos')
    out = tmp_path / 'prepared'
    written = prepare_folder([str(photos)], str(out), valid=2, **SMALL)
    assert written[0] == str(out) and written[1].endswith('train_wdsr_b_x2_prepared.yml')
    stems = sorted(p.stem for p in photos.iterdir() if p.suffix != '.txt')
    held = stems[-2:]
    for stem in stems:
        split = 'valid' if stem in held else 'train'
        source = next(p for p in photos.iterdir() if p.stem == stem)
        expected = cv2.imread(str(source), cv2.IMREAD_COLOR)  # basicsr's imfrombytes: cv2.IMREAD_COLOR
        hr = cv2.imread(str(out / f'DIV2K_{split}_HR' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        assert hr.dtype == np.uint8 and np.array_equal(hr, expected)
        for scale in (2, 3):
            h, w = (d - d % scale for d in expected.shape[:2])
            bicubic = imresize(expected[:h, :w].astype(np.float64) / 255.0, 1 / scale)
            bicubic = np.clip(np.round(bicubic * 255.0), 0, 255).astype(np.uint8)
            lr = cv2.imread(str(out / f'DIV2K_{split}_LR_bicubic' / f'X{scale}' / f'{stem}x{scale}.png'))
            assert np.array_equal(lr, bicubic)
    valid_keys = (out / 'DIV2K_valid_HR.lmdb' / 'meta_info.txt').read_text().split()
    assert sorted(k.split('.')[0] for k in valid_keys if k.endswith('.png')) == held
    with lmdb.open(str(out / 'DIV2K_train_LR_bicubic_X2_sub.lmdb'), readonly=True, lock=False) as env:
        keys = {key.decode() for key, _ in env.begin().cursor()}
    assert {k.rsplit('_s', 1)[0] for k in keys} == set(stems) - set(held)
    assert (out / 'DIV2K_train_HR_sub.lmdb' / 'sub_images.json').is_file()
    opt = load_options(written[1])
    recipe = load_options(RECIPE)
    assert opt['datasets']['train']['dataroot_gt'] == str(out / 'DIV2K_train_HR_sub.lmdb')
    assert opt['datasets']['val']['dataroot_lq'] == str(out / 'DIV2K_valid_LR_bicubic_X2.lmdb')
    assert opt['train'] == recipe['train'] and opt['network_g'] == recipe['network_g']
    assert json.loads((out / RECORD).read_text())['images'] == {'train': 5, 'valid': 2}
    # a rerun with the same images and settings does nothing; with another image it refuses to touch the folder
    before = {p: p.stat().st_mtime_ns for p in out.rglob('*')}
    assert prepare_folder([str(photos)], str(out), valid=2, **SMALL) == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob('*')} == before
    cv2.imwrite(str(photos / 'h_new.png'), photo('rocket', 100, 100))
    with pytest.raises(PreparationError, match='holds a preparation of other images or settings; it is left as it'):
        prepare_folder([str(photos)], str(out), valid=2, **SMALL)


def test_own_lr_images_are_checked_against_the_scale(tmp_path):
    photos = tmp_path / 'photos'
    photos.mkdir()
    lr = tmp_path / 'lr'
    lr.mkdir()
    for stem, name in (('p1', 'astronaut'), ('p2', 'coffee')):
        hr = photo(name, 120, 132)
        cv2.imwrite(str(photos / f'{stem}.png'), hr)
        cv2.imwrite(str(lr / f'{stem}x2.png'), cv2.resize(hr, (66, 60), interpolation=cv2.INTER_AREA))
    out = tmp_path / 'out'
    prepare_folder([str(photos)], str(out), valid=1, lr={2: str(lr)}, **dict(SMALL, scales=(2,)))
    real = cv2.imread(str(lr / 'p1x2.png'))
    assert np.array_equal(cv2.imread(str(out / 'DIV2K_train_LR_bicubic' / 'X2' / 'p1x2.png')), real)
    cv2.imwrite(str(lr / 'p2x2.png'), photo('coffee', 61, 66))
    with pytest.raises(PreparationError, match=r'p2x2.png is 66x61, but .*p2.png is 132x120: expected 66x60 at x2'):
        prepare_folder([str(photos)], str(tmp_path / 'out2'), valid=1, lr={2: str(lr)}, **dict(SMALL, scales=(2,)))
    assert not (tmp_path / 'out2').exists()


def bad(folder, change):
    folder.mkdir()
    for stem, name in (('p1', 'astronaut'), ('p2', 'coffee'), ('p3', 'chelsea')):
        cv2.imwrite(str(folder / f'{stem}.png'), photo(name, 110, 120))
    return change(folder)


def truncate(folder):
    data = (folder / 'p2.png').read_bytes()
    (folder / 'p2.png').write_bytes(data[: len(data) // 2])


def truncate_jpeg(folder):
    cv2.imwrite(str(folder / 'p4.jpg'), photo('rocket', 120, 120))
    data = (folder / 'p4.jpg').read_bytes()
    (folder / 'p4.jpg').write_bytes(data[: len(data) * 2 // 3])


CASES = {
    'no image': (lambda f: [p.unlink() for p in f.iterdir()], r'--hr .*photos holds no image'),
    'same stem': (lambda f: cv2.imwrite(str(f / 'p1.jpg'), photo('rocket', 110, 120)), r'p1.jpg and .*p1.png'),
    'truncated png': (truncate, r'p2.png cannot be read as an image'),
    'truncated jpeg': (truncate_jpeg, r'p4.jpg cannot be read as an image .*truncated'),
    'smaller than the crop': (
        lambda f: cv2.imwrite(str(f / 'p1.png'), photo('astronaut', 100, 130)),
        r'p1.png is 130x100 \(120x96 once cropped to a multiple of 12\): smaller than one 108 px training',
    ),
    'dot in the name': (lambda f: (f / 'p1.png').rename(f / 'p1.v2.png'), 'may not contain a dot'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, case):
    change, message = CASES[case]
    photos = tmp_path / 'photos'
    bad(photos, change)
    with pytest.raises(PreparationError, match=message) as error:
        prepare_folder([str(photos)], str(tmp_path / 'out'), valid=1, **dict(SMALL, crop_size=108, step=54))
    assert '\n' not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['photos']


def test_settings_that_cannot_work(tmp_path):
    photos = tmp_path / 'photos'
    bad(photos, lambda f: None)
    for kwargs, message in (
        ({'out': str(photos / 'prepared')}, 'is inside the input folder'),
        ({'valid': 3}, '--valid 3: hold out at least 1 and fewer than the 3 images'),
        ({'crop_size': 48, 'step': 24}, r"--crop-size 48 is smaller than .*train_wdsr_b_x2.yml's gt_size 96"),
        ({'scales': (3,)}, r'trains x2, which --scales \(3,\) lacks'),
    ):
        settings = dict(SMALL, valid=1, out=str(tmp_path / 'out'))
        settings.update(kwargs)
        out = settings.pop('out')
        with pytest.raises(PreparationError, match=message):
            prepare_folder([str(photos)], out, **settings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['photos']


def test_a_gray_image_is_three_equal_channels(tmp_path):
    """basicsr reads a gray file as three equal channels: so is its prepared HR (the 16-bit file was one)."""
    photos = mixed_folder(tmp_path / 'photos')
    prepare_folder([str(photos)], str(tmp_path / 'out'), valid=1, **dict(SMALL, scales=(2,)))
    hr = cv2.imread(str(tmp_path / 'out' / 'DIV2K_train_HR' / 'b_gray.png'), cv2.IMREAD_UNCHANGED)
    assert hr.shape[2] == 3 and np.array_equal(hr[..., 0], hr[..., 2])
    assert cv2.imread(str(photos / 'c_16bit.png'), cv2.IMREAD_UNCHANGED).dtype == np.uint16  # really 16 bit
