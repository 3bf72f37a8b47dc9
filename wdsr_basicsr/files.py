"""The one writer of files and folders a user keeps: built aside, synced, renamed into place; one cleanup.

A file or folder is written under a hidden name beside its place, ``.<name>.<random>.partial`` (then
``suffix``, for a writer that goes by the extension: ``.partial.png``), flushed to disk, then renamed over
its place and the rename synced. A kill at any instant leaves the previous file or the new one, never a
partial one under its name; an error removes what was written. What a killed writer left is what
:func:`is_leftover` recognises, and :func:`remove_leftovers` removes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from os import path as osp

#: The mark of a file or folder being written (:func:`written_aside`).
PARTIAL = '.partial'


@contextlib.contextmanager
def written_aside(path: str, *, folder: bool = False, suffix: str = '') -> Iterator[str]:
    """A temporary file (or folder) beside ``path`` to write; renamed over ``path`` when the block ends well.

    The result gets the mode that ``open`` / ``os.makedirs`` would give under the umask, not the 0600 / 0700
    of a temporary one. A folder's place must be free (or an empty folder) at the rename.

    Args:
        path (str): Destination.
        folder (bool): Write a folder (its files are synced one by one). Default: False.
        suffix (str): End of the temporary name (``'.onnx'`` for a reader that goes by the extension).
            Default: ''.

    Yields:
        str: The temporary path.
    """
    parent, name = osp.split(osp.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if folder:
        temporary = tempfile.mkdtemp(prefix=f'.{name}.', suffix=PARTIAL + suffix, dir=parent)
    else:
        fd, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix=PARTIAL + suffix, dir=parent)
        os.close(fd)
    try:
        yield temporary
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, (0o777 if folder else 0o666) & ~umask)
        _sync(temporary)
        os.replace(temporary, path)
        _sync(parent)
    finally:
        _remove(temporary)


def is_leftover(name: str, of: str = '*') -> bool:
    """Whether the entry ``name`` is what :func:`written_aside` left of ``of`` (a shell pattern: escape a name
    that may hold ``*?[`` with ``glob.escape``)."""
    return fnmatch.fnmatchcase(name, f'.{of}.*{PARTIAL}*')


def remove_leftovers(parent: str, of: str = '*') -> list[str]:
    """Remove what killed writers left in ``parent`` (of the entries named ``of``); returns what was removed."""
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    removed = [osp.join(parent, name) for name in names if is_leftover(name, of)]
    for leftover in removed:
        _remove(leftover)
    return removed


def _sync(path):
    """Flush ``path`` to disk: a file, or a folder with every file in it."""
    if osp.isdir(path):
        for folder, _, names in os.walk(path):
            for name in names:
                _fsync(osp.join(folder, name))
    _fsync(path)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path):
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif osp.lexists(path):
        os.remove(path)
