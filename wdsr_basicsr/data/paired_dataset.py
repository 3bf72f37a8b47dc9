"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""

from __future__ import annotations

import functools
import logging
import math
import random
import re
from os import path as osp

import numpy as np
import torch
from basicsr.data.data_util import paired_paths_from_folder, paired_paths_from_meta_info_file
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import bgr2ycbcr, get_root_logger, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from ..declare import Rule
from .decoded_cache import CHANNELS, CachePlan, DecodedImages, Layout, check_memory, header_size, open_cache, plan_cache
from .lmdb_util import (
    SUB_IMAGES,
    check_lmdb_complete,
    lmdb_keys,
    read_meta_info,
    read_record,
    read_sub_images,
    record_shape,
)

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5
#: How a training sample picks its image (``sampling``, with ``cache_data``): each source image equally often
#: (the authors'), or each stored record equally often (basicsr's; on sub-image LMDBs this weights images by area).
SAMPLINGS = ('image', 'record')
#: The key of a sub-image made by basicsr's ``extract_subimages`` / ``prepare_div2k``: ``<image>_s<number>``.
SUB_IMAGE_KEY = re.compile(r'^(?P<image>.+)_s\d+$')


def patch_fault(gt_size: int, scale: int) -> str | None:
    """What is wrong with a training set's ``gt_size`` for ``scale``, or None (the option check asks too)."""
    if gt_size % scale:
        return f'gt_size={gt_size} is not a multiple of scale={scale} (the LQ patch is gt_size / scale pixels).'
    return None


def cache_options_fault(opt: dict) -> str | None:
    """What is wrong with a dataset's ``cache_data`` / ``sampling`` options, or None (the option check asks too)."""
    cache_data = bool(opt.get('cache_data', False))
    if 'sampling' in opt and not cache_data:
        return (
            'sampling is read with cache_data: true only (without it every stored image is sampled equally '
            'often, as basicsr does).'
        )
    if opt.get('sampling', 'image') not in SAMPLINGS:
        return (
            f"sampling={opt['sampling']!r}; use image (each source image equally often: the authors') or "
            "record (each stored image equally often: basicsr's)."
        )
    backend = (opt.get('io_backend') or {}).get('type')
    if cache_data and backend not in ('lmdb', 'disk'):
        return f'cache_data reads io_backend lmdb or disk, not {backend!r}.'
    if opt.get('cache_dir') is not None:
        if not cache_data:
            return 'cache_dir is read with cache_data: true only (it is where the decoded images go).'
        if not isinstance(opt['cache_dir'], str) or not opt['cache_dir']:
            return f'cache_dir={opt["cache_dir"]!r} must be the path of a folder (text).'
    return None


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """basicsr's ``PairedImageDataset`` that names the option, LMDB and key at fault.

    It reads exactly what ``PairedImageDataset`` reads (same options, same
    crops and augmentation). On top, before any sample is read
    (:meth:`check_data`, which the entries also call before the run starts):

    * ``dataroot_gt`` / ``dataroot_lq`` must exist, and with the ``lmdb``
      backend hold a ``meta_info.txt`` whose every key is in the LMDB, and a
      complete ``data.mdb`` (:func:`check_lmdb_complete`);
    * LQ and GT must list the same keys (files): the error gives a few keys
      found on one side only;
    * every LQ size must be the GT size divided by ``scale`` (rounded down;
      exactly, for a training set that basicsr crops), so a scale that differs
      between the options and the data is caught with one image as example.
      Sizes come from ``meta_info.txt`` or the image files' headers; where an
      LMDB's two shapes disagree, the records themselves are decoded: when they
      agree, a warning names the meta_info line that is wrong and training
      goes on, otherwise the error gives the records' sizes;
    * a training set's every LQ image must hold the LQ patch
      (``gt_size / scale``), and an epoch must give each process at least one
      full batch.

    While reading, a record that is missing or cannot be decoded raises an
    error naming the LMDB and the key (:func:`raise_if_bad_record`, which
    :mod:`wdsr_basicsr.compat` gives basicsr's ``PairedImageDataset`` too).

    With ``cache_data: true`` (basicsr's key of its video datasets) every image
    is decoded once into a memory-mapped file that all loader workers and
    ranks share (:mod:`wdsr_basicsr.data.decoded_cache`), from an LMDB or a
    folder of whole images, and each sample is cropped from it: the same
    pixels, crops, flips and rotations as decoding, without a PNG decode per
    sample. ``sampling`` then says how a training sample picks its image:

    * ``image`` (the default with ``cache_data``; the authors' code): each
      source image equally often, a uniform position over the whole image;
      an epoch is one sample per image. Sub-images of one image (keys
      ``<image>_s<n>``, as ``prepare_div2k`` and basicsr's
      ``extract_subimages`` name them) are put back together into their image
      where the LMDB records where each lies (``sub_images.json``, written by
      ``prepare_div2k``): the same positions as from the whole image. Without
      that record a sub-image is picked in proportion to its crop positions,
      which draws positions where sub-images overlap more often, and a
      warning says so.
    * ``record``: each stored image equally often, as basicsr's
      ``PairedImageDataset`` (on sub-image LMDBs this weights each image by
      its area and over-samples interiors).

    Args:
        opt (dict): ``PairedImageDataset``'s options, and ``cache_data`` (bool,
            default false), ``sampling`` ('image' or 'record', with
            ``cache_data``), ``cache_dir`` (folder of the decoded images,
            default beside the data).
    """

    #: What this class reads beside ``PairedImageDataset`` (:mod:`wdsr_basicsr.declare`).
    option_keys = {
        '': {
            'cache_data': Rule('bool', null=True),
            'sampling': Rule('str', words=SAMPLINGS),
            'cache_dir': Rule('str', null=True),
        }
    }

    def __init__(self, opt: dict):
        plans = self.check_data(opt)
        self.backend = opt['io_backend']['type']
        self.cache_data = bool(opt.get('cache_data', False))
        self.sampling = opt.get('sampling', 'image' if self.cache_data else 'record')
        super().__init__(opt)
        if self.cache_data:
            self._open_cache(plans)

    @classmethod
    def check_data(cls, opt: dict, world_size: int | None = None) -> dict[str, CachePlan]:
        """Refuse data this dataset cannot read, before any sample is: each fault one line naming the file.

        Reads ``meta_info.txt`` and the LMDBs' keys, or the image files' headers: no image is decoded (but
        where an LMDB's meta_info.txt contradicts itself, see the class). The entries call it before the run
        starts (with the number of processes); the constructor calls it too. With ``cache_data`` it also
        finds the cache of each side (hashing the encoded images, :func:`~.decoded_cache.plan_cache`) and
        checks the memory and disk it needs.

        Args:
            opt (dict): The dataset's options, with ``phase`` and ``scale``.
            world_size (int | None): Processes that share the training set: with it, an epoch must give each
                at least one full batch. Default: None (not checked).

        Returns:
            dict[str, CachePlan]: With ``cache_data``, the cache of ``'gt'`` and of ``'lq'``; else empty.

        Raises:
            ValueError: A missing option, a scale that does not fit the data, an image smaller than the
                patch, a key missing from an LMDB, fewer samples than a batch, a wrong ``sub_images.json``.
            OSError: A missing root or meta_info.txt, an LMDB cut short, no writable folder or disk for the cache.
            MemoryError: Decoded images that do not fit in memory.
        """
        name = opt.get('name', opt.get('phase', 'dataset'))
        for key in ('dataroot_gt', 'dataroot_lq'):
            if not opt.get(key):
                raise ValueError(f'datasets:{name}: option {key} is missing.')
            if not osp.exists(opt[key]):
                raise FileNotFoundError(f'datasets:{name}: {key} {opt[key]} does not exist.')
        train = opt['phase'] == 'train'
        fault = (patch_fault(opt['gt_size'], opt['scale']) if train else None) or cache_options_fault(opt)
        if fault:
            raise ValueError(f'datasets:{name}: {fault}')
        lmdb = opt['io_backend']['type'] == 'lmdb'
        sizes = lmdb_pair_sizes(opt, name) if lmdb else folder_pair_sizes(opt, name)
        _check_sizes(opt, name, sizes, exact=train and not opt.get('cache_data'))
        by_image = train and bool(opt.get('cache_data')) and opt.get('sampling', 'image') == 'image'
        layouts = sub_image_layouts(opt, name, sizes) if by_image and lmdb else None
        if train and world_size:
            samples = len(layouts['gt']) if layouts else len(image_groups(list(sizes), by_image))
            _check_batch(opt, name, samples, world_size)
        return _plan_caches(opt, name, sizes, layouts, opt.get('cache_dir')) if opt.get('cache_data') else {}

    def _open_cache(self, plans: dict[str, CachePlan]) -> None:
        """Map (or decode first) the images of both sides, and say how a training sample picks its image."""
        log = get_root_logger().info
        self.caches: dict[str, DecodedImages] = {}
        for client_key in ('gt', 'lq'):
            plan = plans[client_key]
            held = sum(cache.nbytes for cache in self.caches.values())
            log(f'cache_data: {plan.root}: {check_memory(plan.nbytes, held, plan.root)}.')
            self.caches[client_key] = open_cache(plan, log)
        #: the cache entry of every record (GT and LQ), or of every image put back together
        self.entries = {
            client_key: [self._cache_key(p[f'{client_key}_path'], root) for p in self.paths]
            for client_key, root in (('gt', self.gt_folder), ('lq', self.lq_folder))
        }
        self.images = sorted(plans['gt'].layout) if plans['gt'].layout is not None else None
        self.groups = image_groups(self.entries['gt'], self.sampling == 'image')
        if self.opt['phase'] == 'train' and self.images is None:  # a record is picked by its crop positions
            lq_size = self.opt['gt_size'] // self.opt['scale']
            self.weights = [
                [
                    (h - lq_size + 1) * (w - lq_size + 1)
                    for h, w in (self.caches['lq'].shape(self.entries['lq'][record]) for record in group)
                ]
                for group in self.groups
            ]
            overlapping = sum(len(group) > 1 for group in self.groups)
            if overlapping and self.sampling == 'image':
                _warn(
                    f'datasets:{self.opt.get("name", "train")}: {overlapping} images of {self.lq_folder} are '
                    f'stored as sub-images with no complete {SUB_IMAGES} (where each lies in its image): a '
                    'position is drawn once per sub-image that holds it, so where sub-images overlap it is drawn '
                    'more often than elsewhere (up to 6x in a DIV2K image cut in 480/240 sub-images, at x2 and '
                    'gt_size 96); prepare the LMDBs again with wdsr-prepare-div2k, which records the places, or '
                    'train from the whole images.'
                )

    def _cache_key(self, path, root):
        return path if self.backend == 'lmdb' else osp.relpath(path, root)

    def __len__(self):
        if self.cache_data and self.opt['phase'] == 'train':
            return len(self.images) if self.images is not None else len(self.groups)
        return super().__len__()

    def __getitem__(self, index):
        if not self.cache_data:
            return super().__getitem__(index)
        train = self.opt['phase'] == 'train'
        if train and self.images is not None:  # sub-images put back together: the whole image
            image = self.images[index]
            return self._sample(self.caches['gt'][image], self.caches['lq'][image], image, image)
        group = self.groups[index] if train else [index]
        record = group[0] if len(group) == 1 else random.choices(group, self.weights[index])[0]
        img_gt = self.caches['gt'][self.entries['gt'][record]]
        img_lq = self.caches['lq'][self.entries['lq'][record]]
        return self._sample(img_gt, img_lq, self.paths[record]['gt_path'], self.paths[record]['lq_path'])

    def _sample(self, img_gt: np.ndarray, img_lq: np.ndarray, gt_path: str, lq_path: str) -> dict:
        """basicsr's ``PairedImageDataset`` sample from decoded uint8 images: crop and augment, then to [0, 1].

        The crop and the flips and rotations move pixels only, so taking them
        before the conversion to float gives the values basicsr's order gives.
        """
        scale = self.opt['scale']
        if self.opt['phase'] == 'train':
            h, w = img_lq.shape[0] * scale, img_lq.shape[1] * scale
            if 0 <= img_gt.shape[0] - h < scale and 0 <= img_gt.shape[1] - w < scale:
                img_gt = img_gt[:h, :w]  # HR not a multiple of scale (whole images): the rows no LR pixel covers
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, self.opt['gt_size'], scale, gt_path)
            img_gt, img_lq = img_gt.copy(), img_lq.copy()  # basicsr's augment flips in place; the cache is shared
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        if self.opt['phase'] != 'train':
            img_gt = img_gt[0 : img_lq.shape[0] * scale, 0 : img_lq.shape[1] * scale, :]
        gt: torch.Tensor
        lq: torch.Tensor
        if self.opt.get('color') == 'y':
            y_gt, y_lq = (bgr2ycbcr(img.astype(np.float32) / 255.0, y_only=True)[..., None] for img in (img_gt, img_lq))
            gt, lq = img2tensor([y_gt, y_lq], bgr2rgb=True, float32=True)
        else:  # BGR to RGB, HWC to CHW in uint8, then to [0, 1]: the values basicsr's float32 order gives
            gt, lq = (
                torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float().div_(255.0)
                for img in (img_gt, img_lq)
            )
        if self.mean is not None or self.std is not None:
            normalize(lq, self.mean, self.std, inplace=True)
            normalize(gt, self.mean, self.std, inplace=True)
        return {'lq': lq, 'gt': gt, 'lq_path': lq_path, 'gt_path': gt_path}


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
    for side, root_key in (('gt', 'dataroot_gt'), ('lq', 'dataroot_lq')):
        try:
            layout = read_sub_images(opt[root_key])
        except ValueError as error:
            raise ValueError(f'datasets:{name}: {error}') from None
        if layout is None:
            return None
        places = {key: (image, place) for image, (_, _, parts) in layout.items() for key, place in parts.items()}
        missing = sorted(sizes.keys() - places.keys())
        if missing:
            raise ValueError(
                f'datasets:{name}: {osp.join(opt[root_key], SUB_IMAGES)} places no sub-image for {len(missing)} '
                f'keys (e.g. {missing[:NUM_EXAMPLE_KEYS]}); prepare the LMDBs again.'
            )
        found[side] = (layout, places)
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
    for side, index in (('gt', 0), ('lq', 1)):
        for h, w, parts in layouts[side].values():
            covered = np.zeros((h, w), bool)
            for key, (top, left) in parts.items():
                record_h, record_w = sizes[key][index]
                covered[top : top + record_h, left : left + record_w] = True
            if not covered.all():
                return None
    return layouts


def _plan_caches(
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
        read = functools.partial(read_record, root) if lmdb else functools.partial(_read_file, root)
        try:
            check_memory(nbytes, held, root)
            plans[side] = plan_cache(root, keys[side], read, nbytes=nbytes, cache_dir=cache_dir, layout=layout)
        except (OSError, MemoryError) as error:
            raise type(error)(f'datasets:{name}: cache_data: {error}') from None
        held += nbytes
    return plans


def _read_file(root: str, key: str) -> bytes:
    """The bytes of the file ``key`` under ``root``."""
    with open(osp.join(root, key), 'rb') as f:
        return f.read()


def lmdb_pair_sizes(opt: dict, name: str) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per key of a GT and an LQ LMDB: the GT's and the LQ's (h, w), from meta_info.txt.

    The two LMDBs must list the same keys, each present in its LMDB, and be complete. Where the two
    meta_info.txt shapes do not fit the scale, the records are decoded: if they fit, a warning names the
    meta_info line that is wrong.
    """
    metas = {}
    for key in ('dataroot_gt', 'dataroot_lq'):
        meta = osp.join(opt[key], 'meta_info.txt')
        if not osp.isfile(meta):
            raise FileNotFoundError(
                f'datasets:{name}: {key} {opt[key]} has no meta_info.txt; is it an LMDB '
                'made by scripts/prepare_div2k.py or basicsr?'
            )
        check_lmdb_complete(opt[key])
        metas[key] = read_meta_info(opt[key])
        absent = sorted(metas[key].keys() - lmdb_keys(opt[key]))
        if absent:
            raise LookupError(
                f'datasets:{name}: {meta} lists {len(absent)} keys that the LMDB does not hold '
                f'(e.g. {absent[:NUM_EXAMPLE_KEYS]}); prepare it again.'
            )
    gt, lq = metas['dataroot_gt'], metas['dataroot_lq']
    if gt.keys() != lq.keys():
        only_gt = sorted(gt.keys() - lq.keys())[:NUM_EXAMPLE_KEYS]
        only_lq = sorted(lq.keys() - gt.keys())[:NUM_EXAMPLE_KEYS]
        raise ValueError(
            f'datasets:{name}: the LMDBs list different keys: {len(gt.keys() - lq.keys())} only in '
            f'dataroot_gt {opt["dataroot_gt"]} (e.g. {only_gt}), {len(lq.keys() - gt.keys())} only '
            f'in dataroot_lq {opt["dataroot_lq"]} (e.g. {only_lq}).'
        )
    sizes = {}
    for key in sorted(gt):  # basicsr's order
        (gt_shape, gt_line), (lq_shape, lq_line) = gt[key], lq[key]
        if gt_shape and lq_shape and fits(gt_shape[:2], lq_shape[:2], opt['scale']):
            sizes[key] = (gt_shape[:2], lq_shape[:2])
            continue
        gt_real, lq_real = (record_shape(opt[root], key)[:2] for root in ('dataroot_gt', 'dataroot_lq'))
        real = (gt_real, lq_real)
        for root, shape, line, stored in (
            ('dataroot_gt', gt_shape, gt_line, real[0]),
            ('dataroot_lq', lq_shape, lq_line, real[1]),
        ):
            if shape and tuple(shape[:2]) != stored and fits(gt_real, lq_real, opt['scale']):
                _warn(
                    f'datasets:{name}: {osp.join(opt[root], "meta_info.txt")}, line {line}: records {key} as '
                    f'{shape[1]}x{shape[0]}, but the image stored is {stored[1]}x{stored[0]}; the record is used.'
                )
        sizes[key] = real
    return sizes


def _warn(message: str) -> None:
    """A warning of the data check, on basicsr's logger (the run's log) without setting that logger up: the
    check runs before basicsr's pipeline does it, and a logger set up first would be kept without the log file."""
    logging.getLogger('basicsr').warning(message)


def folder_pair_sizes(opt: dict, name: str) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per GT file (relative to ``dataroot_gt``) of paired folders: the GT's and the LQ's (h, w), from headers.

    The pairs are basicsr's (``filename_tmpl``, ``meta_info_file``).
    """
    sizes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for pair in folder_pairs(opt, name):
        try:
            sizes[osp.relpath(pair['gt_path'], opt['dataroot_gt'])] = (
                header_size(pair['gt_path']),
                header_size(pair['lq_path']),
            )
        except (OSError, ValueError) as error:
            raise ValueError(f'datasets:{name}: {pair["gt_path"]} or {pair["lq_path"]}: {error}') from None
    return sizes


def folder_pairs(opt: dict, name: str) -> list[dict[str, str]]:
    """basicsr's pairs of paired folders (``filename_tmpl``, ``meta_info_file``): ``gt_path`` and ``lq_path``."""
    folders = [opt['dataroot_lq'], opt['dataroot_gt']]
    try:
        if opt.get('meta_info_file') is not None:
            return paired_paths_from_meta_info_file(
                folders, ['lq', 'gt'], opt['meta_info_file'], opt.get('filename_tmpl', '{}')
            )
        return paired_paths_from_folder(folders, ['lq', 'gt'], opt.get('filename_tmpl', '{}'))
    except (AssertionError, ValueError) as error:  # basicsr asserts that the folders pair up
        raise ValueError(f'datasets:{name}: {error}') from None


def fits(gt: tuple[int, ...], lq: tuple[int, ...], scale: int) -> bool:
    """Whether an LQ image of size ``lq`` is a GT of size ``gt`` downscaled by ``scale`` (sizes rounded down)."""
    return tuple(lq) == (gt[0] // scale, gt[1] // scale)


def _check_sizes(opt, name, sizes, exact):
    """Each pair fits the scale (exactly, for basicsr's crop of a training sample), each LQ holds the patch."""
    scale = opt['scale']
    lq_size = opt['gt_size'] // scale if opt['phase'] == 'train' else 0
    for key, ((h, w), (lq_h, lq_w)) in sizes.items():
        if not fits((h, w), (lq_h, lq_w), scale) or (exact and (h, w) != (lq_h * scale, lq_w * scale)):
            why = (
                (
                    ' (basicsr crops a training sample from exact multiples: crop the GT, or use cache_data: '
                    'true, which drops the rows no LQ pixel covers)'
                )
                if fits((h, w), (lq_h, lq_w), scale)
                else ''
            )
            raise ValueError(
                f'datasets:{name}: scale {scale} does not match the data: {key} is {w}x{h} in '
                f'dataroot_gt {opt["dataroot_gt"]} and {lq_w}x{lq_h} in dataroot_lq '
                f'{opt["dataroot_lq"]} (expected {w // scale}x{h // scale}){why}.'
            )
        if lq_h < lq_size or lq_w < lq_size:
            raise ValueError(
                f'datasets:{name}: image {key} of dataroot_lq {opt["dataroot_lq"]} is {lq_w}x{lq_h}, '
                f'smaller than the LQ patch ({lq_size} px: gt_size {opt["gt_size"]} / scale {scale}).'
            )


def _check_batch(opt, name, samples, world_size):
    """An epoch gives each process at least one full batch (basicsr drops the last, partial one)."""
    ratio = opt.get('dataset_enlarge_ratio', 1)
    per_process = math.ceil(samples * ratio / world_size)  # basicsr's EnlargedSampler
    batch = opt['batch_size_per_gpu']
    if per_process < batch:
        needed = math.ceil(batch * world_size / samples)
        raise ValueError(
            f'datasets:{name}: {samples} samples x dataset_enlarge_ratio {ratio} give {per_process} per '
            f'epoch to each of {world_size} processes, fewer than batch_size_per_gpu {batch}: no '
            f'iteration would run; set dataset_enlarge_ratio to at least {needed}.'
        )
