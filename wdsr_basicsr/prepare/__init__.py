"""Offline preparation of the data that training and testing read, apart from the datasets themselves.

* :mod:`.fetch`: resumable, checked downloads and archives that cannot write outside their folder;
* :mod:`.layout`: DIV2K's folder and LMDB names;
* :mod:`.lmdb`: sub-images and whole images to LMDBs with ``meta_info.txt``;
* :mod:`.div2k`, :mod:`.benchmarks`, :mod:`.demo`: the three preparations, each with its command-line entry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..utils.image_io import read_bgr as _read_bgr


class PreparationError(RuntimeError):
    """A fault in the input data; the message names the file."""


def read_bgr(path: str) -> np.ndarray:
    """:func:`wdsr_basicsr.utils.image_io.read_bgr`, its faults raised as :class:`PreparationError`."""
    try:
        return _read_bgr(path)
    except (OSError, ValueError) as error:
        raise PreparationError(str(error)) from None


def run_job(job: Callable[[], list[str]]) -> tuple[list[str], str | None]:
    """Run ``job``, which returns the paths it wrote: those paths, or the line that names its data fault."""
    try:
        return job(), None
    except PreparationError as error:
        return [], f'error: {error}'
