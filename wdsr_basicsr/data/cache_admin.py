"""Decoded caches on disk: listed with their identity and readers, removed safely (aside first), pruned."""

from __future__ import annotations

import fcntl
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from os import path as osp

from ..files import is_leftover
from .decoded_cache import INDEX, LOCK, SUFFIX, paths_identity

logger = logging.getLogger(__name__)


def _remove(folder, log, why):
    """Remove a cache folder nobody holds (:func:`remove_aside`), and log it."""
    try:
        lock = open(osp.join(folder, LOCK), 'rb')
    except FileNotFoundError:
        lock = None  # no lock file: not a complete cache, nobody can hold it
    except OSError:
        return False
    try:
        if lock is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # held
        return remove_aside(folder, log, f'{why}; nobody holds it')
    finally:
        if lock is not None:
            lock.close()


def remove_aside(folder, log, why):
    """Remove a cache folder, held or not, renamed aside first: a reader that maps its file keeps its pages."""
    if not osp.isdir(folder):
        return False
    parent, name = osp.split(folder)
    aside = tempfile.mkdtemp(prefix=f'.{name}.', suffix='.removed', dir=parent)
    os.rename(folder, osp.join(aside, name))
    shutil.rmtree(aside, ignore_errors=True)
    log(f'cache_data: removed {folder} ({why}).')
    return True


def remove_superseded(plan, log):
    """Remove the caches of the same files with other content (older versions of them) that nobody holds."""
    parent, name = osp.split(plan.folder)
    paths = paths_identity(plan.root, plan.keys, plan.layout)
    for folder in glob.glob(
        osp.join(glob.escape(parent), f'{glob.escape(osp.basename(osp.realpath(plan.root)))}.*{SUFFIX}')
    ):
        if osp.basename(folder) == name:
            continue
        try:
            with open(osp.join(folder, INDEX)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get('paths') == paths:
            _remove(folder, log, 'decoded from an earlier content of the same files')


def list_caches(parent: str) -> list[dict]:
    """The caches in ``parent``: ``folder``, ``root``, ``images``, ``bytes`` and ``held`` (a reader holds it).

    Raises:
        OSError: If ``parent`` cannot be listed.
    """
    caches = []
    for entry in sorted(os.listdir(parent)):
        folder = osp.join(parent, entry)
        if entry.startswith('.') or not entry.endswith(SUFFIX) or not osp.isdir(folder):
            continue
        try:
            with open(osp.join(folder, INDEX)) as f:
                record = json.load(f)
        except (OSError, ValueError):
            record = {}
        caches.append(
            {
                'folder': folder,
                'root': record.get('root'),
                'images': len(record.get('images', {})),
                'bytes': record.get('bytes'),
                'held': _held(folder),
            }
        )
    return caches


def _held(folder):
    try:
        with open(osp.join(folder, LOCK), 'rb') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def prune_caches(parent: str, log: Callable[[str], None] = logger.info) -> list[str]:
    """Remove every cache in ``parent`` that nobody holds, and what killed builders left; log each removal.

    A cache removed here is built again by the next run that needs it.

    Args:
        parent (str): A folder of caches (a data root's folder, a ``cache_dir``, :func:`user_cache_dir`).
        log (Callable[[str], None]): Where each removal is reported. Default: this module's logger.

    Returns:
        list[str]: The cache folders removed.

    Raises:
        OSError: If ``parent`` cannot be listed.
    """
    removed = [cache['folder'] for cache in list_caches(parent) if _remove(cache['folder'], log, 'pruned')]
    for leftover in glob.glob(osp.join(glob.escape(parent), f'.*{SUFFIX}.*.removed')):  # a removal cut short
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in [osp.join(parent, n) for n in sorted(os.listdir(parent)) if is_leftover(n, f'*{SUFFIX}')]:
        name = osp.basename(leftover)[1:].rsplit('.', 2)[0]
        build_lock = osp.join(parent, f'.{name}.lock')
        try:
            with open(build_lock, 'rb') as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no builder at work
                shutil.rmtree(leftover, ignore_errors=True)
                os.remove(build_lock)
        except FileNotFoundError:
            shutil.rmtree(leftover, ignore_errors=True)
        except BlockingIOError:
            continue
        log(f'cache_data: removed {leftover} (left by a build that did not finish).')
    return removed
