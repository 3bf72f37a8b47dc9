"""How a training set's images map onto the decoded cache: records grouped by image, sub-images put back, the plans."""

from __future__ import annotations

import functools
import re
from os import path as osp

import numpy as np

from .decoded_cache import CHANNELS, CachePlan, Layout, check_memory, plan_cache
from .lmdb_util import (
    SUB_IMAGES,
    read_record,
    read_sub_images,
)
from .pair_sizes import (
    NUM_EXAMPLE_KEYS,
    folder_pairs,
    read_file,
)

#: The key of a sub-image made by basicsr's ``extract_subimages`` / ``prepare_div2k``: ``<image>_s<number>``.
SUB_IMAGE_KEY = re.compile(r'^(?P<image>.+)_s\d+$')


def image_groups(keys: list[str], by_image: bool) -> list[list[int]]:
    """The records (indices into ``keys``) grouped by source image, or one group per record.

    Args:
        keys (list[str]): The records' keys or file names; sub-images are ``<image>_s<n>``.
        by_image (bool): Group the sub-images of one image (``sampling: image``).
    """
    groups: dict[object, list[int]] = {}
    for record, key in enumerate(keys):
        stem = osp.splitext(osp.basename(key))[0]
        match = SUB_IMAGE_KEY.match(stem) if by_image else None
        groups.setdefault(match.group('image') if match else (stem, record), []).append(record)
    return list(groups.values())


def sub_image_layouts(opt: dict, name: str, sizes: dict) -> dict[str, Layout] | None:
    """Where each record of the two LMDBs lies in its source image, when both record it and cover every image.

    Args:
        opt (dict): The dataset's options.
        name (str): The dataset's name, for messages.
        sizes (dict): ``key -> ((h, w) GT, (h, w) LQ)`` of the records (:func:`lmdb_pair_sizes`).

    Returns:
        dict[str, Layout] | None: The ``'gt'`` and ``'lq'`` layouts (only the records of ``sizes``), or None
        where an LMDB has no ``sub_images.json`` or its records leave part of an image uncovered.

    Raises:
        ValueError: If a ``sub_images.json`` is malformed, lacks a record, places it outside its image, or
            the GT and LQ files disagree at ``scale``.
    """
    found = {}
    for side in ('gt', 'lq'):
        found[side] = _recorded_places(opt, name, sizes, side)
        if found[side] is None:
            return None
    scale = opt['scale']
    layouts: dict[str, Layout] = {'gt': {}, 'lq': {}}
    for key, record_sizes in sizes.items():
        (image, (top, left)), (lq_image, (lq_top, lq_left)) = found['gt'][1][key], found['lq'][1][key]
        (h, w, _), (lq_h, lq_w, _) = found['gt'][0][image], found['lq'][0].get(lq_image, (0, 0, {}))
        if lq_image != image or (top, left, h, w) != (lq_top * scale, lq_left * scale, lq_h * scale, lq_w * scale):
            raise ValueError(
                f'datasets:{name}: the {SUB_IMAGES} of dataroot_gt and dataroot_lq place {key} differently at '
                f'scale {scale} (in {image} {w}x{h} at {left},{top}; in {lq_image} {lq_w}x{lq_h} at '
                f'{lq_left},{lq_top}); prepare the LMDBs again.'
            )
        for side, size, place, record in (
            ('gt', (h, w), (top, left), record_sizes[0]),
            ('lq', (lq_h, lq_w), (lq_top, lq_left), record_sizes[1]),
        ):
            if place[0] + record[0] > size[0] or place[1] + record[1] > size[1]:
                raise ValueError(
                    f'datasets:{name}: {osp.join(opt["dataroot_" + side], SUB_IMAGES)} places {key} '
                    f'({record[1]}x{record[0]}) at {place[1]},{place[0]}, outside {image} ({size[1]}x{size[0]}); '
                    'prepare the LMDBs again.'
                )
            layouts[side].setdefault(image, (size[0], size[1], {}))[2][key] = place
    return layouts if all(_covers(layouts[side], sizes, index) for side, index in (('gt', 0), ('lq', 1))) else None


def _recorded_places(opt, name, sizes, side):
    """``(layout, {key: (image, place)})`` of one side's ``sub_images.json``, or None where it has none."""
    root = opt[f'dataroot_{side}']
    try:
        layout = read_sub_images(root)
    except ValueError as error:
        raise ValueError(f'datasets:{name}: {error}') from None
    if layout is None:
        return None
    places = {key: (image, place) for image, (_, _, parts) in layout.items() for key, place in parts.items()}
    missing = sorted(sizes.keys() - places.keys())
    if missing:
        raise ValueError(
            f'datasets:{name}: {osp.join(root, SUB_IMAGES)} places no sub-image for {len(missing)} '
            f'keys (e.g. {missing[:NUM_EXAMPLE_KEYS]}); prepare the LMDBs again.'
        )
    return layout, places


def _covers(layout, sizes, index):
    """Whether the records of each image of ``layout`` cover all its pixels (``index``: 0 GT sizes, 1 LQ)."""
    for h, w, parts in layout.values():
        covered = np.zeros((h, w), bool)
        for key, (top, left) in parts.items():
            record_h, record_w = sizes[key][index]
            covered[top : top + record_h, left : left + record_w] = True
        if not covered.all():
            return False
    return True


def plan_caches(
    opt: dict, name: str, sizes: dict, layouts: dict[str, Layout] | None, cache_dir: str | None
) -> dict[str, CachePlan]:
    """The caches of both sides (:func:`~.decoded_cache.plan_cache`), their memory checked together."""
    lmdb = opt['io_backend']['type'] == 'lmdb'
    if lmdb:
        keys = {'gt': sorted(sizes), 'lq': sorted(sizes)}
    else:
        pairs = folder_pairs(opt, name)
        keys = {
            side: [osp.relpath(pair[f'{side}_path'], opt[f'dataroot_{side}']) for pair in pairs]
            for side in ('gt', 'lq')
        }
    plans, held = {}, 0
    for side, index in (('gt', 0), ('lq', 1)):
        root = opt[f'dataroot_{side}']
        layout = layouts[side] if layouts else None
        if layout is not None:
            nbytes = sum(h * w for h, w, _ in layout.values()) * CHANNELS
        else:
            nbytes = sum(size[index][0] * size[index][1] for size in sizes.values()) * CHANNELS
        read = functools.partial(read_record, root) if lmdb else functools.partial(read_file, root)
        try:
            check_memory(nbytes, held, root)
            plans[side] = plan_cache(root, keys[side], read, nbytes=nbytes, cache_dir=cache_dir, layout=layout)
        except (OSError, MemoryError) as error:
            raise type(error)(f'datasets:{name}: cache_data: {error}') from None
        held += nbytes
    return plans
