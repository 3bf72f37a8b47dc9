"""Shared fixtures: small DIV2K-shaped folders made from scikit-image's photographs."""
import cv2
import pytest
from skimage import data as skimage_data

import wdsr_basicsr  # noqa: F401  (compat first: basicsr is importable in every test module)

# HR crops of real photographs (BGR, uint8). Sizes are not multiples of 12 on purpose.
TRAIN_CROPS = {'0001': ('astronaut', 130, 110), '0002': ('coffee', 100, 150)}
VALID_CROPS = {'0801': ('chelsea', 101, 97)}


def photo(name, h, w):
    return cv2.cvtColor(getattr(skimage_data, name)()[:h, :w], cv2.COLOR_RGB2BGR)


def write_hr(root, split, crops):
    folder = root / f'DIV2K_{split}_HR'
    folder.mkdir(parents=True)
    for stem, (name, h, w) in crops.items():
        cv2.imwrite(str(folder / f'{stem}.png'), photo(name, h, w))


@pytest.fixture
def div2k_hr(tmp_path):
    """A DIV2K-shaped folder with HR images only."""
    root = tmp_path / 'DIV2K'
    write_hr(root, 'train', TRAIN_CROPS)
    write_hr(root, 'valid', VALID_CROPS)
    return root
