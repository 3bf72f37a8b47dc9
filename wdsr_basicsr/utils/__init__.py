"""Helpers shared by the model, the scripts and the tests."""
from .checkpoint import load_checkpoint, network_from_checkpoint, save_atomic
from .inference import ensemble_forward, sr_forward, tiled_forward

__all__ = [
    'ensemble_forward', 'load_checkpoint', 'network_from_checkpoint', 'save_atomic', 'sr_forward', 'tiled_forward'
]
