"""Checkpoint files: atomic writes and safe, explained reads."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
from os import path as osp

import torch

from ..files import written_aside


def strip_prefixes(state: dict, prefixes: tuple[str, ...] = ('module.',)) -> dict:
    """A state dict whose keys lose each of ``prefixes`` they start with, in order.

    Args:
        state (dict): The state dict.
        prefixes (tuple[str]): Default: ``('module.',)``, which (Distributed)DataParallel adds to every key.

    Returns:
        dict: The same values under the shortened keys.
    """
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            if isinstance(key, str) and key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a file size limit): the previous one is intact. One line."""


def save_atomic(obj: object, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path`` (:func:`written_aside`).

    Args:
        obj: What to save.
        path (str): Destination.

    Raises:
        CheckpointWriteError: If the file cannot be written; nothing of it is left, ``path`` is as it was.
    """
    buffer = io.BytesIO()  # serialised first: a failed write then says why (torch's zip writer would not)
    torch.save(obj, buffer)
    try:
        with written_aside(path) as tmp, open(tmp, 'wb') as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise CheckpointWriteError(
            f'{path} could not be written ({error.strerror or error}); nothing of it was kept and the checkpoints '
            'before it are intact: free space (or raise the file size limit), then run the same command with '
            '--auto_resume.'
        ) from None


def load_checkpoint(path: str, what: str = 'checkpoint') -> dict:
    """Load a checkpoint with ``weights_only=True`` on the CPU, or a ``.safetensors`` file.

    A ``.safetensors`` file (:mod:`wdsr_basicsr.export`, spandrel, traiNNer-redux)
    is returned as ``{'params': tensors}``, plus ``network_g`` where its metadata
    holds one (as JSON).

    Args:
        path (str): The file.
        what (str): How to name the file in errors, e.g. the option key
            ``'path:pretrain_network_g'``. Default: 'checkpoint'.

    Returns:
        dict: The loaded object.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If it is truncated or not a torch file, or if it holds
            objects other than tensors and plain containers (a pickle that could
            run code is refused, not executed).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist.')
    if path.endswith('.safetensors'):
        return _load_safetensors(path, what)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r'unsupported GLOBAL (\S+)', str(error))
        if found:  # torch's own advice (weights_only=False) is not passed on: that would run the file's code
            raise RuntimeError(
                f'{what} {path} holds {found.group(1)}, which is not a tensor or a plain container; '
                'it is refused, not loaded, because loading it could run code.'
            ) from None
        raise RuntimeError(f'{what} {path} is not a PyTorch checkpoint (its contents do not read as one).') from None
    except Exception as error:  # noqa: BLE001  (truncated zip, not a torch file, ...)
        raise RuntimeError(
            f'{what} {path} cannot be loaded ({type(error).__name__}: {error}); is it truncated or not a checkpoint?'
        ) from None


def _load_safetensors(path, what):
    try:
        from safetensors import safe_open
    except ImportError as error:
        raise RuntimeError(
            f'{what} {path}: reading .safetensors needs the safetensors package (pip install "wdsr-basicsr[export]").'
        ) from error
    try:
        with safe_open(path, framework='pt') as f:
            checkpoint = {'params': {key: f.get_tensor(key) for key in f.keys()}}
            metadata = f.metadata() or {}
        if 'network_g' in metadata:
            checkpoint['network_g'] = json.loads(metadata['network_g'])
    except Exception as error:  # noqa: BLE001  (truncated header, bad JSON, ...)
        raise RuntimeError(f'{what} {path} cannot be loaded as safetensors ({error}).') from error
    return checkpoint
