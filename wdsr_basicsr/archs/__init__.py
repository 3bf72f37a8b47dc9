"""Architectures; importing this package registers them in basicsr's ``ARCH_REGISTRY``."""

from .arch_util import count_parameters, fold_weight_norm, is_weight_normed, receptive_radius
from .rdn_arch import RDN
from .wdsr_arch import WDSR_A, WDSR_B

__all__ = ['RDN', 'WDSR_A', 'WDSR_B', 'count_parameters', 'fold_weight_norm', 'is_weight_normed', 'receptive_radius']
