"""Results pages: per-image figures with the SR output beside HR and MATLAB bicubic, in one offline HTML file.

A test run (``test.py``, or ``benchmark.py --weights``) that saves its images also writes, per image, the HR
and the bicubic upscaling of its input (``report/<set>/<image>_gt.png``, ``_bicubic.png``), the bicubic
figures with the same metrics, and the square crop where the network gains most over bicubic
(``report_<set>.json``). :func:`write_page` turns one or several such result folders into ``index.html``:
one static file (styles and script inline, no server, no network) with a sortable table per set (each run's
figures and its gain over bicubic, a mean row) and a viewer whose panes zoom and pan together, plus a
before/after slider between any two of HR, bicubic and the runs. Images are referenced, not
embedded, so a page of Urban100 opens fast. Names are escaped: an image called ``<script>.png`` is text.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from os import path as osp

import cv2
import numpy as np

from .records import finite, write_json
from .resize import matlab_resize

#: The page's template: index.html with __TITLE__, __STYLE__, __DATA__, __SCRIPT__; page.css; page.js.
PAGE_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'page')
#: Side of the pre-selected crop, in HR pixels (at most half the image's shorter side).
CROP = 48


def best_crop(sr: np.ndarray, gt: np.ndarray, bicubic: np.ndarray, size: int = CROP) -> list[int]:
    """The square where ``sr`` gains most over ``bicubic`` (largest drop of summed squared error against ``gt``).

    Returns:
        list[int]: ``[x, y, side]`` in ``gt``'s pixels.
    """
    h, w = gt.shape[:2]
    side = max(1, min(size, h // 2 or h, w // 2 or w))
    gt = gt.astype(np.float64)
    gain = ((bicubic - gt) ** 2 - (sr[:h, :w] - gt) ** 2).reshape(h, w, -1).sum(axis=2)
    sums = cv2.integral(gain)
    boxes = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
    return [int(x), int(y), int(side)]


def save_references(
    folder: str, img_name: str, sr: np.ndarray, gt: np.ndarray, lq: np.ndarray, scale: int
) -> tuple[np.ndarray, list[int]]:
    """Write the HR and bicubic images of one test image; return its bicubic image and best crop.

    Args:
        folder (str): ``<results_root>/report/<set>``.
        img_name (str): The image's name.
        sr, gt, lq (np.ndarray): uint8 HxWxC BGR: the network's output, the HR and the input.
        scale (int): The upscaling factor.

    Returns:
        tuple[np.ndarray, list[int]]: The bicubic image (cropped to the HR's size) and ``[x, y, side]``.
    """
    os.makedirs(folder, exist_ok=True)
    bicubic = matlab_resize(lq, scale)[: gt.shape[0], : gt.shape[1]]
    cv2.imwrite(osp.join(folder, f'{img_name}_gt.png'), gt)
    cv2.imwrite(osp.join(folder, f'{img_name}_bicubic.png'), bicubic)
    return bicubic, best_crop(sr, gt, bicubic)


def write_set_report(results_root: str, dataset_name: str, entries: dict) -> None:
    """Write ``report_<set>.json``: per image its SR file, crop and bicubic metrics (paths relative to the run)."""
    write_json(osp.join(results_root, f'report_{dataset_name}.json'), {'dataset': dataset_name, 'images': entries})


def read_run(results_root: str) -> dict:
    """The sets of a result folder: ``{set: {'metrics': [names], 'images': {name: report entry + metrics}}}``."""
    sets = {}
    for name in sorted(os.listdir(results_root)):
        if not (name.startswith('metrics_') and name.endswith('.json')):
            continue
        metrics = _read_json(osp.join(results_root, name), ('dataset', 'mean', 'images'))
        report_path = osp.join(results_root, f'report_{metrics["dataset"]}.json')
        report = _read_json(report_path, ('images',))['images'] if osp.isfile(report_path) else {}
        sets[metrics['dataset']] = {
            'network': metrics.get('network'),
            'metrics': list(metrics['mean']),
            'images': {img: dict(report.get(img, {}), metrics=values) for img, values in metrics['images'].items()},
        }
    return sets


def _read_json(path, keys):
    """The mapping in ``path``, which must hold ``keys``; a file that is not such JSON raises a ValueError naming it."""
    try:
        with open(path, encoding='utf-8') as f:
            value = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f'{path}: not valid JSON ({error}).') from None
    missing = [key for key in keys if not isinstance(value, dict) or key not in value]
    if missing:
        raise ValueError(f'{path}: has no {", ".join(missing)} (not written by a test run of this package?).')
    return value


def page_data(runs: dict[str, str], page_dir: str) -> dict:
    """What the page shows for ``runs`` (label -> result folder): the sets and images all of them have.

    Returns:
        dict: ``{'models': [...], 'metrics': [...], 'sets': [...], 'left_out': [...], 'notes': [...]}``
        (notes: :func:`network_note`); image paths are
        relative to ``page_dir``, and each missing or unreadable image is listed with the image.
    """
    read = {label: read_run(root) for label, root in runs.items()}
    labels = list(runs)
    first = read[labels[0]]
    common_sets = [s for s in first if all(s in read[label] for label in labels)]
    left_out = [
        f'set {s}: not in {", ".join(label for label in labels if s not in read[label])}'
        for s in sorted({s for r in read.values() for s in r} - set(common_sets))
    ]
    metrics = sorted({m for r in read.values() for s in r.values() for m in s['metrics']})
    sets = []
    for set_name in common_sets:
        names = [n for n in first[set_name]['images'] if all(n in read[label][set_name]['images'] for label in labels)]
        for label in labels:
            extra = sorted(set(read[label][set_name]['images']) - set(names))
            if extra:
                left_out.append(f'{set_name}: {", ".join(extra)} only in {label}')
        images = []
        for name in names:
            base = read[labels[0]][set_name]['images'][name]
            entry = {
                'name': name,
                'crop': base.get('crop'),
                'bicubic_metrics': base.get('bicubic_metrics', {}),
                'missing': [],
                'models': [],
            }
            for kind in ('gt', 'bicubic'):
                entry[kind] = _relative(runs[labels[0]], base.get(kind), page_dir, entry['missing'])
            for label in labels:
                item = read[label][set_name]['images'][name]
                entry['models'].append(
                    {
                        'label': label,
                        'metrics': item['metrics'],
                        'gain': {
                            k: _difference(item['metrics'].get(k), entry['bicubic_metrics'].get(k)) for k in metrics
                        },
                        'sr': _relative(runs[label], item.get('sr'), page_dir, entry['missing']),
                    }
                )
            images.append(entry)
        sets.append({'name': set_name, 'images': images, 'mean': _set_means(images, labels, metrics)})
    notes = [note for label in labels for note in [network_note(label, read[label])] if note]
    return {'models': labels, 'metrics': metrics, 'sets': sets, 'left_out': left_out, 'notes': notes}


def network_note(label: str, run: dict) -> str | None:
    """The page's line on the network a run tested, where its file was saved as the best of a training run."""
    network = next((s['network'] for s in run.values() if s.get('network')), None)
    if not network or not network.get('best'):
        return None
    best = network['best']
    return (
        f'{label}: {osp.basename(network["path"])}, the best {best["metric"]} on {best["dataset"]} '
        f'({best["value"]:.4f}) of its training, at iteration {best["iter"]}'
    )


def _set_means(images: list[dict], labels: list[str], metrics: list[str]) -> dict:
    """The mean row of a set's table, over the images shown: ``{'bicubic': {metric: mean}, 'models': [{'metrics':
    {metric: mean}, 'gain': {metric: mean gain over bicubic}}, ...]}`` (None where a figure is not a number)."""
    bicubic = {k: _mean([image['bicubic_metrics'].get(k) for image in images]) for k in metrics}
    models = []
    for i in range(len(labels)):
        means = {k: _mean([image['models'][i]['metrics'].get(k) for image in images]) for k in metrics}
        models.append({'metrics': means, 'gain': {k: _difference(means[k], bicubic[k]) for k in metrics}})
    return {'bicubic': bicubic, 'models': models}


def _mean(values: list) -> float | None:
    """The mean of ``values``; None when there are none or one is not a finite number (null in the records)."""
    if not values or not all(map(_is_number, values)):
        return None
    return sum(values) / len(values)


def _difference(value, reference) -> float | None:
    """``value - reference``; None unless both are finite numbers."""
    return value - reference if _is_number(value) and _is_number(reference) else None


def _is_number(value) -> bool:
    """Whether ``value`` is a finite number (a record's figure; null stands for one that is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _relative(root, path, page_dir, missing):
    """``root/path`` relative to ``page_dir``, or None (noted in ``missing``) when it is not a readable image."""
    if not path:
        return None
    full = osp.join(root, path)
    if not osp.isfile(full) or not cv2.haveImageReader(full):  # the header, not a decode of every image
        missing.append(full)
        return None
    return osp.relpath(full, page_dir).replace(os.sep, '/')


def write_page(runs: dict[str, str], page_dir: str, title: str) -> tuple[str, dict]:
    """Write ``page_dir/index.html`` for ``runs`` (label -> result folder).

    Returns:
        tuple[str, dict]: The page's path and what it shows (:func:`page_data`).
    """
    data = page_data(runs, page_dir)
    text = (
        json.dumps(finite(data), allow_nan=False)
        .replace('&', '\\u0026')
        .replace('<', '\\u003c')
        .replace('>', '\\u003e')
    )
    os.makedirs(page_dir, exist_ok=True)
    path = osp.join(page_dir, 'index.html')
    parts = {
        'TITLE': html.escape(title),
        'DATA': text,
        'STYLE': _page_file('page.css'),
        'SCRIPT': _page_file('page.js'),
    }
    page = re.sub(r'__(TITLE|DATA|STYLE|SCRIPT)__', lambda match: parts[match.group(1)], _page_file('index.html'))
    with open(path, 'w', encoding='utf-8') as f:
        f.write(page)
    return path, data


def _page_file(name):
    """A file of the page's template (``wdsr_basicsr/utils/page/``: HTML, CSS and JS, filled in one pass)."""
    with open(osp.join(PAGE_DIR, name), encoding='utf-8') as f:
        return f.read()
