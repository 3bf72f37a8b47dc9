"""Start-up hook of wdsr-basicsr: installed means registered.

``wdsr_basicsr.pth`` (installed beside this module in site-packages) calls
:func:`install` when the interpreter starts. That only puts a finder on
``sys.meta_path``; nothing heavy is imported (no torch, no basicsr). When
``basicsr`` is first imported, by anyone (``python -m basicsr.train``,
``python basicsr/train.py`` in a BasicSR clone, a sibling plugin's entry), the
finder wraps basicsr's loader once:

1. before basicsr's ``__init__`` runs: :func:`wdsr_basicsr_shim.alias_torchvision_functional_tensor`
   (basicsr 1.4.2 imports a torchvision module that no longer exists);
2. after it ran: ``import wdsr_basicsr`` (the registration of WDSR_A, WDSR_B,
   RDN, WDSRModel, ...) and ``wdsr_basicsr.compat.install()`` (its patches of
   basicsr 1.4.2; another version: one line, nothing patched).

A failure in either step prints one line on stderr and leaves basicsr as it
is; a start-up without basicsr is not affected at all. Set
``WDSR_BASICSR_NO_HOOK=1`` to turn the hook off.

This module is imported by site.py, so it imports nothing but the standard
library's start-up modules (and the shim, standard library only too).
"""

import os
import sys

import wdsr_basicsr_shim

DISABLE_VARIABLE = 'WDSR_BASICSR_NO_HOOK'


def _say(message):
    sys.stderr.write(f'wdsr-basicsr: {message}\n')


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
            wdsr_basicsr_shim.alias_torchvision_functional_tensor()
        except Exception as error:  # noqa: BLE001  (a start-up hook must never break basicsr's own import)
            _say(f'torchvision shim not applied ({type(error).__name__}: {error}).')
        self._loader.exec_module(module)
        try:
            import wdsr_basicsr.compat  # registrations (the package), then the patches, version-checked

            wdsr_basicsr.compat.install()
        except Exception as error:  # noqa: BLE001
            _say(
                f'not registered with basicsr ({type(error).__name__}: {error}); '
                f'{DISABLE_VARIABLE}=1 turns this hook off.'
            )


class BasicsrFinder:
    """A ``sys.meta_path`` finder that acts on the first import of ``basicsr`` only, then removes itself."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        import importlib.util

        remove()
        spec = importlib.util.find_spec('basicsr')
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)  # type: ignore[assignment]  # a wrapper: it delegates
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
