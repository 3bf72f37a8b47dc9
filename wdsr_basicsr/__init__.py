"""WDSR for BasicSR.

Importing this package makes basicsr 1.4.2 importable beside today's torch and
torchvision (:mod:`wdsr_basicsr.compat`, first) and registers the package's
architectures, datasets and models with basicsr's registries.
"""

from wdsr_basicsr import compat  # noqa: F401  (must run before anything imports basicsr)
from wdsr_basicsr import archs  # noqa: F401
from wdsr_basicsr import data  # noqa: F401
from wdsr_basicsr import models  # noqa: F401

__version__ = '0.1.0'
