// The results page: tables and the image viewer (wdsr_basicsr/utils/report.py inlines it into index.html).
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
// the before/after pane: two of HR, bicubic and the runs, chosen above it (kept from image to image)
function slider(root, item) {
  const choices = [['HR', item.gt], ['bicubic', item.bicubic]].concat(item.models.map(m => [m.label, m.sr]))
    .filter(([, src]) => src);
  if (choices.length < 2) return null;
  const names = choices.map(([n]) => n), src = n => choices.find(([c]) => c === n)[1];
  let [a, b] = JSON.parse(root.dataset.pair || '[]');
  if (!names.includes(a)) a = names.includes('bicubic') ? 'bicubic' : names[0];
  if (!names.includes(b) || b === a) b = names.find(n => n !== a && n !== 'HR' && n !== 'bicubic') || names.find(n => n !== a);
  root.dataset.pair = JSON.stringify([a, b]);
  const s = pane(root, 'before/after', [src(a), src(b)]);
  s.classList.add('before-after');
  const top = s.querySelectorAll('.layer')[1];  // the right-hand choice, shown right of the slider
  const range = el('input', {type: 'range', min: '0', max: '100', value: '50', class: 'slider'});
  const clip = () => { top.style.clipPath = `inset(0 0 0 ${range.value}%)`; };
  range.addEventListener('input', clip); clip();
  const picks = el('div', {class: 'picks'});
  [a, b].forEach((current, side) => {
    const select = el('select', {class: side ? 'right' : 'left', title: side ? 'right of the slider' : 'left of it'});
    for (const n of names) {
      const option = select.appendChild(el('option', {value: n}, n));
      option.selected = n === current;
    }
    select.addEventListener('change', () => {
      const pair = [a, b], before = pair[side];
      pair[side] = select.value;
      if (pair[1 - side] === pair[side]) pair[1 - side] = before;  // the same image on both sides: they swap
      root.dataset.pair = JSON.stringify(pair);
      s.replaceWith(slider(root, item)); applyView(root);
    });
    picks.appendChild(select);
  });
  s.insertBefore(picks, s.firstChild);
  s.appendChild(range);
  return s;
}
function show(root, item) {
  root.textContent = '';
  const c = item.crop || [0, 0, SIDE];
  view.scale = SIDE / c[2]; view.x = -c[0] * view.scale; view.y = -c[1] * view.scale;
  if (item.gt) root.appendChild(pane(root, 'HR', [item.gt]));
  if (item.bicubic) root.appendChild(pane(root, 'bicubic\n' + metricsText(item.bicubic_metrics), [item.bicubic]));
  for (const m of item.models) if (m.sr) root.appendChild(pane(root, m.label + '\n' + metricsText(m.metrics), [m.sr]));
  const s = slider(root, item);
  if (s) root.appendChild(s);
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
for (const line of DATA.notes) document.getElementById('notes').appendChild(el('div', {}, line));
for (const set of DATA.sets) {
  const sec = el('section', {class: 'set'});
  sec.appendChild(el('h2', {}, `${set.name} (${set.images.length} images)`));
  const table = el('table'), head = el('tr'), tbody = el('tbody');
  // [header, the image's figure, the mean row's figure, is a gain]
  const cols = [['image', it => it.name, `mean (${set.images.length} images)`, false]];
  for (const k of DATA.metrics) cols.push([`bicubic ${k}`, it => it.bicubic_metrics[k], set.mean.bicubic[k], false]);
  for (const [i, m] of DATA.models.entries()) {
    for (const k of DATA.metrics) cols.push([`${m} ${k}`, it => it.models[i].metrics[k], set.mean.models[i].metrics[k], false]);
    for (const k of DATA.metrics) cols.push([`${m} gain ${k}`, it => it.models[i].gain[k], set.mean.models[i].gain[k], true]);
  }
  const cell = (v, gain) => {
    const td = el('td', {}, typeof v === 'string' ? v : gain && typeof v === 'number' ? (v < 0 ? '' : '+') + fmt(v) : fmt(v));
    td.dataset.v = v === undefined ? '' : String(v);
    if (gain && typeof v === 'number') td.classList.add(v < 0 ? 'loss' : 'gain');
    return td;
  };
  cols.forEach(([name], col) => {
    const th = el('th', {}, name); th.addEventListener('click', () => sortBy(tbody, col, th)); head.appendChild(th);
  });
  const mean = el('tr', {class: 'mean'});
  for (const [, , v, gain] of cols) mean.appendChild(cell(v, gain));
  table.appendChild(el('thead')).appendChild(head); table.appendChild(tbody);
  table.appendChild(el('tfoot')).appendChild(mean);
  const viewer = el('div', {class: 'viewer'});
  for (const item of set.images) {
    const tr = el('tr', {class: 'row'});
    for (const [, get, , gain] of cols) tr.appendChild(cell(get(item), gain));
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
