"""Start-up hook of wdsr-basicsr: installed means registered.

``wdsr_basicsr.pth`` (installed beside this module in site-packages) calls
:func:`install` when the interpreter starts. That only puts a finder on
``sys.meta_path``; nothing heavy is imported (no torch, no basicsr). When
``basicsr`` is first imported, by anyone (``python -m basicsr.train``,
``python basicsr/train.py`` in a BasicSR clone, a sibling plugin's entry), the
finder wraps basicsr's loader once:

1. before basicsr's ``__init__`` runs: :func:`alias_torchvision_functional_tensor`
   (basicsr 1.4.2 imports a torchvision module that no longer exists);
2. after it ran: ``import wdsr_basicsr`` (its patches of basicsr and the
   registration of WDSR_A, WDSR_B, RDN, WDSRModel, ...).

A failure in either step prints one line on stderr and leaves basicsr as it
is; a start-up without basicsr is not affected at all. Set
``WDSR_BASICSR_NO_HOOK=1`` to turn the hook off.

This module is imported by site.py, so it imports nothing but the standard
library's start-up modules.
"""
import os
import sys

DISABLE_VARIABLE = 'WDSR_BASICSR_NO_HOOK'
_OLD_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_NEW_FUNCTIONAL_TENSOR = 'torchvision.transforms._functional_tensor'


def _say(message):
    sys.stderr.write(f'wdsr-basicsr: {message}\n')


def alias_torchvision_functional_tensor():
    """Make ``torchvision.transforms.functional_tensor`` importable again.

    torchvision 0.17 removed it; basicsr 1.4.2 imports ``rgb_to_grayscale``
    from it at import time (``basicsr/data/degradations.py``), so ``import
    basicsr`` fails without this. The module still exists under its private
    name, registered here under the old one. Nothing is done when the old name
    still imports.
    """
    import importlib
    import importlib.util

    if _OLD_FUNCTIONAL_TENSOR in sys.modules or importlib.util.find_spec(_OLD_FUNCTIONAL_TENSOR) is not None:
        return
    sys.modules[_OLD_FUNCTIONAL_TENSOR] = importlib.import_module(_NEW_FUNCTIONAL_TENSOR)


class _RegisteringLoader:
    """basicsr's own loader, with the torchvision alias before and ``import wdsr_basicsr`` after its ``__init__``."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code, ...: basicsr's loader answers
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            alias_torchvision_functional_tensor()
        except Exception as error:  # noqa: BLE001  (a start-up hook must never break basicsr's own import)
            _say(f'torchvision shim not applied ({type(error).__name__}: {error}).')
        self._loader.exec_module(module)
        try:
            import wdsr_basicsr  # noqa: F401  (patches and registrations)
        except Exception as error:  # noqa: BLE001
            _say(f'not registered with basicsr ({type(error).__name__}: {error}); '
                 f'{DISABLE_VARIABLE}=1 turns this hook off.')


class BasicsrFinder:
    """A ``sys.meta_path`` finder that acts on the first import of ``basicsr`` only, then removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        import importlib.util

        remove()
        spec = importlib.util.find_spec('basicsr')
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def install():
    """Put :class:`BasicsrFinder` first on ``sys.meta_path`` (once), unless turned off or basicsr is imported."""
    if os.environ.get(DISABLE_VARIABLE, '') not in ('', '0') or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicsrFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrFinder())


def remove():
    """Take :class:`BasicsrFinder` off ``sys.meta_path``."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BasicsrFinder)]
