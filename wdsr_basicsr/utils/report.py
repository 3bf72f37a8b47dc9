"""Results pages: per-image figures with the SR output beside HR and MATLAB bicubic, in one offline HTML file.

A test run (``test.py``, or ``benchmark.py --weights``) that saves its images also writes, per image, the HR
and the bicubic upscaling of its input (``report/<set>/<image>_gt.png``, ``_bicubic.png``), the bicubic
figures with the same metrics, and the square crop where the network gains most over bicubic
(``report_<set>.json``). :func:`write_page` turns one or several such result folders into ``index.html``:
one static file (styles and script inline, no server, no network) with a sortable table per set and a
viewer whose panes zoom and pan together, plus a before/after slider. Images are referenced, not
embedded, so a page of Urban100 opens fast. Names are escaped: an image called ``<script>.png`` is text.
"""
from __future__ import annotations

import html
import json
import os
from os import path as osp

import cv2
import numpy as np

from .records import finite, write_json
from .resize import matlab_resize

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
    gain = ((bicubic - gt)**2 - (sr[:h, :w] - gt)**2).reshape(h, w, -1).sum(axis=2)
    sums = cv2.integral(gain)
    boxes = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
    return [int(x), int(y), int(side)]


def save_references(folder: str, img_name: str, sr: np.ndarray, gt: np.ndarray, lq: np.ndarray,
                    scale: int) -> tuple[np.ndarray, list[int]]:
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
    bicubic = matlab_resize(lq, scale)[:gt.shape[0], :gt.shape[1]]
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
        report = _read_json(report_path, ('images', ))['images'] if osp.isfile(report_path) else {}
        sets[metrics['dataset']] = {'metrics': list(metrics['mean']), 'images': {
            img: dict(report.get(img, {}), metrics=values) for img, values in metrics['images'].items()}}
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
        dict: ``{'models': [...], 'metrics': [...], 'sets': [...], 'left_out': [...]}``; image paths are
        relative to ``page_dir``, and each missing or unreadable image is listed with the image.
    """
    read = {label: read_run(root) for label, root in runs.items()}
    labels = list(runs)
    first = read[labels[0]]
    common_sets = [s for s in first if all(s in read[label] for label in labels)]
    left_out = [f'set {s}: not in {", ".join(l for l in labels if s not in read[l])}'
                for s in sorted({s for r in read.values() for s in r} - set(common_sets))]
    metrics = sorted({m for r in read.values() for s in r.values() for m in s['metrics']})
    sets = []
    for set_name in common_sets:
        names = [n for n in first[set_name]['images'] if all(n in read[l][set_name]['images'] for l in labels)]
        for label in labels:
            extra = sorted(set(read[label][set_name]['images']) - set(names))
            if extra:
                left_out.append(f'{set_name}: {", ".join(extra)} only in {label}')
        images = []
        for name in names:
            base = read[labels[0]][set_name]['images'][name]
            entry = {'name': name, 'crop': base.get('crop'), 'bicubic_metrics': base.get('bicubic_metrics', {}),
                     'missing': [], 'models': []}
            for kind in ('gt', 'bicubic'):
                entry[kind] = _relative(runs[labels[0]], base.get(kind), page_dir, entry['missing'])
            for label in labels:
                item = read[label][set_name]['images'][name]
                entry['models'].append({'label': label, 'metrics': item['metrics'],
                                        'sr': _relative(runs[label], item.get('sr'), page_dir, entry['missing'])})
            images.append(entry)
        sets.append({'name': set_name, 'images': images})
    return {'models': labels, 'metrics': metrics, 'sets': sets, 'left_out': left_out}


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
    text = json.dumps(finite(data), allow_nan=False).replace('&', '\\u0026').replace('<', '\\u003c').replace('>', '\\u003e')
    os.makedirs(page_dir, exist_ok=True)
    path = osp.join(page_dir, 'index.html')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(PAGE.replace('__TITLE__', html.escape(title)).replace('__DATA__', text))
    return path, data


PAGE = r'''<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:14px system-ui,sans-serif;margin:16px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{cursor:pointer;background:#f3f3f3}th.sorted{background:#dde}
td:first-child,th:first-child{text-align:left}
tr.row{cursor:pointer}tr.row:hover{background:#eef}tr.selected{background:#dde}
.viewer{display:flex;flex-wrap:wrap;gap:8px}
.pane{width:256px}.pane .box{width:256px;height:256px;overflow:hidden;position:relative;border:1px solid #888;
background:#000;cursor:grab}
.pane .box img{position:absolute;left:0;top:0;transform-origin:0 0;image-rendering:pixelated}
.pane .box .layer{position:absolute;left:0;top:0;right:0;bottom:0;overflow:hidden}
.pane .label{font-size:12px;margin-top:2px;white-space:pre}
.missing{color:#a00}
</style></head><body>
<h1>__TITLE__</h1>
<p>Click a column to sort, a row to view the image. Wheel: zoom, drag: pan (all panes together).
The view starts on the crop where the network gains most over bicubic.</p>
<div id="left-out" class="missing"></div>
<div id="sets"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
'use strict';
const DATA = JSON.parse(document.getElementById('data').textContent);
const view = {scale: 1, x: 0, y: 0};
const SIDE = 256;
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
// null: a figure that is not a finite number (the PSNR of an exact image is infinite)
function fmt(v) { return typeof v === 'number' ? v.toFixed(4) : v === null ? 'n/a' : ''; }
// file paths (relative, '/'-separated) as URLs: a name with '#', '?' or '%' is a file, not a fragment or query
function url(path) { return path.split('/').map(encodeURIComponent).join('/'); }
function applyView(root) {
  for (const img of root.querySelectorAll('.box img')) {
    img.style.transform = `translate(${view.x}px,${view.y}px) scale(${view.scale})`;
  }
}
function interact(box, root) {
  let drag = null;
  box.addEventListener('wheel', ev => {
    ev.preventDefault();
    const r = box.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    const f = ev.deltaY < 0 ? 1.25 : 0.8;
    view.x = mx - (mx - view.x) * f; view.y = my - (my - view.y) * f; view.scale *= f;
    applyView(root);
  });
  box.addEventListener('mousedown', ev => { drag = {x: ev.clientX - view.x, y: ev.clientY - view.y}; });
  window.addEventListener('mouseup', () => { drag = null; });
  window.addEventListener('mousemove', ev => {
    if (drag) { view.x = ev.clientX - drag.x; view.y = ev.clientY - drag.y; applyView(root); }
  });
}
function pane(root, label, srcs) {
  const p = el('div', {class: 'pane'}), box = el('div', {class: 'box'});
  for (const src of srcs) box.appendChild(el('div', {class: 'layer'})).appendChild(el('img', {src: url(src), alt: label}));
  p.appendChild(box); p.appendChild(el('div', {class: 'label'}, label));
  interact(box, root);
  return p;
}
function metricsText(m) { return DATA.metrics.map(k => `${k} ${fmt(m[k])}`).join('\n'); }
function show(root, item) {
  root.textContent = '';
  const c = item.crop || [0, 0, SIDE];
  view.scale = SIDE / c[2]; view.x = -c[0] * view.scale; view.y = -c[1] * view.scale;
  if (item.gt) root.appendChild(pane(root, 'HR', [item.gt]));
  if (item.bicubic) root.appendChild(pane(root, 'bicubic\n' + metricsText(item.bicubic_metrics), [item.bicubic]));
  for (const m of item.models) if (m.sr) root.appendChild(pane(root, m.label + '\n' + metricsText(m.metrics), [m.sr]));
  const first = item.models.find(m => m.sr);
  if (item.bicubic && first) {
    const s = pane(root, `before/after: bicubic | ${first.label}`, [item.bicubic, first.sr]);
    const top = s.querySelectorAll('.layer')[1];  // the network's image, shown right of the slider
    const range = el('input', {type: 'range', min: '0', max: '100', value: '50', class: 'slider'});
    const clip = () => { top.style.clipPath = `inset(0 0 0 ${range.value}%)`; };
    range.addEventListener('input', clip); clip();
    s.appendChild(range); root.appendChild(s);
  }
  for (const path of item.missing) root.appendChild(el('div', {class: 'missing'}, 'missing or unreadable: ' + path));
  applyView(root);
}
// a figure cell's sort value: n/a (null) above every number, as an infinite PSNR is; a missing one below
function value(v) { return v === 'null' ? Infinity : v === '' ? -Infinity : Number(v); }
function sortBy(tbody, col, th) {
  const rows = Array.from(tbody.rows);
  const desc = th.dataset.order !== 'desc';
  th.dataset.order = desc ? 'desc' : 'asc';
  rows.sort((a, b) => {
    const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
    const r = col === 0 ? String(x).localeCompare(String(y)) : Math.sign(value(x) - value(y)) || 0;
    return desc ? -r : r;
  });
  for (const r of rows) tbody.appendChild(r);
  for (const h of th.parentNode.children) h.classList.toggle('sorted', h === th);
}
for (const line of DATA.left_out) document.getElementById('left-out').appendChild(el('div', {}, 'left out: ' + line));
for (const set of DATA.sets) {
  const sec = el('section', {class: 'set'});
  sec.appendChild(el('h2', {}, `${set.name} (${set.images.length} images)`));
  const table = el('table'), head = el('tr'), tbody = el('tbody');
  const cols = [['image', it => it.name]];
  for (const k of DATA.metrics) cols.push([`bicubic ${k}`, it => it.bicubic_metrics[k]]);
  for (const [i, m] of DATA.models.entries())
    for (const k of DATA.metrics) cols.push([`${m} ${k}`, it => it.models[i].metrics[k]]);
  cols.forEach(([name], col) => {
    const th = el('th', {}, name); th.addEventListener('click', () => sortBy(tbody, col, th)); head.appendChild(th);
  });
  table.appendChild(el('thead')).appendChild(head); table.appendChild(tbody);
  const viewer = el('div', {class: 'viewer'});
  for (const item of set.images) {
    const tr = el('tr', {class: 'row'});
    for (const [, get] of cols) {
      const v = get(item), td = el('td', {}, typeof v === 'string' ? v : fmt(v));
      td.dataset.v = v === undefined ? '' : String(v); tr.appendChild(td);
    }
    tr.addEventListener('click', () => {
      for (const r of tbody.rows) r.classList.toggle('selected', r === tr);
      show(viewer, item);
    });
    tbody.appendChild(tr);
  }
  sec.appendChild(table); sec.appendChild(viewer);
  document.getElementById('sets').appendChild(sec);
  if (set.images.length) show(viewer, set.images[0]);
}
</script></body></html>
'''
