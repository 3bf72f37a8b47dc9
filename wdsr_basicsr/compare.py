"""Compare several test runs on one page, and draw the figure every SR paper prints.

Usage: python -m wdsr_basicsr.compare results/edsr results/wdsr_b ... -o compare/ [--labels ...] [--images N]
[--pick SET/IMAGE ...] [--metric psnr_y] (or the console script ``wdsr-compare``).

The result folders are those of ``test.py`` runs that saved their images (``val: save_img: true``):
``metrics_<set>.json``, ``report_<set>.json``, the SR images, HR and bicubic. Writes:

* ``compare/index.html``: the results page of :mod:`wdsr_basicsr.utils.report` across the runs (the sets
  and images that all of them hold; what is left out is named on the page);
* ``compare/figure.png`` and ``figure.pdf``: per chosen image (default: those where the runs' figures
  spread most), the whole HR with the crop's box, then the crop in HR, bicubic and each run, labelled
  with their figures; the crops are also written as PNGs (``compare/crops/``), pixel for pixel.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from os import path as osp

import cv2
import numpy as np

from .utils import report
from .utils.messages import show_messages

#: What a crop file's name keeps of a label: other runs of characters become one ``_``.
FILE_NAME_CHARACTERS = re.compile(r'[^A-Za-z0-9._+-]+')
#: Columns every figure has beside the runs'.
RESERVED_LABELS = ('hr', 'bicubic')


def spread(image: dict, metric: str | None) -> float:
    """How far apart the runs' ``metric`` values are on one page entry (0 when one run lacks it)."""
    values = [m['metrics'].get(metric) for m in image['models']]
    return 0.0 if None in values else max(values) - min(values)


def choose(data: dict, count: int, metric: str | None, picks: list[str] | None) -> list[tuple[str, dict]]:
    """The (set, image entry) pairs for the figure: ``picks`` (``SET/IMAGE``), else the ``count`` widest spreads."""
    entries = [(s['name'], image) for s in data['sets'] for image in s['images']]
    if picks:
        chosen = [(s, i) for s, i in entries if f'{s}/{i["name"]}' in picks]
        unknown = sorted(set(picks) - {f'{s}/{i["name"]}' for s, i in chosen})
        if unknown:
            raise ValueError(f'--pick {", ".join(unknown)}: not an image that every run holds.')
        return chosen
    return sorted(entries, key=lambda e: spread(e[1], metric), reverse=True)[:count]


def check_labels(labels: list[str], runs: list[str]) -> None:
    """Refuse labels that are not one distinct, one-line text per run, or that name the HR or bicubic column.

    A label is shown as typed (``"WDSR-B 500 it"``); its crop files get a safe name (:func:`crop_names`).

    Raises:
        ValueError: Naming the label at fault.
    """
    if len(labels) != len(runs):
        raise ValueError(f'--labels: {len(labels)} labels for {len(runs)} runs; give one per run.')
    for label in labels:
        if not label.strip() or not label.isprintable():
            raise ValueError(f'--labels: {label!r} is not a label: give some text on one line.')
        if label.lower() in RESERVED_LABELS:
            raise ValueError(f'--labels: {label!r} is the name of the {label} column; choose another label.')
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(
            f'--labels: {", ".join(repeated)} given to several runs; give one distinct label per run '
            "(by default a run is labelled with its folder's name)."
        )


def crop_names(labels: list[str]) -> dict[str, str]:
    """The file name part of each column's crops: ``HR``, ``bicubic``, and each label with the characters a file
    name should not hold made ``_`` (``WDSR-B 500 it`` -> ``WDSR-B_500_it``), numbered where two would meet."""
    names = {'HR': 'HR', 'bicubic': 'bicubic'}
    for number, label in enumerate(labels, 1):
        name = FILE_NAME_CHARACTERS.sub('_', label).strip('_.') or 'run'
        names[label] = f'{name}_{number}' if name.lower() in {n.lower() for n in names.values()} else name
    return names


def read_panels(page_dir: str, image: dict) -> dict[str, np.ndarray]:
    """The decoded images of a figure row: ``'HR'``, ``'bicubic'`` and each run's label.

    Raises:
        ValueError: Naming the first image that cannot be decoded (a truncated file).
    """
    paths = {'HR': image['gt'], 'bicubic': image['bicubic']}
    paths.update((m['label'], m['sr']) for m in image['models'])
    panels = {}
    for label, path in paths.items():
        pixels = cv2.imread(osp.join(page_dir, path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f'{osp.normpath(osp.join(page_dir, path))} cannot be decoded')
        panels[label] = pixels
    return panels


def write_figure(data: dict, chosen: list[tuple[str, dict, dict]], page_dir: str, metric: str | None) -> list[str]:
    """Draw the figure of ``chosen`` into ``page_dir/figure.{png,pdf}``; the crops go to ``page_dir/crops``.

    Args:
        data (dict): The page's data (:func:`report.page_data`).
        chosen (list): ``(set, image entry, panels)``, the panels from :func:`read_panels`.
        page_dir (str): The output folder.
        metric (str): The figure the images were chosen by.

    Returns:
        list[str]: The files written.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    crops_dir = osp.join(page_dir, 'crops')
    os.makedirs(crops_dir, exist_ok=True)
    columns = 3 + len(data['models'])
    fig, axes = plt.subplots(len(chosen), columns, figsize=(2.2 * columns, 2.8 * len(chosen)), squeeze=False)
    written = []
    names = crop_names(data['models'])
    for row, (set_name, image, pixels) in enumerate(chosen):
        x, y, side = image['crop']
        panels = [('HR', None), ('bicubic', image['bicubic_metrics'])]
        panels += [(m['label'], m['metrics']) for m in image['models']]
        axes[row][0].imshow(pixels['HR'][:, :, ::-1], interpolation='nearest')
        axes[row][0].add_patch(Rectangle((x - 0.5, y - 0.5), side, side, fill=False, edgecolor='red', linewidth=1.5))
        axes[row][0].set_title(f'{set_name}/{image["name"]}', fontsize=8)
        for col, (label, metrics) in enumerate(panels, 1):
            crop = pixels[label][y : y + side, x : x + side]
            crop_path = osp.join(crops_dir, f'{set_name}_{image["name"]}_{names[label]}.png')
            cv2.imwrite(crop_path, crop)
            written.append(crop_path)
            axes[row][col].imshow(crop[:, :, ::-1], interpolation='nearest')
            figures = '' if metrics is None else '\n' + ' / '.join(_figure(k, metrics[k]) for k in sorted(metrics))
            axes[row][col].set_title(label + figures, fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    figures = ' / '.join(data['metrics'])
    fig.suptitle(f'crops where the runs differ most ({metric}); figures of the whole image: {figures}', fontsize=8)
    fig.tight_layout()
    for ext in ('png', 'pdf'):
        path = osp.join(page_dir, f'figure.{ext}')
        fig.savefig(path, dpi=200)
        written.append(path)
    plt.close(fig)
    return written


def _figure(name, value):
    """A figure as the paper figure prints it (n/a for null: not a finite number)."""
    if value is None:
        return 'n/a'
    return f'{value:.2f}' if 'psnr' in name else f'{value:.4f}'


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(description='Compare test runs on one results page and draw the paper figure.')
    parser.add_argument('runs', nargs='+', help='Result folders of test.py runs (results/<name>).')
    parser.add_argument('-o', '--output', required=True, help='Folder for index.html, figure.png/pdf and crops/.')
    parser.add_argument('--labels', nargs='+', default=None, help='A label per run. Default: the folder names.')
    parser.add_argument('--images', type=int, default=2, help='Images in the figure. Default: 2.')
    parser.add_argument('--pick', nargs='+', default=None, metavar='SET/IMAGE', help='Images for the figure.')
    parser.add_argument(
        '--metric',
        default=None,
        help='Figure by which the spread is measured. Default: the first PSNR the runs report.',
    )
    args = parser.parse_args(argv)
    labels = args.labels or [osp.basename(osp.normpath(run)) for run in args.runs]
    try:
        check_labels(labels, args.runs)
        for run in args.runs:
            if not osp.isdir(run) or not any(n.startswith('metrics_') and n.endswith('.json') for n in os.listdir(run)):
                raise ValueError(f'{run}: not the result folder of a test run (no metrics_<set>.json in it).')
        if any(osp.realpath(run) == osp.realpath(args.output) for run in args.runs):
            raise ValueError(
                f'-o {args.output} is one of the runs; its own index.html would be replaced: choose another folder.'
            )
        runs = dict(zip(labels, (osp.abspath(run) for run in args.runs)))
        page, data = report.write_page(runs, args.output, 'compare: ' + ', '.join(labels))
        metric = args.metric or next((m for m in data['metrics'] if m.startswith('psnr')), None)
        chosen = []
        for set_name, image in choose(data, args.images, metric, args.pick):
            if not (image['crop'] and image['gt'] and image['bicubic'] and all(m['sr'] for m in image['models'])):
                continue
            try:
                chosen.append((set_name, image, read_panels(args.output, image)))
            except ValueError as error:
                data['left_out'].append(f'figure: {set_name}/{image["name"]}: {error}')
        figure = write_figure(data, chosen, args.output, metric) if chosen else []
    except (OSError, ValueError, KeyError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for line in data['left_out']:
        print(f'left out: {line}', file=sys.stderr)
    print(f'wrote {page}' + (f' and {figure[-2]}, {figure[-1]}' if figure else ' (no image for a figure)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
