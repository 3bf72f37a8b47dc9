"""Register WDSR-A, WDSR-B and RDN with spandrel, the loader of chaiNNer and ComfyUI.

Usage::

    import wdsr_basicsr.spandrel_support  # noqa: F401  (registers the architectures once)
    from spandrel import ModelLoader
    model = ModelLoader().load_from_file('net_g_latest.pth')  # or a .safetensors from scripts/export.py
    sr = model(lr)  # (N, 3, H, W) in [0, 1]

spandrel sees only the state dict (of ``params_ema``, else ``params``); the hyper-parameters come from the
tensors' names and shapes, and the settings shapes do not show (input mean and range, WDSR's residual
scale) from the buffers this package's networks keep in their state dicts (:mod:`wdsr_basicsr.archs.describe`).
State dicts saved before those buffers were kept load with the paper's settings (DIV2K mean, range 2 for WDSR
and 255 for RDN, residual scale 1). Needs the optional ``spandrel`` package (``pip install wdsr-basicsr[spandrel]``).
"""

from __future__ import annotations

from spandrel import MAIN_REGISTRY, Architecture, ArchRegistry, ArchSupport, ImageModelDescriptor

from .archs.describe import describe_rdn, describe_wdsr
from .loading import build_described


class _Arch(Architecture):
    """A spandrel architecture for the networks that ``describe`` recognises."""

    def __init__(self, arch_id, name: str, describe):
        super().__init__(id=arch_id, name=name, detect=lambda state: describe(state) is not None)
        self._describe = describe

    def load(self, state_dict):
        options = self._describe(state_dict)
        kind = options['type']
        model = build_described(options, f'spandrel {self.name}')
        scale = options['upscale']
        return ImageModelDescriptor(
            model,
            state_dict,
            architecture=self,
            purpose='SR' if scale > 1 else 'Restoration',
            tags=[kind, f'{options["num_feat"]}nf', f'{options["num_block"]}nb'],
            supports_half=True,
            supports_bfloat16=True,
            scale=scale,
            input_channels=options['num_in_ch'],
            output_channels=options['num_out_ch'],
        )


ARCHITECTURES = (_Arch('WDSR', 'WDSR', describe_wdsr), _Arch('RDN', 'RDN', describe_rdn))


def register(registry: ArchRegistry = MAIN_REGISTRY) -> ArchRegistry:
    """Add WDSR (A and B) and RDN to ``registry`` unless they are there already; return the registry."""
    registry.add(*(ArchSupport.from_architecture(a) for a in ARCHITECTURES if a.id not in registry))
    return registry


register()
