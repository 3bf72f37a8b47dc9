"""Checkpoint files: atomic writes and safe, explained reads."""
import os
import pickle
import tempfile
from os import path as osp

import torch


def save_atomic(obj, path):
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A kill at any instant leaves either the previous file or the new one, never
    a truncated file under ``path``.

    Args:
        obj: What to save.
        path (str): Destination.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path, what='checkpoint'):
    """Load a checkpoint with ``weights_only=True`` on the CPU.

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
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(f'{what} {path} holds objects that are not plain tensors and containers; it is refused '
                           f'because loading it could run code ({str(error).splitlines()[0]}).') from error
    except Exception as error:  # noqa: BLE001  (truncated zip, not a torch file, ...)
        raise RuntimeError(f'{what} {path} cannot be loaded ({error}); is it truncated or not a checkpoint?') from error
