"""``wdsr-cache``: list and prune the decoded-image caches of ``cache_data: true``.

Usage::

    wdsr-cache list  [FOLDER ...]   # each cache: the data it was decoded from, images, size, whether a run holds it
    wdsr-cache prune [FOLDER ...]   # remove every cache no run holds (the next run that needs one builds it again)

A FOLDER is where caches are: a data root's folder (caches sit beside the data by default), a dataset's
``cache_dir``, or the user's cache folder (``$XDG_CACHE_HOME/wdsr_basicsr``, the default FOLDER). A cache is held
by every process that trains or tests on it, so pruning never removes the pixels of a running job.
"""

from __future__ import annotations

import argparse
import sys

from .data.cache_admin import list_caches, prune_caches
from .data.decoded_cache import user_cache_dir
from .utils.messages import show_messages


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(description='List or prune the decoded-image caches of cache_data: true.')
    parser.add_argument('action', choices=['list', 'prune'], help='list the caches, or remove those no run holds.')
    parser.add_argument(
        'folders',
        nargs='*',
        default=None,
        help=f'Folders of caches. Default: the user cache folder, {user_cache_dir()}.',
    )
    args = parser.parse_args(argv)
    folders = args.folders or [user_cache_dir()]
    status = 0
    for folder in folders:
        try:
            if args.action == 'prune':
                removed = prune_caches(folder)
                print(f'{folder}: {len(removed)} cache(s) removed.')
                continue
            for cache in list_caches(folder):
                size = f'{cache["bytes"] / 2**30:.2f} GiB' if isinstance(cache['bytes'], int) else 'incomplete'
                held = 'held' if cache['held'] else 'not held'
                print(f'{cache["folder"]}\t{cache["root"]}\t{cache["images"]} images\t{size}\t{held}')
        except FileNotFoundError:
            print(f'{folder}: no such folder (no cache there).')
        except OSError as error:
            print(f'error: {folder}: {error}', file=sys.stderr)
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
