"""Shared fixtures: small DIV2K-shaped folders and LMDBs made from scikit-image's photographs, a small checkpoint."""

import pytest
import torch

from helpers import SMALL_WDSR_B, TRAIN_CROPS, VALID_CROPS, make_lmdbs, write_hr
from wdsr_basicsr import compat
from wdsr_basicsr.archs import WDSR_B

compat.install()  # the tests run basicsr's pipelines in this process, as an entry does (explicitly, not by the hook)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: multi-process and end-to-end runs; pytest -m "not slow" leaves them out')


@pytest.fixture
def div2k_hr(tmp_path):
    """A DIV2K-shaped folder with HR images only."""
    root = tmp_path / 'DIV2K'
    write_hr(root, 'train', TRAIN_CROPS)
    write_hr(root, 'valid', VALID_CROPS)
    return root


@pytest.fixture(scope='session')
def lmdb_root(tmp_path_factory):
    """DIV2K-shaped LMDBs (x2, x3, x4; 48 px training sub-images) of the fixture photographs, made once per session.

    Read only: a test that changes LMDBs copies them first.
    """
    return make_lmdbs(tmp_path_factory.mktemp('div2k'), (2, 3, 4))


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint of a small WDSR-B x2 with its ``network_g``, as the model saves it."""
    torch.manual_seed(0)
    net = WDSR_B(**{k: v for k, v in SMALL_WDSR_B.items() if k != 'type'})
    path = tmp_path / 'net.pth'
    torch.save({'params': net.state_dict(), 'network_g': SMALL_WDSR_B}, path)
    return str(path)
