"""Models; importing this package registers them in basicsr's ``MODEL_REGISTRY``."""

from .wdsr_model import WDSRModel

__all__ = ['WDSRModel']
