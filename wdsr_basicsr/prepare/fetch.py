"""Downloads that resume and check what they got, and archives that cannot write outside their folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from os import path as osp

from tqdm import tqdm

from . import PreparationError


def download(url: str, dest: str, chunk_size: int = 1 << 20) -> None:
    """Download ``url`` to ``dest``, resuming a previous partial download.

    The bytes go to ``dest + '.part'``; a rerun asks the server for the rest
    (HTTP Range). The file is renamed to ``dest`` only when its size equals the
    size the server announced and, for a zip, when every member's CRC-32 checks.

    Args:
        url (str): http(s) or file URL.
        dest (str): Final path.
        chunk_size (int): Bytes per read. Default: 1 MiB.

    Raises:
        PreparationError: On a size or checksum mismatch (the partial file is
            removed so the next run starts over) or a failed request.
    """
    if osp.exists(dest):
        return
    part = dest + '.part'
    have = osp.getsize(part) if osp.exists(part) else 0
    request = urllib.request.Request(url, headers={'Range': f'bytes={have}-'} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch
            response = None
        else:
            raise PreparationError(f'Downloading {url} failed: {error}') from error
    except urllib.error.URLError as error:
        raise PreparationError(f'Downloading {url} failed: {error.reason}') from error

    total = None
    if response is not None:
        with response:
            resumed = getattr(response, 'status', 200) == 206
            if not resumed:
                have = 0
            length = response.headers.get('Content-Length')
            total = have + int(length) if length is not None else None
            with (
                open(part, 'ab' if resumed else 'wb') as f,
                tqdm(total=total, initial=have, unit='B', unit_scale=True, desc=osp.basename(dest)) as bar,
            ):
                while True:
                    block = response.read(chunk_size)
                    if not block:
                        break
                    f.write(block)
                    bar.update(len(block))
    _check_download(part, dest, total)
    os.replace(part, dest)


def _check_download(part: str, dest: str, total: int | None) -> None:
    """Refuse (and remove) a download of another size than announced, or a zip whose members fail their CRC."""
    size = osp.getsize(part)
    if total is not None and size != total:
        os.remove(part)
        raise PreparationError(f'{dest}: got {size} bytes, the server announced {total}; removed, run again.')
    if not dest.endswith('.zip'):
        return
    try:
        with zipfile.ZipFile(part) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as error:
        os.remove(part)
        raise PreparationError(f'{dest}: not a valid zip ({error}); removed, run again.') from error
    if bad is not None:
        os.remove(part)
        raise PreparationError(f'{dest}: CRC check failed for member {bad}; removed, run again.')


def check_members(archive: str, dest: str, names: list[str]) -> None:
    """Raise :class:`PreparationError` if a member of ``archive`` named in ``names`` would land outside ``dest``."""
    root = osp.realpath(dest) + os.sep
    for name in names:
        if not osp.realpath(osp.join(dest, name)).startswith(root):
            raise PreparationError(f'{archive}: member {name!r} would be written outside {dest}.')


def extract(archive: str, dest: str, keep: Callable | None = None) -> None:
    """Extract the members of a zip or tar archive into ``dest``; none may land outside it.

    Args:
        archive (str): A ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz`` file.
        dest (str): Folder to extract into.
        keep (callable | None): Which member names to extract. Default: None (all).
    """
    keep = keep or (lambda name: True)
    if archive.endswith('.zip'):
        with zipfile.ZipFile(archive) as z:
            names = [m for m in z.namelist() if keep(m)]
            check_members(archive, dest, names)
            z.extractall(dest, names)
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if (m.isfile() or m.isdir()) and keep(m.name)]
            check_members(archive, dest, [m.name for m in members])
            if hasattr(tarfile, 'data_filter'):  # Python >= 3.11.4 / 3.10.12 / 3.9.17
                t.extractall(dest, members, filter='data')
            else:
                t.extractall(dest, members)


def unpack(archive_path: str, root: str) -> None:
    """Extract an archive into ``root`` (its members carry their own folders), keeping what exists.

    Extraction goes to a temporary folder first, then each top-level entry is
    moved into place; entries that already exist are kept.

    Raises:
        PreparationError: If a member would land outside ``root``.
    """
    tmp = osp.join(root, '_tmp_unpack_' + osp.basename(archive_path))
    shutil.rmtree(tmp, ignore_errors=True)
    extract(archive_path, tmp)
    for dirpath, dirnames, filenames in os.walk(tmp, topdown=True):
        rel = osp.relpath(dirpath, tmp)
        for name in list(dirnames) + filenames:
            src, dst = osp.join(dirpath, name), osp.normpath(osp.join(root, rel, name))
            if not osp.exists(dst):
                os.makedirs(osp.dirname(dst), exist_ok=True)
                os.replace(src, dst)
                if name in dirnames:
                    dirnames.remove(name)
    shutil.rmtree(tmp, ignore_errors=True)


def md5sum(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk_size), b''):
            digest.update(block)
    return digest.hexdigest()
