"""Reading and writing images as they are stored: 8 or 16 bit, gray, colour, alpha, gray + alpha, EXIF orientation.

Inference reads and writes through :func:`read_image` / :func:`write_image` (keeping what the file holds);
preparation reads colour images through :func:`read_bgr`.
"""

from __future__ import annotations

from os import path as osp

import cv2
import numpy as np
from PIL import Image

#: The image files a folder is read for (inference inputs, benchmark sets).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
EXIF_ORIENTATION = 0x0112


def apply_exif_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an HxW[xC] array as EXIF ``orientation`` (1-8) says, as image viewers do."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return img.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def read_image(path: str) -> np.ndarray:
    """Read an image as stored (8 or 16 bit, gray, colour or with alpha), turned as its EXIF orientation says.

    Returns:
        np.ndarray: HxW (gray), HxWx2 (gray and alpha), HxWx3 (BGR) or HxWx4
        (BGRA), uint8 or uint16.

    Raises:
        ValueError: If the file cannot be read, has another sample type, holds
            several frames (an animation, a multi-page TIFF), or is 16-bit gray
            with alpha (which cannot be written back in 16 bit).
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # IMREAD_UNCHANGED ignores EXIF orientation: applied below
    if img is None:
        raise ValueError('cannot be read as an image')
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'has {img.dtype} samples; 8- and 16-bit images are supported')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    try:
        with Image.open(path) as pil:
            orientation = pil.getexif().get(EXIF_ORIENTATION, 1)
            frames = getattr(pil, 'n_frames', 1)
            gray_alpha = pil.mode in ('LA', 'La') or (pil.format == 'PNG' and _png_colour_type(path) == 4)
    except (OSError, ValueError):  # a format PIL does not know: no orientation to apply
        orientation, frames, gray_alpha = 1, 1, False
    if frames > 1:
        raise ValueError(
            f'holds {frames} frames (an animation or a multi-page file); only single images are '
            'upscaled: extract the frames first'
        )
    if gray_alpha and img.ndim == 3 and img.shape[2] == 4:  # OpenCV expands gray + alpha to BGRA
        if img.dtype == np.uint16:
            raise ValueError(
                'is 16-bit gray with alpha, which cannot be written back in 16 bit (Pillow writes gray '
                '+ alpha in 8 bit); convert it to 16-bit RGBA or to 8 bit first'
            )
        img = img[:, :, [0, 3]]
    return np.ascontiguousarray(apply_exif_orientation(img, orientation))


def _png_colour_type(path):
    """The colour type byte of a PNG's IHDR chunk (4: gray + alpha)."""
    with open(path, 'rb') as f:
        header = f.read(26)
    return header[25] if len(header) == 26 and header[12:16] == b'IHDR' else None


def write_image(path: str, img: np.ndarray) -> bool:
    """Write ``img`` as :func:`read_image` returns it; gray + alpha (HxWx2) as a gray + alpha PNG.

    Returns:
        bool: Whether it was written.
    """
    if img.ndim == 3 and img.shape[2] == 2:
        if img.dtype != np.uint8:
            raise ValueError('16-bit gray + alpha cannot be written (Pillow writes gray + alpha PNGs in 8 bit)')
        Image.fromarray(img, 'LA').save(path)
        return True
    return cv2.imwrite(path, img)


def read_bgr(path: str) -> np.ndarray:
    """Read an image as uint8 HxWx3 BGR (OpenCV's colour read).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is truncated or not an image (the message names it).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist.')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path} cannot be read as an image (truncated or corrupt?).')
    return img


def frames(path: str) -> int:
    """How many frames (pages) an image file holds; 1 where Pillow cannot tell."""
    try:
        with Image.open(path) as img:
            return getattr(img, 'n_frames', 1)
    except (OSError, ValueError):
        return 1
