"""Helpers below the model and the entries: checkpoint files, distributed runs, tiled forwards, image files."""

from .checkpoint import load_checkpoint, save_atomic
from .tiling import ensemble_forward, sr_forward, tiled_forward

__all__ = ['ensemble_forward', 'load_checkpoint', 'save_atomic', 'sr_forward', 'tiled_forward']
