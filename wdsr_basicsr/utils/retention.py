"""Which checkpoints a run keeps: the last N iterations' network files and training states, and the best network."""

from __future__ import annotations

import os
import re
from os import path as osp

#: A network file of one iteration, as basicsr names it (``net_g_5000.pth``; not ``_latest``, not ``_best``).
NETWORK_FILE = re.compile(r'net_(?P<label>\w+?)_(?P<iter>\d+)\.pth')
#: A training state, as basicsr names it.
STATE_FILE = re.compile(r'(?P<iter>\d+)\.state')
#: The network file of the best validation (``val: best_metric``), beside ``net_g_latest.pth``.
BEST_NETWORK = 'net_g_best.pth'


def checkpoints_to_remove(models: str, states: str, keep: int, current_iter: int) -> list[str]:
    """The files of the iterations a run keeping ``keep`` checkpoints no longer keeps, training states first.

    Iterations up to ``current_iter`` that have a network file or a training state are counted, newest first;
    the files of all but the ``keep`` newest go, except the newest training state (the one a resume needs).
    Files of later iterations (left by a run this one resumed, trained again) and files of other names stay.

    Args:
        models (str): ``experiments/<name>/models``.
        states (str): ``experiments/<name>/training_states``.
        keep (int): Iterations to keep (``logger: keep_checkpoints``), at least 1.
        current_iter (int): The iteration just saved.

    Returns:
        list[str]: Paths, each iteration's training state before its network files, oldest iteration last.
    """
    found: dict[int, list[str]] = {}
    state_iters = []
    for folder, pattern in ((states, STATE_FILE), (models, NETWORK_FILE)):
        for name in sorted(os.listdir(folder)) if osp.isdir(folder) else []:
            match = pattern.fullmatch(name)
            if match and int(match['iter']) <= current_iter:
                found.setdefault(int(match['iter']), []).append(osp.join(folder, name))
                if pattern is STATE_FILE:
                    state_iters.append(int(match['iter']))
    needed = max(state_iters, default=None)
    old = sorted(found, reverse=True)[keep:]
    return [path for iteration in old if iteration != needed for path in found[iteration]]
