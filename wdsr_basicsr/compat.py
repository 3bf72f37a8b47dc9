"""Adapters that let basicsr 1.4.2 run with today's torch and torchvision.

This module is the only place in the project that touches basicsr's behaviour.
It is imported first by :mod:`wdsr_basicsr`, before anything imports basicsr.
Nothing here edits basicsr's files on disk: each adaptation is applied in memory
when the package is imported, and each one checks that it is still needed.

Adaptations:

* ``torchvision.transforms.functional_tensor`` was removed from torchvision
  (0.17+). basicsr 1.4.2 imports ``rgb_to_grayscale`` from it at import time
  (``basicsr/data/degradations.py``), so ``import basicsr`` fails. The module
  still exists under its private name ``_functional_tensor``; we register it
  under the old name.
"""
import importlib
import importlib.util
import sys

_OLD_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_NEW_FUNCTIONAL_TENSOR = 'torchvision.transforms._functional_tensor'


def _alias_torchvision_functional_tensor():
    """Make ``torchvision.transforms.functional_tensor`` importable again."""
    if _OLD_FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_OLD_FUNCTIONAL_TENSOR) is not None:
        return
    sys.modules[_OLD_FUNCTIONAL_TENSOR] = importlib.import_module(_NEW_FUNCTIONAL_TENSOR)


_alias_torchvision_functional_tensor()
