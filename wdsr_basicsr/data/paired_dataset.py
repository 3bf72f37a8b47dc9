"""``CheckedPairedImageDataset``: basicsr's ``PairedImageDataset`` with errors that name the fault."""

from __future__ import annotations

import json
import random
from os import path as osp

import numpy as np
import torch
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.utils import bgr2ycbcr, get_root_logger, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY
from torchvision.transforms.functional import normalize

from ..declare import Rule, checked, inherited_rules
from .cache_layouts import image_groups, plan_caches, sub_image_layouts
from .cache_open import open_cache
from .decoded_cache import CachePlan, DecodedImages, check_memory
from .lmdb_util import (
    SUB_IMAGES,
)
from .pair_sizes import (
    check_batch,
    check_sizes,
    folder_pair_sizes,
    lmdb_pair_sizes,
    patch_fault,
    warn,
)
from .patches import CACHE_DEVICES, RandomSource, cut_patch, draw_patch, keep_on_device
from .sampler import Place

#: How a training sample picks its image (``sampling``, with ``cache_data``): each source image equally often
#: (the authors'), or each stored record equally often (basicsr's; on sub-image LMDBs this weights images by area).
SAMPLINGS = ('image', 'record')
#: The keys read with ``cache_data: true`` only, and what each is for.
ONLY_WITH_CACHE = {
    'sampling': 'without it every stored image is sampled equally often, as basicsr does',
    'cache_dir': 'it is where the decoded images go',
    'cache_device': 'it is where the decoded images go to be cut',
}


#: What :meth:`CheckedPairedImageDataset.check_data` found for the entries before the run, by the options it was
#: given: the dataset built from the same options in this process takes it (once) instead of reading and hashing
#: the data again.
_checked: dict[str, dict[str, CachePlan]] = {}


def _options_key(opt: dict) -> str:
    """The options of a dataset as one text: equal options, equal text."""
    return json.dumps(opt, sort_keys=True, default=repr)


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
            default beside the data), ``cache_device`` ('cuda' or 'cpu':
            training patches cut there from the decoded images, see
            :meth:`_keep_on_device`; a run on GPUs sets 'cuda').
    """

    #: A training sample's crop and flips come from its :class:`~.sampler.Place` (see :meth:`__getitem__`).
    draws_by_place = True
    #: What this class reads beside ``PairedImageDataset`` (:mod:`wdsr_basicsr.declare`).
    option_keys = {
        '': {
            'cache_data': Rule(
                'bool',
                null=True,
                doc='Decode every image once into a shared memory-mapped file and cut samples from it.',
            ),
            'sampling': Rule(
                'str',
                words=SAMPLINGS,
                doc='With cache_data: image (each source image equally often: '
                "the authors') or record (each stored image: basicsr's). Default: image.",
            ),
            'cache_dir': Rule(
                'str',
                null=True,
                doc='With cache_data: the folder of the decoded images (default: '
                'beside the data, else the user cache).',
            ),
            'cache_device': Rule(
                'str',
                words=CACHE_DEVICES,
                null=True,
                doc='With cache_data, training: where patches are cut (a GPU run sets cuda).',
            ),
        }
    }

    @staticmethod
    def options_fault(opt: dict) -> str | None:
        """What one of ``cache_data``, ``sampling``, ``cache_dir``, ``cache_device`` means for another, or None.

        The keys' values are judged by their rules (:attr:`option_keys`); this says what a rule cannot: which
        keys are read only with ``cache_data``, the backends it reads, a GPU that is not there
        (:mod:`wdsr_basicsr.declare`: the option check asks it, and so does :meth:`check_data`).
        """
        cache_data = bool(opt.get('cache_data', False))
        if not cache_data:
            for key in ('sampling', 'cache_dir', 'cache_device'):
                if opt.get(key) is not None or (key == 'sampling' and key in opt):
                    return f'{key} is read with cache_data: true only ({ONLY_WITH_CACHE[key]}).'
            return None
        backend = (opt.get('io_backend') or {}).get('type')
        if backend not in ('lmdb', 'disk'):
            return f'cache_data reads io_backend lmdb or disk, not {backend!r}.'
        if opt.get('cache_device') == 'cuda' and not torch.cuda.is_available():
            return 'cache_device: cuda, but torch sees no CUDA GPU here; use cpu, or leave it out (a GPU run sets it).'
        if opt.get('cache_dir') == '':
            return "cache_dir='' must be the path of a folder."
        return None

    def __init__(self, opt: dict):
        plans = _checked.pop(_options_key(opt), None)  # the entries checked these very options on this rank
        if plans is None:
            plans = self.check_data(opt)
        self.backend = opt['io_backend']['type']
        self.cache_data = bool(opt.get('cache_data', False))
        self.sampling = opt.get('sampling', 'image' if self.cache_data else 'record')
        super().__init__(opt)
        self.device_set: str | None = None  # the key of the images on the device (see _keep_on_device)
        if self.cache_data:
            self._open_cache(plans)
            if opt.get('cache_device') and opt['phase'] == 'train':
                self._keep_on_device(opt['cache_device'])

    @classmethod
    def check_data(cls, opt: dict, world_size: int | None = None) -> dict[str, CachePlan]:
        """Refuse data this dataset cannot read, before any sample is: each fault one line naming the file.

        Reads ``meta_info.txt`` and the LMDBs' keys, or the image files' headers: no image is decoded (but
        where an LMDB's meta_info.txt contradicts itself, see the class). The entries call it before the run
        starts (with the number of processes); the constructor calls it unless they did on the same options.
        With ``cache_data`` it also finds the cache of each side (hashing the encoded images,
        :func:`~.decoded_cache.plan_cache`) and checks the memory and disk it needs.

        Args:
            opt (dict): The dataset's options, with ``phase`` and ``scale``.
            world_size (int | None): Processes that share the training set: with it (the entries' call), an
                epoch must give each at least one full batch, and what was found is kept for the dataset built
                next from the same options in this process. Default: None (not checked).

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
        for key, rule in inherited_rules(cls)[()].items():
            if key in opt:
                checked(opt[key], rule, ('datasets', name, key))
        fault = (patch_fault(opt['gt_size'], opt['scale']) if train else None) or cls.options_fault(opt)
        if fault:
            raise ValueError(f'datasets:{name}: {fault}')
        lmdb = opt['io_backend']['type'] == 'lmdb'
        sizes = lmdb_pair_sizes(opt, name) if lmdb else folder_pair_sizes(opt, name)
        check_sizes(opt, name, sizes, exact=train and not opt.get('cache_data'))
        by_image = train and bool(opt.get('cache_data')) and opt.get('sampling', 'image') == 'image'
        layouts = sub_image_layouts(opt, name, sizes) if by_image and lmdb else None
        if train and world_size:
            samples = len(layouts['gt']) if layouts else len(image_groups(list(sizes), by_image))
            check_batch(opt, name, samples, world_size)
        plans = plan_caches(opt, name, sizes, layouts, opt.get('cache_dir')) if opt.get('cache_data') else {}
        if world_size is not None:
            _checked[_options_key(opt)] = plans
        return plans

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
                warn(
                    f'datasets:{self.opt.get("name", "train")}: {overlapping} images of {self.lq_folder} are '
                    f'stored as sub-images with no complete {SUB_IMAGES} (where each lies in its image): a '
                    'position is drawn once per sub-image that holds it, so where sub-images overlap it is drawn '
                    'more often than elsewhere (up to 6x in a DIV2K image cut in 480/240 sub-images, at x2 and '
                    'gt_size 96); prepare the LMDBs again with wdsr-prepare-div2k, which records the places, or '
                    'train from the whole images.'
                )

    def _keep_on_device(self, device: str) -> None:
        """Put the decoded images on ``device``, where the model cuts each batch's patches; a sample is then its
        image and draw only (:mod:`.patches`: the same draws, from the same random state, and the same pixels
        as the host's). Stays on the host, saying why in one line, where the images would not fit in the
        device's free memory (with a quarter of it, and 4 GiB, left for training) or the samples need what
        only the host path does (``color: y``, ``mean``/``std``, sub-images without ``sub_images.json``).
        """
        log = get_root_logger().info
        name = self.opt.get('name', 'train')
        nbytes = sum(cache.nbytes for cache in self.caches.values())
        why = None
        if self.opt.get('color') == 'y' or self.mean is not None or self.std is not None:
            why = 'color: y and mean/std are applied on the host'
        elif self.images is None and any(len(group) > 1 for group in self.groups):
            why = 'sub-images without their record of places are picked on the host'
        elif device == 'cuda':
            free, total = torch.cuda.mem_get_info()
            room = free - max(total // 4, 4 * 2**30)
            if nbytes > room:
                why = f'{nbytes / 2**30:.1f} GiB of decoded images do not fit beside training ({free / 2**30:.1f} free)'
        if why:
            log(f'cache_data: datasets:{name}: patches are cut on the host: {why}.')
            return
        keys = [self._whole_image(index)[:2] for index in range(len(self))]
        self.device_set = keep_on_device(
            [self.caches['gt'][gt] for gt, _ in keys],
            [self.caches['lq'][lq] for _, lq in keys],
            device,
            gt_size=self.opt['gt_size'],
            scale=self.opt['scale'],
        )
        log(f'cache_data: datasets:{name}: {nbytes / 2**30:.2f} GiB of decoded images on {device}; patches cut there.')

    def _cache_key(self, path, root):
        return path if self.backend == 'lmdb' else osp.relpath(path, root)

    def __len__(self):
        if self.cache_data and self.opt['phase'] == 'train':
            return len(self.images) if self.images is not None else len(self.groups)
        return super().__len__()

    def __getitem__(self, index):
        """Sample ``index``: an int (drawn from Python's ``random``, as basicsr), or a :class:`~.sampler.Place`
        from the training sampler (drawn from a source seeded by its place alone: a resumed run draws what the
        uninterrupted one drew, whichever worker draws it)."""
        if isinstance(index, Place):
            rng = random.Random(index.seed)
            if not self.cache_data:  # basicsr's crop and flips draw from the module: seeded, then put back
                outer = random.getstate()
                random.setstate(rng.getstate())
                try:
                    return super().__getitem__(index.sample)
                finally:
                    random.setstate(outer)
            return self._cached_item(index.sample, rng)
        if not self.cache_data:
            return super().__getitem__(index)
        return self._cached_item(index, random)

    def _cached_item(self, index: int, rng: RandomSource) -> dict:
        """Sample ``index`` from the decoded images, its record (of a group) and patch drawn from ``rng``."""
        train = self.opt['phase'] == 'train'
        if self.device_set is not None:  # the images are on the device: the sample is where its patch lies
            return self._draw(index, rng)
        if train and self.images is not None:  # sub-images put back together: the whole image
            gt_key, lq_key, gt_path, lq_path = self._whole_image(index)
            return self._sample(self.caches['gt'][gt_key], self.caches['lq'][lq_key], gt_path, lq_path, rng)
        group = self.groups[index] if train else [index]
        record = group[0] if len(group) == 1 else rng.choices(group, self.weights[index])[0]
        img_gt = self.caches['gt'][self.entries['gt'][record]]
        img_lq = self.caches['lq'][self.entries['lq'][record]]
        return self._sample(img_gt, img_lq, self.paths[record]['gt_path'], self.paths[record]['lq_path'], rng)

    def _whole_image(self, index: int) -> tuple[str, str, str, str]:
        """The cache keys (GT, LQ) and paths (GT, LQ) of training sample ``index`` where it is one whole image:
        sub-images put back together, or an image stored whole (a group of one record)."""
        if self.images is not None:
            image = self.images[index]
            return image, image, image, image
        record = self.groups[index][0]
        paths = self.paths[record]
        return self.entries['gt'][record], self.entries['lq'][record], paths['gt_path'], paths['lq_path']

    def _draw(self, index: int, rng: RandomSource) -> dict:
        """A training sample as its image and draw (the model cuts it on the device): what :meth:`_sample` draws."""
        _, lq_key, gt_path, lq_path = self._whole_image(index)
        lq_size = self.opt['gt_size'] // self.opt['scale']
        shape = self.caches['lq'].shape(lq_key)
        draw = draw_patch(rng, shape, lq_size, self.opt['use_hflip'], self.opt['use_rot'])
        return {
            'patch_set': self.device_set,
            'patch_image': index,
            'patch_draw': torch.tensor(draw, dtype=torch.int64),
            'lq_path': lq_path,
            'gt_path': gt_path,
        }

    def _sample(self, img_gt: np.ndarray, img_lq: np.ndarray, gt_path: str, lq_path: str, rng: RandomSource) -> dict:
        """basicsr's ``PairedImageDataset`` sample from decoded uint8 images: crop and augment, then to [0, 1].

        The patch is drawn as basicsr draws it (:func:`~.patches.draw_patch`, from ``rng``); the crop
        and the flips and rotations move pixels only, so taking them before the conversion to float gives the
        values basicsr's order gives.
        """
        scale = self.opt['scale']
        if self.opt['phase'] == 'train':
            h, w = img_lq.shape[0] * scale, img_lq.shape[1] * scale
            if 0 <= img_gt.shape[0] - h < scale and 0 <= img_gt.shape[1] - w < scale:
                img_gt = img_gt[:h, :w]  # HR not a multiple of scale (whole images): the rows no LR pixel covers
            gt_size = self.opt['gt_size']
            draw = draw_patch(rng, img_lq.shape[:2], gt_size // scale, self.opt['use_hflip'], self.opt['use_rot'])
            img_gt, img_lq = cut_patch(img_gt, draw, gt_size, scale), cut_patch(img_lq, draw, gt_size // scale)
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
