"""Datasets (registered in basicsr's ``DATASET_REGISTRY``) and DIV2K preparation."""
from .paired_dataset import CheckedPairedImageDataset

__all__ = ['CheckedPairedImageDataset']
