"""A training patch: where it is drawn and how it is flipped (one rule), cut on the host or gathered on a device.

:func:`draw_patch` draws a patch's place and flips from a random source exactly as basicsr's
``paired_random_crop`` and ``augment`` draw them from Python's ``random`` (the same calls, in the same order),
so a run samples what basicsr samples. :func:`cut_patch` cuts the drawn patch from decoded images with NumPy
(the values basicsr's functions give); :class:`DevicePatches` keeps decoded images in one device buffer and
gathers a whole batch of drawn patches there in a few operations, with the same values.

A training set whose images live on the device (:func:`keep_on_device`, ``cache_device`` of
``CheckedPairedImageDataset``) gives samples that are only an image index and a draw: the loader's workers
draw, the model gathers (:func:`device_set`). The images are registered in this process under a key that the
samples carry, so the dataset copies that workers receive hold no device memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

import cv2
import numpy as np
import torch

#: Where ``cache_device`` may put a training set's decoded images.
CACHE_DEVICES = ('cuda', 'cpu')


class RandomSource(Protocol):
    """What a patch is drawn from (:func:`draw_patch`, a sub-image by its weight): Python's ``random`` module, or
    a ``random.Random`` seeded by the sample's place (:mod:`.sampler`)."""

    def randint(self, a: int, b: int) -> int: ...

    def random(self) -> float: ...

    def choices(self, population: Sequence[Any], weights: Sequence[float] | None = None) -> list[Any]: ...


class Draw(NamedTuple):
    """A patch's place (top-left, in LR pixels) and its flips, as basicsr's ``augment`` applies them in order."""

    top: int
    left: int
    hflip: bool
    vflip: bool
    rot90: bool


def draw_patch(rng: RandomSource, lq_shape: tuple[int, int], lq_size: int, use_hflip: bool, use_rot: bool) -> Draw:
    """Draw a patch of ``lq_size`` LR pixels in an LR image of ``lq_shape`` (h, w), and its flips.

    The calls basicsr 1.4.2 makes: ``randint`` for the top, then the left (``paired_random_crop``), then one
    ``random()`` for each flip that its option allows (``augment``: horizontal flip, vertical flip,
    transposition).
    """
    top = rng.randint(0, lq_shape[0] - lq_size)
    left = rng.randint(0, lq_shape[1] - lq_size)
    hflip = use_hflip and rng.random() < 0.5
    vflip = use_rot and rng.random() < 0.5
    rot90 = use_rot and rng.random() < 0.5
    return Draw(top, left, hflip, vflip, rot90)


def cut_patch(img: np.ndarray, draw: Draw, size: int, scale: int = 1) -> np.ndarray:
    """The patch ``draw`` places (at ``scale`` times its LR place) in an HWC image, flipped, as a new array.

    As basicsr's ``augment``: flipped in place by OpenCV (a copy of the crop: the image may be shared), the
    transposition a view.
    """
    top, left = draw.top * scale, draw.left * scale
    patch = img[top : top + size, left : left + size].copy()
    if draw.hflip:
        cv2.flip(patch, 1, patch)
    if draw.vflip:
        cv2.flip(patch, 0, patch)
    return patch.transpose(1, 0, 2) if draw.rot90 else patch


class DevicePatches:
    """Decoded 8-bit images (HWC, BGR as OpenCV decodes them) in one buffer on a device; batches gathered there.

    :meth:`gather` returns what the host path returns for the same draws (:func:`cut_patch`, then RGB, CHW,
    float in [0, 1]): one index computation and one gather per side, whatever the batch size.

    Args:
        images (list[np.ndarray]): The images, each (h, w, channels) uint8, all with the same channels.
        device (torch.device | str): Where they live.
    """

    def __init__(self, images: list[np.ndarray], device: torch.device | str):
        channels = {img.shape[2] for img in images}
        if len(channels) != 1:
            raise ValueError(f'DevicePatches: the images have different channel counts {sorted(channels)}.')
        self.channels = channels.pop()
        sizes = [img.size for img in images]
        self.buffer = torch.empty(sum(sizes), dtype=torch.uint8, device=device)
        offset = 0
        for img, size in zip(images, sizes):
            self.buffer[offset : offset + size].copy_(torch.from_numpy(np.ascontiguousarray(img).reshape(-1)))
            offset += size
        self.offsets = torch.tensor(np.cumsum([0] + sizes[:-1]), dtype=torch.int64, device=device)
        self.widths = torch.tensor([img.shape[1] for img in images], dtype=torch.int64, device=device)

    def gather(self, images: torch.Tensor, draws: torch.Tensor, size: int, scale: int = 1) -> torch.Tensor:
        """The drawn patches of a batch, RGB (channels reversed), (N, C, size, size), float in [0, 1].

        Args:
            images (Tensor): (N,) int64, each patch's image, on the buffer's device.
            draws (Tensor): (N, 5) int64 rows of :class:`Draw` (top, left, hflip, vflip, rot90), same device.
            size (int): Patch size in this side's pixels.
            scale (int): This side's pixels per LR pixel (the draws are in LR pixels). Default: 1.
        """
        top, left, hflip, vflip, rot90 = (draws[:, k].view(-1, 1, 1) for k in range(5))
        i = torch.arange(size, device=draws.device).view(1, size, 1)
        j = torch.arange(size, device=draws.device).view(1, 1, size)
        row = torch.where(rot90.bool(), j, i)  # the transposition comes last: undo it first
        col = torch.where(rot90.bool(), i, j)
        row = torch.where(vflip.bool(), size - 1 - row, row)
        col = torch.where(hflip.bool(), size - 1 - col, col)
        pixel = (top * scale + row) * self.widths[images].view(-1, 1, 1) + left * scale + col
        start = self.offsets[images].view(-1, 1, 1, 1) + pixel.unsqueeze(1) * self.channels
        reverse = torch.arange(self.channels - 1, -1, -1, device=draws.device).view(1, -1, 1, 1)
        return self.buffer[start + reverse].float().div_(255.0)


class DeviceSet(NamedTuple):
    """A training set's images on a device, and the patch it cuts from them."""

    gt: DevicePatches
    lq: DevicePatches
    gt_size: int
    scale: int

    @property
    def device(self) -> torch.device:
        return self.gt.buffer.device

    def batch(self, images: torch.Tensor, draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (LQ, GT) patches of a batch of samples (image indices and :class:`Draw` rows, on the device)."""
        lq = self.lq.gather(images, draws, self.gt_size // self.scale)
        return lq, self.gt.gather(images, draws, self.gt_size, self.scale)


#: The training sets on a device in this process, by key (see :func:`keep_on_device`).
_DEVICE_SETS: dict[str, DeviceSet] = {}


def keep_on_device(
    gt_images: list[np.ndarray], lq_images: list[np.ndarray], device: str, *, gt_size: int, scale: int
) -> str:
    """Copy a training set's decoded images (index i: a GT and its LQ) to ``device``; return the key samples carry.

    Args:
        gt_images (list[np.ndarray]): HR images, HWC uint8 (BGR).
        lq_images (list[np.ndarray]): Their LR images.
        device (str): One of :data:`CACHE_DEVICES` ('cuda': the current GPU).
        gt_size (int): HR patch size.
        scale (int): HR pixels per LR pixel.

    Returns:
        str: The key of :func:`device_set`.
    """
    key = f'{os.getpid()}:{len(_DEVICE_SETS)}'
    _DEVICE_SETS[key] = DeviceSet(DevicePatches(gt_images, device), DevicePatches(lq_images, device), gt_size, scale)
    return key


def device_set(key: str) -> DeviceSet:
    """The training set :func:`keep_on_device` registered under ``key`` in this process.

    Raises:
        LookupError: If this process registered no such set (samples from another process's dataset).
    """
    if key not in _DEVICE_SETS:
        raise LookupError(
            f'cache_device: no training set {key!r} on a device in this process; the dataset that drew these '
            'samples must be built in the process that trains.'
        )
    return _DEVICE_SETS[key]
