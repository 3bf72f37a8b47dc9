"""Results pages of test runs and wdsr-compare: what they show, the crops, escaping, a real browser."""

import json
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize

from docs import documented, words
from helpers import OPTIONS, TEST, make_lmdbs, photo, run, write_options
from wdsr_basicsr.archs import WDSR_B
from wdsr_basicsr.compare import main as compare_main
from wdsr_basicsr.options import load_options
from wdsr_basicsr.prepare.benchmarks import prepare_benchmarks
from wdsr_basicsr.utils.report import best_crop

HOSTILE = '<img src=x onerror=console.error(1)>'  # an image name that must stay text
FLAT = 'flat #1?'  # a flat image (bicubic is exact: PSNR infinite), named with URL syntax
NETWORK_G = {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1, 'upscale': 2}


def test_best_crop_is_where_the_network_gains_most():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (20, 24, 3)).astype(np.float64)
    bicubic = gt + rng.normal(0, 8, gt.shape)
    sr = gt + rng.normal(0, 8, gt.shape)
    sr[9:17, 3:11] = gt[9:17, 3:11]  # the network is exact on an 8x8 block
    x, y, side = best_crop(sr, gt, bicubic, size=8)
    gains = ((bicubic - gt) ** 2 - (sr - gt) ** 2).sum(axis=2)
    by_hand = {(i, j): gains[j : j + 8, i : i + 8].sum() for j in range(20 - 7) for i in range(24 - 7)}
    assert side == 8 and (x, y) == max(by_hand, key=by_hand.get) == (3, 9)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Two test runs (two networks) of the shipped test file on Set5 of three photographs, one with a hostile name."""
    root = tmp_path_factory.mktemp('report')
    src = root / 'in' / 'Set5'
    src.mkdir(parents=True)
    for name, spec in (('baby', ('astronaut', 48, 60)), ('bird', ('coffee', 36, 48)), (HOSTILE, ('chelsea', 36, 36))):
        cv2.imwrite(str(src / f'{name}.png'), photo(*spec))
    cv2.imwrite(str(src / f'{FLAT}.png'), np.full((36, 48, 3), 128, np.uint8))
    prepare_benchmarks(str(root / 'in'), str(root / 'datasets'), scales=(2,), sets=('Set5',))
    folders = {}
    for seed, name in ((0, 'net_a'), (1, 'net_b')):
        torch.manual_seed(seed)
        saved = {'params': WDSR_B(num_feat=8, num_block=1, upscale=2).state_dict(), 'network_g': NETWORK_G}
        if name == 'net_b':  # as a training run saves net_g_best.pth
            saved['best'] = BEST
        torch.save(saved, root / f'{name}.pth')
        opt = load_options(OPTIONS / 'test_wdsr_b_x2.yml')  # as shipped: save_img true, Y PSNR/SSIM, border 2
        opt.update(name=name, num_gpu=0, network_g=dict(opt['network_g'], num_feat=8, num_block=1))
        opt['datasets'] = {
            'test_1': dict(
                opt['datasets']['test_1'],
                dataroot_gt=str(root / 'datasets/Set5/GTmod12'),
                dataroot_lq=str(root / 'datasets/Set5/LRbicx2'),
            )
        }
        opt['path']['pretrain_network_g'] = str(root / f'{name}.pth')
        result = run([sys.executable, TEST, '-opt', write_options(root / f'{name}.yml', opt)], root)
        assert result.returncode == 0, result.stderr[-3000:]
        folders[name] = root / 'results' / name
    return folders


#: What net_b's file says of the validation it was best at.
BEST = {'iter': 1800, 'dataset': 'DIV2K_valid', 'metric': 'psnr', 'value': 31.25}


def page_data(page):
    text = page.read_text()
    start = text.index('<script id="data" type="application/json">') + len('<script id="data" type="application/json">')
    return json.loads(text[start : text.index('</script>', start)]), text


def test_a_test_run_writes_its_page(runs):
    folder = runs['net_a']
    data, text = page_data(folder / 'index.html')
    assert HOSTILE not in text  # escaped in the embedded data
    (set5,) = data['sets']
    assert sorted(i['name'] for i in set5['images']) == sorted(['baby', 'bird', HOSTILE, FLAT])
    metrics = json.loads((folder / 'metrics_Set5.json').read_text())['images']
    bicubic_ssim = {}
    for image in set5['images']:
        assert image['models'][0]['metrics'] == metrics[image['name']] and not image['missing']
        gt = cv2.imread(str(folder / image['gt']))
        lq = cv2.imread(str(folder.parent.parent / 'datasets/Set5/LRbicx2' / f'{image["name"]}.png'))
        assert np.array_equal(
            gt, cv2.imread(str(folder.parent.parent / 'datasets/Set5/GTmod12' / f'{image["name"]}.png'))
        )

        bicubic = np.clip(np.round(imresize(lq / 255.0, 2) * 255), 0, 255).astype(np.uint8)
        assert np.array_equal(cv2.imread(str(folder / image['bicubic'])), bicubic)
        psnr = calculate_psnr(bicubic, gt, crop_border=2, test_y_channel=True)
        assert image['bicubic_metrics']['psnr_y'] == (pytest.approx(psnr) if np.isfinite(psnr) else None)
        sr_psnr = calculate_psnr(cv2.imread(str(folder / image['models'][0]['sr'])), gt, 2, test_y_channel=True)
        gain = image['models'][0]['gain']['psnr_y']  # the run's figure minus bicubic's
        assert gain == (pytest.approx(sr_psnr - psnr) if np.isfinite(psnr) else None)
        bicubic_ssim[image['name']] = calculate_ssim(bicubic, gt, crop_border=2, test_y_channel=True)
    # the mean row: the run's means are those it recorded; bicubic's over the same images (FLAT's is infinite)
    recorded = json.loads((folder / 'metrics_Set5.json').read_text())['mean']
    assert set5['mean']['models'][0]['metrics'] == pytest.approx(recorded)
    assert set5['mean']['bicubic']['psnr_y'] is None
    by_hand = np.mean([bicubic_ssim[name] for name in bicubic_ssim])
    assert set5['mean']['bicubic']['ssim_y'] == pytest.approx(by_hand)
    assert set5['mean']['models'][0]['gain']['ssim_y'] == pytest.approx(recorded['ssim_y'] - by_hand)
    assert data['notes'] == []
    data_b, _ = page_data(runs['net_b'] / 'index.html')  # a network saved as a training run's best says so
    assert data_b['notes'] == [
        'net_b: net_b.pth, the best psnr on DIV2K_valid (31.2500) of its training, at iteration 1800'
    ]
    assert json.loads((runs['net_b'] / 'metrics_Set5.json').read_text())['network']['best'] == BEST
    log = next(folder.glob('test_net_a_*.log')).read_text()
    assert f'Results page with Set5: {folder / "index.html"}' in log
    assert not np.isfinite(
        calculate_psnr(
            cv2.imread(str(folder / 'report/Set5' / f'{FLAT}_bicubic.png')),
            cv2.imread(str(folder / 'report/Set5' / f'{FLAT}_gt.png')),
            2,
        )
    )


def strict_json(path):
    """``path`` read as standard JSON: Python's Infinity/NaN extensions refused."""

    def refuse(constant):
        raise ValueError(f'{path}: {constant} is not JSON')

    return json.loads(path.read_text(), parse_constant=refuse)


def test_every_record_of_a_test_run_is_standard_json(runs):
    files = sorted(runs['net_a'].glob('*.json'))
    assert [f.name for f in files] == ['metrics_Set5.json', 'report_Set5.json']
    report = strict_json(files[1])['images']
    assert report[FLAT]['bicubic_metrics']['psnr_y'] is None  # exact: not a finite number
    assert strict_json(files[0])['images'][FLAT]['psnr_y'] > 0


def test_compare_page_and_figure(runs, tmp_path, capsys):
    out = tmp_path / 'compare'
    (runs['net_b'] / 'report' / 'Set5' / 'bird_gt.png').write_bytes(b'not an image')  # unreadable: named
    assert compare_main([str(runs['net_a']), str(runs['net_b']), '-o', str(out), '--images', '2']) == 0
    data, _ = page_data(out / 'index.html')
    assert data['models'] == ['net_a', 'net_b']
    for image in data['sets'][0]['images']:
        for model in image['models']:
            assert (out / model['sr']).is_file()
    assert (out / 'figure.png').stat().st_size > 0 and (out / 'figure.pdf').read_bytes().startswith(b'%PDF')
    crops = sorted((out / 'crops').iterdir())
    assert len(crops) == 2 * 4  # two images x (HR, bicubic, two runs)
    for image in data['sets'][0]['images']:
        x, y, side = image['crop']
        for label, path in [('HR', image['gt']), ('bicubic', image['bicubic'])] + [
            (m['label'], m['sr']) for m in image['models']
        ]:
            crop = out / 'crops' / f'Set5_{image["name"]}_{label}.png'
            if crop.exists():  # the figure's crops are the source pixels
                assert np.array_equal(cv2.imread(str(crop)), cv2.imread(str(out / path))[y : y + side, x : x + side])


def test_the_figure_says_its_figures_are_of_the_whole_image(runs, tmp_path, monkeypatch):
    """The numbers over each crop are the whole image's (a crop's own PSNR would differ): the title says so."""
    from matplotlib.figure import Figure

    titles = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, 'savefig', lambda fig, *a, **k: titles.append(fig.get_suptitle()) or save(fig, *a, **k))
    assert compare_main([str(runs['net_a']), str(runs['net_b']), '-o', str(tmp_path / 'c')]) == 0
    assert titles == ['crops where the runs differ most (psnr_y); figures of the whole image: psnr_y / ssim_y'] * 2


def test_labels_are_shown_as_typed_and_name_their_crops_safely(runs, tmp_path):
    """docs/results.md's own labels, with spaces ("WDSR-B 500 it"), and one with a separator."""
    out = tmp_path / 'compare'
    labels = ['WDSR-B 500 it', 'a/b c']
    assert compare_main([str(runs['net_a']), str(runs['net_b']), '-o', str(out), '--labels', *labels]) == 0
    data, _ = page_data(out / 'index.html')
    assert data['models'] == labels
    names = sorted(p.name for p in (out / 'crops').iterdir())  # <set>_<image>_<column>.png, 4 columns an image
    columns = sorted({n.split('_', 2)[2] for n in names})
    assert columns == ['HR.png', 'WDSR-B_500_it.png', 'a_b_c.png', 'bicubic.png'] and len(names) % 4 == 0


def test_compare_names_what_it_leaves_out(runs, tmp_path, capsys):
    partial = tmp_path / 'partial'
    shutil.copytree(runs['net_b'], partial)
    metrics = json.loads((partial / 'metrics_Set5.json').read_text())
    del metrics['images']['bird']
    (partial / 'metrics_Set5.json').write_text(json.dumps(metrics))
    (partial / 'visualization' / 'Set5' / 'baby_net_b.png').unlink()
    assert compare_main([str(runs['net_a']), str(partial), '-o', str(tmp_path / 'c')]) == 0
    assert 'left out: Set5: bird only in net_a' in capsys.readouterr().err
    data, _ = page_data(tmp_path / 'c' / 'index.html')
    baby = next(i for i in data['sets'][0]['images'] if i['name'] == 'baby')
    assert baby['missing'] == [str(partial / 'visualization' / 'Set5' / 'baby_net_b.png')]
    assert sorted(i['name'] for i in data['sets'][0]['images']) == sorted(['baby', HOSTILE, FLAT])


def chromium():
    path = shutil.which('chromium') or shutil.which('chromium-browser')
    try:
        import playwright  # noqa: F401
    except ImportError:
        return None
    return path


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason='needs Chromium (Debian: apt-get install chromium) and playwright')
def test_the_page_in_a_real_browser(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=[
                '--no-sandbox',
                '--disable-gpu',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
                '--no-first-run',
            ],
        )
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto((runs['net_a'] / 'index.html').as_uri())
        page.wait_for_load_state('load')
        assert page.evaluate('Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)')
        assert page.evaluate('document.images.length') == 5  # HR, bicubic, the run, the slider's two
        names = page.eval_on_selector_all('tbody tr td:first-child', 'cells => cells.map(c => c.textContent)')
        assert HOSTILE in names  # shown as text
        page.click('th:has-text("net_a psnr_y")')
        first = page.eval_on_selector_all('tbody tr td:nth-child(4)', 'cells => cells.map(c => Number(c.dataset.v))')
        assert first == sorted(first, reverse=True)
        page.click('th:has-text("net_a psnr_y")')
        again = page.eval_on_selector_all('tbody tr td:nth-child(4)', 'cells => cells.map(c => Number(c.dataset.v))')
        assert again == sorted(first)
        data, _ = page_data(runs['net_a'] / 'index.html')
        mean = data['sets'][0]['mean']
        footer = page.eval_on_selector('tfoot tr', 'r => Array.from(r.cells).map(c => c.textContent)')
        headers = page.eval_on_selector_all('thead th', 'cells => cells.map(c => c.textContent)')
        assert headers == [
            'image',
            'bicubic psnr_y',
            'bicubic ssim_y',
            'net_a psnr_y',
            'net_a ssim_y',
            'net_a gain psnr_y',
            'net_a gain ssim_y',
        ]
        model = mean['models'][0]
        assert footer == [
            'mean (4 images)',
            'n/a',  # bicubic is exact on the flat image: its mean PSNR is infinite
            f'{mean["bicubic"]["ssim_y"]:.4f}',
            f'{model["metrics"]["psnr_y"]:.4f}',
            f'{model["metrics"]["ssim_y"]:.4f}',
            'n/a',
            f'{model["gain"]["ssim_y"]:+.4f}',
        ]
        page.click('th:has-text("net_a gain psnr_y")')  # sorting moves the images, never the mean row
        assert page.eval_on_selector('tfoot tr', 'r => r.cells[0].textContent') == 'mean (4 images)'
        page.click('tbody tr:has-text("bird")')
        page.fill('input.slider', '80')
        page.dispatch_event('input.slider', 'input')
        assert (
            page.eval_on_selector('.pane:last-child .box .layer:nth-child(2)', 'i => i.style.clipPath')
            == 'inset(0px 0px 0px 80%)'
        )
        bird = next(i for i in data['sets'][0]['images'] if i['name'] == 'bird')
        layers = '.before-after .box img'
        sources = "imgs => imgs.map(i => decodeURIComponent(i.getAttribute('src')))"
        assert page.eval_on_selector_all(layers, sources) == [bird['bicubic'], bird['models'][0]['sr']]
        page.select_option('.before-after select.left', 'HR')  # any two: HR against the run
        assert page.eval_on_selector_all(layers, sources) == [bird['gt'], bird['models'][0]['sr']]
        page.select_option('.before-after select.right', 'HR')  # the same on both sides: they swap
        assert page.eval_on_selector_all(layers, sources) == [bird['models'][0]['sr'], bird['gt']]
        page.click('tbody tr:has-text("baby")')  # the choice stays from image to image
        baby = next(i for i in data['sets'][0]['images'] if i['name'] == 'baby')
        assert page.eval_on_selector_all(layers, sources) == [baby['models'][0]['sr'], baby['gt']]
        page.click('tbody tr:has-text("flat")')  # '#' and '?' in its file names: URL-encoded
        page.wait_for_function('Array.from(document.images).every(i => i.complete)')
        assert page.evaluate('Array.from(document.images).every(i => i.naturalWidth > 0)')
        assert page.evaluate('Array.from(document.images).every(i => i.src.includes("flat%20%231%3F"))')
        cells = page.eval_on_selector('tbody tr:has-text("flat")', 'r => Array.from(r.cells).map(c => c.textContent)')
        assert cells[1] == 'n/a'  # bicubic psnr_y: infinite
        page.click('th:has-text("bicubic psnr_y")')  # the infinite PSNR sorts above every number
        assert page.eval_on_selector('tbody tr', 'r => r.cells[0].textContent') == FLAT
        shot = tmp_path / 'page.png'
        page.screenshot(path=str(shot), full_page=True)
        page.goto((runs['net_b'] / 'index.html').as_uri())  # a network saved as its training run's best
        page.wait_for_load_state('load')
        assert 'the best psnr on DIV2K_valid (31.2500) of its training' in page.inner_text('#notes')
        browser.close()
    img = cv2.imread(str(shot))
    assert img is not None and img.std() > 10  # not blank
    assert errors == []


def test_compare_into_a_run_is_refused(runs, capsys):
    page = (runs['net_a'] / 'index.html').read_text()
    assert compare_main([str(runs['net_a']), str(runs['net_b']), '-o', str(runs['net_a'])]) == 1
    assert 'is one of the runs' in capsys.readouterr().err
    assert (runs['net_a'] / 'index.html').read_text() == page


@pytest.mark.parametrize(
    'labels, fault',
    [
        (['HR', 'b'], "'HR' is the name of the HR column"),
        (['a', 'bicubic'], "'bicubic' is the name of the bicubic column"),
        (['a\nb', 'c'], "'a\\nb' is not a label: give some text on one line."),
        ([' ', 'c'], "' ' is not a label"),
        (['same', 'same'], 'same given to several runs'),
        (['a'], '1 labels for 2 runs'),
    ],
)
def test_compare_refuses_labels_that_collide(runs, tmp_path, capsys, labels, fault):
    out = tmp_path / 'c'
    assert compare_main([str(runs['net_a']), str(runs['net_b']), '-o', str(out), '--labels', *labels]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and fault in err and not out.exists()


def test_compare_refuses_a_folder_without_results(runs, tmp_path, capsys):
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert compare_main([str(runs['net_a']), str(empty), '-o', str(tmp_path / 'c')]) == 1
    assert (
        capsys.readouterr().err == f'error: {empty}: not the result folder of a test run (no metrics_<set>.json '
        'in it).\n'
    )


@pytest.mark.parametrize(
    'name, text, fault',
    [
        ('metrics_Set5.json', '{"dataset": "Set5", "mean": {', 'not valid JSON'),
        ('metrics_Set5.json', '[1, 2]', 'has no dataset, mean, images'),
        ('report_Set5.json', '{"dataset": "Set5"}', 'has no images'),
    ],
)
def test_compare_names_a_malformed_file(runs, tmp_path, capsys, name, text, fault):
    broken = tmp_path / 'broken'
    shutil.copytree(runs['net_b'], broken)
    (broken / name).write_text(text)
    assert compare_main([str(runs['net_a']), str(broken), '-o', str(tmp_path / 'c')]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: {broken / name}: {fault}') and err.count('\n') == 1


def test_compare_leaves_a_truncated_image_out_of_the_figure(runs, tmp_path, capsys):
    cut = tmp_path / 'cut'
    shutil.copytree(runs['net_b'], cut)
    sr = cut / 'visualization' / 'Set5' / 'baby_net_b.png'
    sr.write_bytes(sr.read_bytes()[:200])  # the header reads, the pixels do not
    picks = ['Set5/baby', 'Set5/bird']
    assert compare_main([str(runs['net_a']), str(cut), '-o', str(tmp_path / 'c'), '--pick', *picks]) == 0
    out = capsys.readouterr()
    assert f'left out: figure: Set5/baby: {sr} cannot be decoded' in out.err.splitlines()
    assert (tmp_path / 'c' / 'figure.png').is_file()
    assert sorted(p.name for p in (tmp_path / 'c' / 'crops').iterdir()) == sorted(
        f'Set5_bird_{label}.png' for label in ('HR', 'bicubic', 'net_a', 'cut')
    )


@pytest.mark.slow
def test_the_commands_of_docs_results_run(tmp_path):
    """docs/results.md, after the demo's training (two checkpoints of its network stand in for it), on the demo's
    validation LMDBs: both test runs and the comparison, word for word."""
    make_lmdbs(tmp_path / 'datasets' / 'demo', (2,))
    network = dict(load_options(OPTIONS / 'test_demo_wdsr_b_x2.yml')['network_g'])
    models = tmp_path / 'experiments' / 'demo_wdsr_b_x2' / 'models'
    models.mkdir(parents=True)
    for seed, name in ((0, 'net_g_500.pth'), (1, 'net_g_latest.pth')):
        torch.manual_seed(seed)
        net = WDSR_B(**{k: v for k, v in network.items() if k != 'type'})
        torch.save({'params': net.state_dict(), 'network_g': network}, models / name)
    for text in (
        documented('docs/results.md', 'name=demo_500_iter'),
        documented('docs/results.md', 'name=demo_2000_iter'),
        documented('docs/results.md', 'wdsr-compare'),
    ):
        result = run(words(text), tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    data, _ = page_data(tmp_path / 'compare' / 'index.html')
    assert data['models'] == ['WDSR-B 500 it', 'WDSR-B 2000 it']
    for name in ('demo_500_iter', 'demo_2000_iter'):
        assert (tmp_path / 'results' / name / 'metrics_DIV2K_valid.json').is_file()
