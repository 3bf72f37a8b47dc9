"""The torchvision shim that basicsr 1.4.2 needs to be imported: standard library only.

Its one home, shared by the start-up hook (:mod:`wdsr_basicsr_startup`, before basicsr's ``__init__`` runs) and
:mod:`wdsr_basicsr.compat` (when the hook is off).
"""

import importlib
import importlib.util
import sys

_OLD_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_NEW_FUNCTIONAL_TENSOR = 'torchvision.transforms._functional_tensor'


def alias_torchvision_functional_tensor():
    """Make ``torchvision.transforms.functional_tensor`` importable again.

    torchvision 0.17 removed it; basicsr 1.4.2 imports ``rgb_to_grayscale``
    from it at import time (``basicsr/data/degradations.py``), so ``import
    basicsr`` fails without this. The module still exists under its private
    name, registered here under the old one. Nothing is done when the old name
    still imports.
    """
    if _OLD_FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_OLD_FUNCTIONAL_TENSOR) is not None:
        return
    sys.modules[_OLD_FUNCTIONAL_TENSOR] = importlib.import_module(_NEW_FUNCTIONAL_TENSOR)
