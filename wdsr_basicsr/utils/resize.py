"""MATLAB-compatible bicubic resizing of uint8 images (basicsr's ``imresize``), as SR data is made."""

from __future__ import annotations

import numpy as np
from basicsr.utils.matlab_functions import imresize


def mod_crop(img: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the bottom and right so that height and width are multiples of ``multiple``."""
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def matlab_resize(img: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB ``imresize(img, factor, 'bicubic')`` of a uint8 image (basicsr's ``imresize``), rounded to uint8."""
    return np.clip(np.round(imresize(img.astype(np.float64) / 255.0, factor) * 255.0), 0, 255).astype(np.uint8)


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` of a uint8 image cropped to a multiple of ``scale``."""
    return matlab_resize(mod_crop(hr, scale), 1 / scale)
