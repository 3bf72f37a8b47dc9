"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""
from __future__ import annotations

import functools
import os
import random
import re
from os import path as osp

import numpy as np
import torch

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import bgr2ycbcr, get_root_logger, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from .decoded_cache import decoded_images
from .lmdb_util import check_lmdb_complete, read_meta_info, read_record, record_shape

#: How many example keys a key-mismatch error lists.
NUM_EXAMPLE_KEYS = 5
#: How a training sample picks its image (``sampling``, with ``cache_data``): each source image equally often
#: (the authors'), or each stored record equally often (basicsr's; on sub-image LMDBs this weights images by area).
SAMPLINGS = ('image', 'record')
#: The key of a sub-image made by basicsr's ``extract_subimages`` / ``prepare_div2k``: ``<image>_s<number>``.
SUB_IMAGE_KEY = re.compile(r'^(?P<image>.+)_s\d+$')


def cache_options_fault(opt: dict) -> str | None:
    """What is wrong with a dataset's ``cache_data`` / ``sampling`` options, or None (the option check asks too)."""
    cache_data = bool(opt.get('cache_data', False))
    if 'sampling' in opt and not cache_data:
        return ('sampling is read with cache_data: true only (without it every stored image is sampled equally '
                'often, as basicsr does).')
    if opt.get('sampling', 'image') not in SAMPLINGS:
        return (f"sampling={opt['sampling']!r}; use image (each source image equally often: the authors') or "
                "record (each stored image equally often: basicsr's).")
    backend = (opt.get('io_backend') or {}).get('type')
    if cache_data and backend not in ('lmdb', 'disk'):
        return f'cache_data reads io_backend lmdb or disk, not {backend!r}.'
    return None


@DATASET_REGISTRY.register()
class CheckedPairedImageDataset(PairedImageDataset):
    """basicsr's ``PairedImageDataset`` that names the option, LMDB and key at fault.

    It reads exactly what ``PairedImageDataset`` reads (same options, same
    crops and augmentation). On top, before any sample is read:

    * ``dataroot_gt`` / ``dataroot_lq`` must exist, and with the ``lmdb``
      backend hold a ``meta_info.txt``;
    * with ``lmdb``, LQ and GT must list the same keys: the error gives a few
      keys found on one side only;
    * with ``lmdb``, every LQ shape must be the GT shape divided by ``scale``
      (rounded down), so a scale that differs between the options and the
      data is caught with one key as example. Shapes are taken from
      ``meta_info.txt``; where its two shapes disagree, the records themselves
      are decoded: when they agree, a warning names the meta_info line that is
      wrong and training goes on, otherwise the error gives the records' sizes.

    * with ``lmdb``, each ``data.mdb`` must hold all its pages
      (:func:`check_lmdb_complete`).

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
      source image equally often, a uniform position over the whole image.
      Sub-images of one image (keys ``<image>_s<n>``, as ``prepare_div2k``
      and basicsr's ``extract_subimages`` name them) count as that image, one
      picked in proportion to its crop positions; an epoch is one sample per
      image.
    * ``record``: each stored image equally often, as basicsr's
      ``PairedImageDataset`` (on sub-image LMDBs this weights each image by
      its area and over-samples interiors).

    Args:
        opt (dict): ``PairedImageDataset``'s options, and ``cache_data`` (bool,
            default false), ``sampling`` ('image' or 'record', with
            ``cache_data``), ``cache_dir`` (folder of the decoded images,
            default beside the data).
    """

    def __init__(self, opt: dict):
        name = opt.get('name', opt.get('phase', 'dataset'))
        for key in ('dataroot_gt', 'dataroot_lq'):
            if not opt.get(key):
                raise ValueError(f'datasets:{name}: option {key} is missing.')
            if not osp.exists(opt[key]):
                raise FileNotFoundError(f'datasets:{name}: {key} {opt[key]} does not exist.')
        if opt['phase'] == 'train' and opt['gt_size'] % opt['scale']:
            raise ValueError(f"datasets:{name}: gt_size {opt['gt_size']} is not a multiple of scale {opt['scale']}.")
        self.backend = opt['io_backend']['type']
        self.cache_data = bool(opt.get('cache_data', False))
        self.sampling = opt.get('sampling', 'image' if self.cache_data else 'record')
        fault = cache_options_fault(opt)
        if fault:
            raise ValueError(f'datasets:{name}: {fault}')
        if self.backend == 'lmdb':
            self._check_lmdb_pair(opt, name)
        super().__init__(opt)
        if self.cache_data:
            self._open_cache(name)

    def _open_cache(self, name):
        """Decode (or map) every image, and group the records by source image for ``sampling: image``."""
        self.caches, self.cache_keys = {}, {}  # the cache key of every record, GT and LQ
        for client_key, root in (('gt', self.gt_folder), ('lq', self.lq_folder)):
            keys = [self._cache_key(p[f'{client_key}_path'], root) for p in self.paths]
            self.cache_keys[client_key] = keys
            self.caches[client_key] = decoded_images(
                root, keys, self._reader(root), self._source(root, keys), cache_dir=self.opt.get('cache_dir'),
                log=get_root_logger().info, held=sum(cache.nbytes for cache in self.caches.values()))
        groups = {}
        for record, key in enumerate(self.cache_keys['gt']):
            stem = osp.splitext(osp.basename(key))[0]
            match = SUB_IMAGE_KEY.match(stem) if self.sampling == 'image' else None
            groups.setdefault(match.group('image') if match else (stem, record), []).append(record)
        self.groups = list(groups.values())
        if self.opt['phase'] == 'train':
            self._check_patch_fits(name)

    def _check_patch_fits(self, name):
        """Refuse images smaller than the patch; weigh each record of a group by its crop positions."""
        lq_size = self.opt['gt_size'] // self.opt['scale']
        self.weights = []
        for group in self.groups:
            weights = []
            for record in group:
                key = self.cache_keys['lq'][record]
                h, w = self.caches['lq'].shape(key)
                if h < lq_size or w < lq_size:
                    raise ValueError(f"datasets:{name}: image {key} of dataroot_lq {self.lq_folder} is {w}x{h}, "
                                     f"smaller than the LQ patch ({lq_size} px: gt_size {self.opt['gt_size']} / "
                                     f"scale {self.opt['scale']}).")
                weights.append((h - lq_size + 1) * (w - lq_size + 1))
            self.weights.append(weights)

    def _cache_key(self, path, root):
        return path if self.backend == 'lmdb' else osp.relpath(path, root)

    def _reader(self, root):
        """``key -> bytes`` of the images under ``root``."""
        if self.backend == 'lmdb':
            return functools.partial(read_record, root)

        def read_file(key):
            with open(osp.join(root, key), 'rb') as f:
                return f.read()
        return read_file

    def _source(self, root, keys):
        """What identifies the contents the cache is decoded from: sizes and modification times."""
        files = ['data.mdb', 'meta_info.txt'] if self.backend == 'lmdb' else keys
        stats = {name: os.stat(osp.join(root, name)) for name in files}
        return {'root': osp.abspath(root), 'files': {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}}

    def __len__(self):
        if self.cache_data and self.opt['phase'] == 'train':
            return len(self.groups)
        return super().__len__()

    def __getitem__(self, index):
        if not self.cache_data:
            return super().__getitem__(index)
        train = self.opt['phase'] == 'train'
        group = self.groups[index] if train else [index]
        record = group[0] if len(group) == 1 else random.choices(group, self.weights[index])[0]
        img_gt = self.caches['gt'][self.cache_keys['gt'][record]]
        img_lq = self.caches['lq'][self.cache_keys['lq'][record]]
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
            img_gt = img_gt[0:img_lq.shape[0] * scale, 0:img_lq.shape[1] * scale, :]
        if self.opt.get('color') == 'y':
            img_gt, img_lq = (bgr2ycbcr(img.astype(np.float32) / 255., y_only=True)[..., None]
                              for img in (img_gt, img_lq))
            img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        else:  # BGR to RGB, HWC to CHW in uint8, then to [0, 1]: the values basicsr's float32 order gives
            img_gt, img_lq = (torch.from_numpy(np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1))).float()
                              .div_(255.) for img in (img_gt, img_lq))
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}

    @staticmethod
    def _check_lmdb_pair(opt, name):
        metas = {}
        for key in ('dataroot_gt', 'dataroot_lq'):
            meta = osp.join(opt[key], 'meta_info.txt')
            if not osp.isfile(meta):
                raise FileNotFoundError(f'datasets:{name}: {key} {opt[key]} has no meta_info.txt; is it an LMDB '
                                        'made by scripts/prepare_div2k.py or basicsr?')
            check_lmdb_complete(opt[key])
            metas[key] = read_meta_info(opt[key])
        gt, lq = metas['dataroot_gt'], metas['dataroot_lq']
        if gt.keys() != lq.keys():
            only_gt = sorted(gt.keys() - lq.keys())[:NUM_EXAMPLE_KEYS]
            only_lq = sorted(lq.keys() - gt.keys())[:NUM_EXAMPLE_KEYS]
            raise ValueError(f'datasets:{name}: the LMDBs list different keys: {len(gt.keys() - lq.keys())} only in '
                             f'dataroot_gt {opt["dataroot_gt"]} (e.g. {only_gt}), {len(lq.keys() - gt.keys())} only '
                             f'in dataroot_lq {opt["dataroot_lq"]} (e.g. {only_lq}).')
        scale = opt['scale']
        for key, (gt_meta, gt_line) in gt.items():
            lq_meta, lq_line = lq[key]
            if tuple(lq_meta[:2]) == (gt_meta[0] // scale, gt_meta[1] // scale):
                continue
            (h, w), (lq_h, lq_w) = (record_shape(opt[root], key)[:2] for root in ('dataroot_gt', 'dataroot_lq'))
            if (lq_h, lq_w) != (h // scale, w // scale):
                raise ValueError(f'datasets:{name}: scale {scale} does not match the data: record {key} is {w}x{h} '
                                 f'in dataroot_gt {opt["dataroot_gt"]} and {lq_w}x{lq_h} in dataroot_lq '
                                 f'{opt["dataroot_lq"]} (expected {w // scale}x{h // scale}).')
            for root, meta, line, real in (('dataroot_gt', gt_meta, gt_line, (h, w)),
                                           ('dataroot_lq', lq_meta, lq_line, (lq_h, lq_w))):
                if tuple(meta[:2]) != real:
                    get_root_logger().warning(
                        f'datasets:{name}: {osp.join(opt[root], "meta_info.txt")}, line {line}: records {key} as '
                        f'{meta[1]}x{meta[0]}, but the image stored is {real[1]}x{real[0]}; the record is used.')
