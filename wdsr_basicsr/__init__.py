"""WDSR for BasicSR.

Importing this package registers its architectures, datasets and models with basicsr's registries (after
the torchvision alias that basicsr 1.4.2 needs to be imported at all). It patches nothing of basicsr:
:func:`wdsr_basicsr.compat.install` does, called by the entries and by the start-up hook.
"""

from wdsr_basicsr_shim import alias_torchvision_functional_tensor

alias_torchvision_functional_tensor()  # before anything imports basicsr, which imports a removed torchvision module

from wdsr_basicsr import archs  # noqa: E402, F401  (registration)
from wdsr_basicsr import data  # noqa: E402, F401
from wdsr_basicsr import models  # noqa: E402, F401

__version__ = '0.1.0'
