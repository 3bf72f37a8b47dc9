"""Datasets that training reads (registered in basicsr's ``DATASET_REGISTRY``) and their LMDB helpers."""

from .paired_dataset import CheckedPairedImageDataset

__all__ = ['CheckedPairedImageDataset']
