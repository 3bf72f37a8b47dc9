"""Small runs of shipped option files: shrink one onto small data, run an entry, read what the run measured.

The README's demo (``scripts/run_demo.py``), ``wdsr-reproduce``, the GPU check (``scripts/check_gpu.py``) and
the tests run the option files users run through this module, with only data paths, sizes and lengths
changed (:func:`shrink_options`). Validation figures are read from the run's ``validation.jsonl``
(:data:`wdsr_basicsr.models.results.VALIDATIONS_FILE`), not scraped from its log.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from os import path as osp

import yaml

from .models.results import VALIDATIONS_FILE
from .prepare.layout import point_at_div2k

#: The entries a run may start, beside this module.
ENTRIES = {name: osp.join(osp.dirname(osp.abspath(__file__)), f'{name}.py') for name in ('train', 'test')}


def shrink_options(
    opt: dict,
    *,
    data: str,
    name: str | None = None,
    iters: int | None = None,
    gt_size: int | None = None,
    batch: int | None = None,
    workers: int | None = None,
    network: dict | None = None,
    enlarge: int | None = None,
    validations: int = 2,
    checkpoints: int = 1,
) -> dict:
    """A copy of ``opt`` (a shipped option file's) with only its data, sizes and lengths changed.

    Every dataset reads the DIV2K LMDBs under ``data`` at the file's scale (``train``: the sub-images; every
    other phase: the validation images), but a training set that caches whole images (``cache_data`` with the
    ``disk`` backend) reads the whole-image folders under ``data``; the learning-rate milestones keep their
    fractions of the run.

    Args:
        opt (dict): The options as read (:func:`wdsr_basicsr.options.load_options`); not modified.
        data (str): Folder of DIV2K-named LMDBs (``prepare_div2k``, the demo set).
        name (str | None): The run's name. Default: None (the file's).
        iters (int | None): Training iterations. Default: None (the file's).
        gt_size (int | None): HR patch size of the training set. Default: None (the file's).
        batch (int | None): Training batch per GPU. Default: None (the file's).
        workers (int | None): Loader workers per GPU. Default: None (the file's).
        network (dict | None): ``network_g`` keys to change (a smaller network). Default: None.
        enlarge (int | None): ``dataset_enlarge_ratio`` of the training set (its epoch length). Default: None
            (the file's).
        validations (int): Validations in the run. Default: 2.
        checkpoints (int): Checkpoints saved in the run. Default: 1.

    Returns:
        dict: The shrunk options.
    """
    opt = copy.deepcopy(dict(opt))
    if name is not None:
        opt['name'] = name
    sizes = {'gt_size': gt_size, 'batch_size_per_gpu': batch, 'num_worker_per_gpu': workers}
    sizes['dataset_enlarge_ratio'] = enlarge
    for phase, dataset in opt['datasets'].items():
        point_at_div2k(dataset, phase, data, opt['scale'])
        if phase == 'train':
            dataset.update({key: value for key, value in sizes.items() if value is not None})
    opt['network_g'].update(network or {})
    train = opt.get('train')
    if train is not None and iters is not None:
        scheduler = train.get('scheduler') or {}
        if 'milestones' in scheduler:
            scheduler['milestones'] = [max(1, round(m * iters / train['total_iter'])) for m in scheduler['milestones']]
        train['total_iter'] = iters
        opt['val']['val_freq'] = max(1, iters // validations)
        opt['logger'].update(print_freq=max(1, iters // 10), save_checkpoint_freq=max(1, iters // checkpoints))
    return opt


def write_options(opt: dict, folder: str) -> str:
    """Write ``opt`` as ``folder/<name>.yml`` (plain YAML); return the path."""
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{opt["name"]}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(dict(opt), f, sort_keys=False)
    return path


def entry_command(entry: str, opt_path: str, nproc: int | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    """The command line of ``entry`` (``'train'`` or ``'test'``) on ``opt_path``; through torchrun with ``nproc``.

    Args:
        entry (str): One of :data:`ENTRIES`.
        opt_path (str): The option file.
        nproc (int | None): Processes of a ``torchrun --standalone`` launch. Default: None (one plain process).
        extra (tuple[str]): More arguments (``--auto_resume``, ``--force_yml ...``). Default: ().

    Returns:
        list[str]
    """
    if nproc is None:
        return [sys.executable, ENTRIES[entry], '-opt', opt_path, *extra]
    return [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--standalone',
        f'--nproc_per_node={nproc}',
        ENTRIES[entry],
        '-opt',
        opt_path,
        '--launcher',
        'pytorch',
        *extra,
    ]


def run_entry(
    entry: str,
    opt_path: str,
    cwd: str,
    *,
    nproc: int | None = None,
    extra: tuple[str, ...] = (),
    capture: bool = True,
    env: dict | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess:
    """Run :func:`entry_command` in ``cwd`` (where ``experiments/`` and ``results/`` go).

    Returns:
        subprocess.CompletedProcess: With ``stdout`` and ``stderr`` as text when ``capture``.
    """
    return subprocess.run(
        entry_command(entry, opt_path, nproc, extra),
        cwd=cwd,
        capture_output=capture,
        text=True,
        env=env,
        timeout=timeout,
    )


def read_validations(experiment: str) -> list[dict]:
    """The validations a training run recorded in ``experiment`` (``experiments/<name>``), in order.

    Returns:
        list[dict]: ``{'iter': int, 'dataset': str, 'mean': {metric: value}}`` per validation and set; empty
        when the run has not validated.
    """
    path = osp.join(experiment, VALIDATIONS_FILE)
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_log(experiment: str, name: str) -> str:
    """The text of the training logs of run ``name`` in ``experiment``, oldest first (a resumed run has several)."""
    logs = sorted(n for n in os.listdir(experiment) if n.startswith(f'train_{name}_') and n.endswith('.log'))
    text = ''
    for log in logs:
        with open(osp.join(experiment, log)) as f:
            text += f.read()
    return text
