"""DIV2K preparation: bicubic LR, sub-images, LMDBs, rerun safety, bad input, download."""

import os

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from helpers import TRAIN_CROPS, VALID_CROPS, RangeServer, make_zip, photo
from wdsr_basicsr.files import is_leftover
from wdsr_basicsr.prepare import PreparationError
from wdsr_basicsr.prepare import lmdb as prepare_lmdb
from wdsr_basicsr.prepare.div2k import download_div2k, prepare
from wdsr_basicsr.prepare.fetch import download

CROP, STEP, SCALES = 48, 24, (2, 3, 4)


def run_prepare(root, **kw):
    return prepare(str(root), SCALES, crop_size=CROP, step=STEP, workers=1, **kw)


def lmdb_records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = {k.decode(): cv2.imdecode(np.frombuffer(v, np.uint8), cv2.IMREAD_UNCHANGED) for k, v in txn.cursor()}
    env.close()
    return records


def meta_keys(path):
    return [line.split('.')[0] for line in open(os.path.join(path, 'meta_info.txt'))]


def matlab_lr(hr, scale):
    """Independent reference: basicsr's MATLAB imresize of HR cropped to a multiple of the scale."""
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    lr = imresize(hr[:h, :w].astype(np.float64) / 255.0, 1 / scale)
    return np.clip(np.round(lr * 255.0), 0, 255).astype(np.uint8)


def test_lr_is_matlab_bicubic_and_lmdbs_have_div2k_names(div2k_hr):
    written = run_prepare(div2k_hr)
    expected = ['DIV2K_train_HR_sub.lmdb'] + [f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb' for s in SCALES]
    expected += ['DIV2K_valid_HR.lmdb'] + [f'DIV2K_valid_LR_bicubic_X{s}.lmdb' for s in SCALES]
    assert sorted(os.path.basename(p) for p in written) == sorted(expected)
    for split, crops in (('train', TRAIN_CROPS), ('valid', VALID_CROPS)):
        for stem, spec in crops.items():
            for s in SCALES:
                made = cv2.imread(str(div2k_hr / f'DIV2K_{split}_LR_bicubic' / f'X{s}' / f'{stem}x{s}.png'))
                assert np.array_equal(made, matlab_lr(photo(*spec), s))
    # validation LMDBs hold whole images
    valid = lmdb_records(div2k_hr / 'DIV2K_valid_LR_bicubic_X3.lmdb')
    assert list(valid) == ['0801'] and np.array_equal(valid['0801'], matlab_lr(photo(*VALID_CROPS['0801']), 3))
    assert np.array_equal(lmdb_records(div2k_hr / 'DIV2K_valid_HR.lmdb')['0801'], photo(*VALID_CROPS['0801']))


def test_sub_images_follow_crop_and_step(div2k_hr):
    run_prepare(div2k_hr)
    hr_records = lmdb_records(div2k_hr / 'DIV2K_train_HR_sub.lmdb')
    # 0001 is 130x110 -> cropped to 120x108 (multiple of lcm(2,3,4) = 12).
    # rows: 0, 24, 48, 72 (72 + 48 = 120 ends exactly); cols: 0, 24, 48, then 60 = 108 - 48.
    # 0002 is 100x150 -> 96x144. rows: 0, 24, 48 (48 + 48 = 96); cols: 0, 24, 48, 72, 96 (96 + 48 = 144).
    positions = {
        '0001': [(y, x) for y in (0, 24, 48, 72) for x in (0, 24, 48, 60)],
        '0002': [(y, x) for y in (0, 24, 48) for x in (0, 24, 48, 72, 96)],
    }
    assert len(hr_records) == 16 + 15
    for stem, places in positions.items():
        hr = photo(*TRAIN_CROPS[stem])
        for i, (y, x) in enumerate(places, start=1):
            assert np.array_equal(hr_records[f'{stem}_s{i:03d}'], hr[y : y + CROP, x : x + CROP])
    for s in SCALES:
        lr_records = lmdb_records(div2k_hr / f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb')
        for stem, places in positions.items():
            lr = matlab_lr(photo(*TRAIN_CROPS[stem]), s)
            for i, (y, x) in enumerate(places, start=1):
                patch = lr_records[f'{stem}_s{i:03d}']
                assert np.array_equal(patch, lr[y // s : y // s + CROP // s, x // s : x // s + CROP // s])


def test_keys_and_meta_info_agree(div2k_hr):
    run_prepare(div2k_hr)
    for split, suffix in (('train', '_sub'), ('valid', '')):
        hr = div2k_hr / f'DIV2K_{split}_HR{suffix}.lmdb'
        hr_keys = meta_keys(hr)
        assert hr_keys == sorted(lmdb_records(hr))
        for s in SCALES:
            lr = div2k_hr / f'DIV2K_{split}_LR_bicubic_X{s}{suffix}.lmdb'
            assert meta_keys(lr) == hr_keys
            first = open(lr / 'meta_info.txt').readline().split()
            if split == 'train':
                assert first[1:] == [f'({CROP // s},{CROP // s},3)', '1']


def test_rerun_skips_and_rebuilds_missing_consistently(div2k_hr):
    run_prepare(div2k_hr)
    x3 = div2k_hr / 'DIV2K_train_LR_bicubic_X3_sub.lmdb'
    before = lmdb_records(x3)
    hr_mtime = os.path.getmtime(div2k_hr / 'DIV2K_train_HR_sub.lmdb' / 'data.mdb')
    assert run_prepare(div2k_hr) == []
    import shutil

    shutil.rmtree(x3)
    assert run_prepare(div2k_hr) == [str(x3)]
    after = lmdb_records(x3)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert os.path.getmtime(div2k_hr / 'DIV2K_train_HR_sub.lmdb' / 'data.mdb') == hr_mtime
    assert len(meta_keys(x3)) == len(before)  # no duplicate lines


def test_interrupted_run_leaves_nothing_that_looks_finished(div2k_hr, monkeypatch):
    original_close = prepare_lmdb.LmdbMaker.close

    def crash(self):
        original_close(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_lmdb.LmdbMaker, 'close', crash)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(div2k_hr)
    assert not [p for p in os.listdir(div2k_hr) if p.startswith('DIV2K') and p.endswith('.lmdb')]
    monkeypatch.setattr(prepare_lmdb.LmdbMaker, 'close', original_close)
    assert len(run_prepare(div2k_hr)) == 8
    assert not [p for p in os.listdir(div2k_hr) if is_leftover(p)]


def no_lmdb_written(root):
    return not [p for p in os.listdir(root) if p.endswith('.lmdb')]


def test_missing_hr_folder_named(tmp_path):
    with pytest.raises(PreparationError, match='DIV2K_train_HR'):
        run_prepare(tmp_path)


def test_truncated_image_named_before_any_lmdb(div2k_hr):
    path = div2k_hr / 'DIV2K_train_HR' / '0002.png'
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(PreparationError, match='0002.png'):
        run_prepare(div2k_hr)
    assert no_lmdb_written(div2k_hr)


def test_lr_of_wrong_size_named_before_any_lmdb(div2k_hr):
    run_prepare(div2k_hr, splits=('valid',))
    bad = div2k_hr / 'DIV2K_train_LR_bicubic' / 'X2'
    bad.mkdir(parents=True)
    for stem, spec in TRAIN_CROPS.items():
        lr = matlab_lr(photo(*spec), 2)
        cv2.imwrite(str(bad / f'{stem}x2.png'), lr[:-1] if stem == '0002' else lr)
    with pytest.raises(PreparationError, match=r'0002x2\.png is 75x49.*expected 75x50'):
        run_prepare(div2k_hr)
    assert not [p for p in os.listdir(div2k_hr) if p.startswith('DIV2K_train') and p.endswith('.lmdb')]


def test_missing_lr_file_named(div2k_hr):
    folder = div2k_hr / 'DIV2K_train_LR_bicubic' / 'X2'
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / '0001x2.png'), matlab_lr(photo(*TRAIN_CROPS['0001']), 2))
    with pytest.raises(PreparationError, match=r'0002x2\.png does not exist'):
        run_prepare(div2k_hr)
    assert no_lmdb_written(div2k_hr)


def test_crop_not_multiple_of_scale_named(div2k_hr):
    with pytest.raises(PreparationError, match='--crop-size 50'):
        prepare(str(div2k_hr), SCALES, crop_size=50, step=24, workers=1)


# ----------------------------------------------------------------------------- download


@pytest.fixture
def server():
    srv = RangeServer({})
    yield srv
    srv.close()


def test_download_resumes_with_range(tmp_path, server):
    body = make_zip({'DIV2K_valid_HR/0801.png': os.urandom(5000)})
    server.files['a.zip'] = body
    dest = tmp_path / 'a.zip'
    (tmp_path / 'a.zip.part').write_bytes(body[:1234])
    download(server.url + 'a.zip', str(dest))
    assert server.ranges == [1234]
    assert dest.read_bytes() == body and not (tmp_path / 'a.zip.part').exists()


def test_download_rejects_bad_crc_and_removes_part(tmp_path, server):
    body = bytearray(make_zip({'x.png': b'a' * 4000}))
    body[100] ^= 0xFF  # flip one byte of the stored member
    server.files['bad.zip'] = bytes(body)
    with pytest.raises(PreparationError, match='bad.zip'):
        download(server.url + 'bad.zip', str(tmp_path / 'bad.zip'))
    assert not os.listdir(tmp_path)


def test_download_then_prepare_from_archives(tmp_path, server):
    def png(name, h, w):
        return cv2.imencode('.png', photo(name, h, w))[1].tobytes()

    server.files['DIV2K_train_HR.zip'] = make_zip(
        {f'DIV2K_train_HR/{stem}.png': png(*spec) for stem, spec in TRAIN_CROPS.items()}
    )
    server.files['DIV2K_valid_HR.zip'] = make_zip({'DIV2K_valid_HR/0801.png': png(*VALID_CROPS['0801'])})
    for split, crops in (('train', TRAIN_CROPS), ('valid', VALID_CROPS)):
        lrs = {
            f'DIV2K_{split}_LR_bicubic/X2/{stem}x2.png': cv2.imencode('.png', matlab_lr(photo(*spec), 2))[1].tobytes()
            for stem, spec in crops.items()
        }
        server.files[f'DIV2K_{split}_LR_bicubic_X2.zip'] = make_zip(lrs)
    root = tmp_path / 'DIV2K'
    download_div2k(str(root), (2,), base_url=server.url)
    assert sorted(os.listdir(root / 'DIV2K_train_LR_bicubic' / 'X2')) == ['0001x2.png', '0002x2.png']
    written = prepare(str(root), (2,), crop_size=48, step=24, workers=1)
    assert len(written) == 4
    download_div2k(str(root), (2,), base_url=server.url)  # a rerun fetches nothing
    assert sum(1 for p in os.listdir(root) if p.endswith('.zip')) == 4


def test_keys_do_not_depend_on_the_scales_asked(div2k_hr):
    prepare(str(div2k_hr), (2,), crop_size=48, step=24, workers=1, splits=('train',))
    prepare(str(div2k_hr), (2, 3), crop_size=48, step=24, workers=1, splits=('train',))  # adds X3, pairs with HR
    assert meta_keys(div2k_hr / 'DIV2K_train_LR_bicubic_X3_sub.lmdb') == meta_keys(div2k_hr / 'DIV2K_train_HR_sub.lmdb')


def test_images_too_small_for_a_sub_image_are_named(div2k_hr, caplog):
    cv2.imwrite(str(div2k_hr / 'DIV2K_train_HR' / '0003.png'), photo('chelsea', 50, 47))  # 48x36 after the mod-12 crop
    prepare(str(div2k_hr), (2,), crop_size=48, step=24, workers=1, splits=('train',))
    out = '\n'.join(r.getMessage() for r in caplog.records if r.levelname == 'WARNING')  # the library logs it
    assert 'Warning: 1 train HR image(s) give no 48 px sub-image' in out and 'DIV2K_train_HR/0003.png' in out
    keys = (div2k_hr / 'DIV2K_train_HR_sub.lmdb' / 'meta_info.txt').read_text()
    assert '0001_s001' in keys and '0003_' not in keys


def test_progress_bars_end_at_the_count(div2k_hr, capsys):
    """tqdm's bars of the LMDB builds reach n/n (a zip that stopped one short left them at n-1/n)."""
    run_prepare(div2k_hr)
    err = capsys.readouterr().err
    for split, crops in (('train', TRAIN_CROPS), ('valid', VALID_CROPS)):
        bars = [line for line in err.replace('\r', '\n').splitlines() if line.startswith(f'{split} LMDB')]
        assert bars and '100%' in bars[-1] and f'{len(crops)}/{len(crops)}' in bars[-1], bars
