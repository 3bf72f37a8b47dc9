"""The patches of basicsr 1.4.2: the only place in the project that changes basicsr's (or torch's) behaviour.

:func:`install` applies them, once, after checking basicsr's version; the entries call it, and so does the
start-up hook :mod:`wdsr_basicsr_startup` when anything imports basicsr. Importing this module patches
nothing (but the torchvision alias that basicsr needs to be imported at all). Nothing on disk is edited; each
patch in :func:`install` says in one line what breaks without it. What can live in this package's own
classes lives there (``WDSRModel``, ``CheckedPairedImageDataset``); the resume policy lives in
:mod:`wdsr_basicsr.utils.resume`, the option loader in :mod:`wdsr_basicsr.options`.
"""

import datetime
import functools
import math
import random
import sys
import time
import warnings
from os import path as osp

import numpy as np
import torch

from wdsr_basicsr_shim import alias_torchvision_functional_tensor

# Without it `import basicsr` fails: torchvision 0.17 removed a module basicsr imports (a no-op when it exists).
alias_torchvision_functional_tensor()

import basicsr  # noqa: E402
import basicsr.data  # noqa: E402
import basicsr.models  # noqa: E402
import basicsr.test  # noqa: E402
import basicsr.train  # noqa: E402
import basicsr.utils  # noqa: E402
import basicsr.utils.logger  # noqa: E402
import basicsr.utils.options  # noqa: E402
from basicsr.data.paired_image_dataset import PairedImageDataset  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.models.sr_model import SRModel  # noqa: E402
from basicsr.utils import get_root_logger  # noqa: E402
from basicsr.utils.dist_util import master_only  # noqa: E402
from basicsr.utils.file_client import LmdbBackend  # noqa: E402
from basicsr.utils.logger import MessageLogger  # noqa: E402

from wdsr_basicsr.data.lmdb_util import check_lmdb_complete, raise_if_bad_record, shared_lmdb  # noqa: E402
from wdsr_basicsr.data.sampler import PlacedSampler  # noqa: E402
from wdsr_basicsr.options import OptionError, parse_options  # noqa: E402
from wdsr_basicsr.options.observed import UnreadReport, WatchedSection  # noqa: E402
from wdsr_basicsr.utils.preempt import shield_workers  # noqa: E402
from wdsr_basicsr.utils.resume import load_resume_state  # noqa: E402
from wdsr_basicsr.utils.wandb_logger import init_wandb_logger  # noqa: E402


def model_to_device(self, net):
    """Move ``net`` to the model's device; wrap it in DDP (device ids on GPU only) or DataParallel."""
    net = net.to(self.device)
    if self.opt['dist']:
        if self.device.type == 'cuda':
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            device_ids = [torch.cuda.current_device()]
        else:
            device_ids = None
        local_statistics = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm)
            for m in net.modules()
        )
        net = torch.nn.parallel.DistributedDataParallel(
            net,
            device_ids=device_ids,
            broadcast_buffers=local_statistics,
            find_unused_parameters=self.opt.get('find_unused_parameters', False),
        )
    elif self.opt['num_gpu'] > 1:
        net = torch.nn.DataParallel(net)
    return net


def lmdb_backend_init(self, db_paths, client_keys='default', readonly=True, lock=False, readahead=False, **kwargs):
    """basicsr's ``LmdbBackend.__init__``: each LMDB checked complete, its environment shared in the process."""
    client_keys = [client_keys] if isinstance(client_keys, str) else list(client_keys)
    self.db_paths = [str(v) for v in (db_paths if isinstance(db_paths, (list, tuple)) else [db_paths])]
    if len(client_keys) != len(self.db_paths):
        raise ValueError(f'io_backend: client_keys {client_keys} and db_paths {self.db_paths} differ in length.')
    for path in self.db_paths:
        check_lmdb_complete(path)
    self._client = {
        client: shared_lmdb(path, readonly=readonly, lock=lock, readahead=readahead, **kwargs)
        for client, path in zip(client_keys, self.db_paths)
    }


_paired_getitem = PairedImageDataset.__getitem__


@functools.wraps(_paired_getitem)
def paired_getitem(self, index):
    """basicsr's ``PairedImageDataset.__getitem__``; a failure from a bad record names its LMDB and key."""
    try:
        return _paired_getitem(self, index)
    except Exception as error:
        raise_if_bad_record(self, index, error)
        raise


def worker_init_fn(worker_id, num_workers, rank, seed):
    """basicsr's DataLoader worker seeding, from the seed torch gives this worker in this epoch.

    torch's DataLoader draws a base seed from the process's generator (seeded by basicsr with ``manual_seed +
    rank``) for every iterator, i.e. every epoch, and gives worker ``i`` ``base + i`` (``torch.initial_seed()``
    in the worker): runs stay reproducible, ranks and workers differ, and each epoch draws new crops and flips.
    basicsr's arguments (``worker_id``, ``num_workers``, ``rank``, ``seed``) are what it binds; they are all in
    torch's seed already.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


class SiteRootKeepingOptions(WatchedSection):
    """The options of a run through basicsr's entries: their ``root_path`` is never an installed site directory.

    basicsr's ``train_pipeline`` stores the root it was given after parsing (``opt['root_path'] = root_path``,
    then ``tb_logger/`` goes under it); run as ``python -m basicsr.train`` that root is site-packages. The root
    that :func:`~wdsr_basicsr.options.derive_options` chose from the same one (its rule) is kept instead.
    """

    def __setitem__(self, key, value):
        if key == 'root_path' and 'root_path' in self:
            value = self['root_path']
        super().__setitem__(key, value)


def entry_parse_options(root_path, is_train=True):
    """Our :func:`parse_options`, which basicsr's ``train_pipeline`` calls first; under ``python -m basicsr.train``
    or a clone's ``basicsr/train.py`` it also gives that ``__main__`` copy of basicsr's train module our resume.

    Such a copy is not the imported ``basicsr.train`` that the patch below reaches; its ``train_pipeline`` looks
    ``load_resume_state`` up in its own globals after this returns. A refused option file ends the entry (basicsr's
    own, or a sibling's ``train.py``) with one line, as ours print it, like argparse's usage errors.
    """
    try:
        opt, args = parse_options(root_path, is_train, SiteRootKeepingOptions)
    except OptionError as error:
        raise SystemExit(f'error: {error}') from None
    main = sys.modules.get('__main__')
    spec_name = getattr(getattr(main, '__spec__', None), 'name', None)
    from_file = osp.normpath(getattr(main, '__file__', '') or '').endswith(osp.join('basicsr', 'train.py'))
    if main is not None and (spec_name == 'basicsr.train' or from_file) and hasattr(main, 'load_resume_state'):
        main.load_resume_state = load_resume_state  # type: ignore[attr-defined]
        main.create_train_val_dataloader = create_train_val_dataloader  # type: ignore[attr-defined]
    return opt, args


_create_train_val_dataloader = basicsr.train.create_train_val_dataloader
#: The training sampler of the run whose model basicsr's pipeline builds next, with that run's options: basicsr's
#: ``train_pipeline`` calls ``create_train_val_dataloader(opt, ...)``, then ``build_model(opt)``; handed over once.
_sampler_for_model: list[tuple[dict, PlacedSampler]] = []


def create_train_val_dataloader(opt, logger):
    """basicsr's loaders, with the number of epochs counted from the batches the training loader gives; its
    sampler (a :class:`~wdsr_basicsr.data.sampler.PlacedSampler`) draws from the run's ``manual_seed`` and goes to
    the model that :func:`build_model` builds next.

    Its worker processes never act on a stop signal (:func:`~wdsr_basicsr.utils.preempt.shield_workers`): the run
    does, and saves.

    basicsr counts an epoch as ``ceil(samples / batch)`` iterations, but its loader drops the last incomplete batch
    (``drop_last``): where the batch does not divide the samples, its epochs run out before ``total_iter`` (a
    300-iteration run over 20 samples in batches of 16 ends after 151, without the checkpoint it was asked for).

    Raises:
        OptionError: If the training set holds fewer samples per rank than one batch (no iteration at all).
    """
    train_loader, train_sampler, val_loaders, total_epochs, total_iters = _create_train_val_dataloader(opt, logger)
    if isinstance(train_sampler, PlacedSampler):
        train_sampler.draw_seed = opt['manual_seed']
        _sampler_for_model[:] = [(opt, train_sampler)]
    if train_loader is not None:
        shield_workers(train_loader)
        per_epoch = len(train_loader)
        if per_epoch == 0:
            raise OptionError(
                f'datasets:train: {len(train_sampler)} samples per rank (after dataset_enlarge_ratio) are fewer '
                'than one batch (batch_size_per_gpu): no iteration can run; raise dataset_enlarge_ratio.'
            )
        epochs = math.ceil(total_iters / per_epoch)
        if epochs != total_epochs:
            logger.info(
                f'The training loader gives {per_epoch} iterations per epoch (the last incomplete batch is dropped): '
                f'{epochs} epochs reach {total_iters} iterations.'
            )
            total_epochs = epochs
    return train_loader, train_sampler, val_loaders, total_epochs, total_iters


_build_model = basicsr.models.build_model


def build_model(opt):
    """basicsr's ``build_model``; a training model validates each set once per iteration, and never past the end.

    basicsr's pipeline validates again after its loop with an iteration counted past ``total_iter`` (one per
    remaining epoch): the weights are the last iteration's, so that validation is named by ``total_iter``, and
    skipped when that iteration's validation of the set has run already. A model that can (``validate_missed``,
    :class:`~wdsr_basicsr.models.WDSRModel`) validates, right after basicsr resumes it, the sets that the stopped
    run saved but never validated at that iteration. A model that follows basicsr's training loop
    (``follow_training``, :class:`~wdsr_basicsr.models.WDSRModel`) gets the training sampler.
    """
    model = _build_model(opt)
    handed = _sampler_for_model.pop() if _sampler_for_model else None
    if handed is not None and handed[0] is opt and callable(getattr(model, 'follow_training', None)):
        model.follow_training(handed[1])
    total_iter = (opt.get('train') or {}).get('total_iter')
    if opt.get('is_train') and total_iter is not None:
        model.validation = functools.partial(validate_once, model.validation, total_iter, set())
    if opt.get('is_train') and callable(getattr(model, 'validate_missed', None)):
        model.resume_training = functools.partial(resume_then_validate, model.resume_training, model.validate_missed)
    watched = opt.watch if isinstance(opt, WatchedSection) else None
    if watched is not None and watched.index and opt.get('rank', 0) == 0:
        waits_for = ('iteration',) * bool(opt.get('is_train')) + ('validation',) * (opt.get('val') is not None)
        report = UnreadReport(watched, waits_for)
        model.optimize_parameters = report.after(model.optimize_parameters, 'iteration')
        model.validation = report.after(model.validation, 'validation')
    return model


def resume_then_validate(resume_training, validate_missed, resume_state):
    """basicsr's ``model.resume_training``, then the validation that the stopped run missed at that iteration."""
    resume_training(resume_state)
    validate_missed(resume_state['iter'])


def validate_once(validation, total_iter, done, dataloader, current_iter, tb_logger, save_img=False):
    """``validation`` of a training model at ``min(current_iter, total_iter)``, unless ``done`` holds it already."""
    current_iter = min(current_iter, total_iter)
    key = (dataloader.dataset.opt['name'], current_iter)
    if key in done:
        get_root_logger().info(f'Validation {key[0]} of iteration {current_iter} is done already.')
        return
    done.add(key)
    validation(dataloader, current_iter, tb_logger, save_img)


@master_only
def log_training(self, log_vars):
    """basicsr's ``MessageLogger`` line (epoch, iteration, learning rates, times, losses; losses and the rest also
    to tensorboard) with an ETA of the iterations left at the mean time of those timed so far.

    basicsr counts one iteration fewer left than there are (its last line reads ``eta: -1 day, 23:59:59``) and
    one more timed. Its clock starts after iteration 1 of a new run (``reset_start_time``), or when the logger is
    made, at the resumed iteration ``start_iter``.
    """
    values = dict(log_vars)
    epoch, current_iter, lrs = values.pop('epoch'), values.pop('iter'), values.pop('lrs')
    rates = ''.join(f'{lr:.3e},' for lr in lrs)
    message = f'[{self.exp_name[:5]}..][epoch:{epoch:3d}, iter:{current_iter:8,d}, lr:({rates})] '
    if 'time' in values:
        iter_time, data_time = values.pop('time'), values.pop('data_time')
        timed = current_iter - max(self.start_iter, 1)
        per_iter = (time.time() - self.start_time) / timed if timed > 0 else iter_time
        eta = datetime.timedelta(seconds=int(per_iter * max(self.max_iters - current_iter, 0)))
        message += f'[eta: {eta}, time (data): {iter_time:.3f} ({data_time:.3f})] '
    for key, value in values.items():
        message += f'{key}: {value:.4e} '
        if self.use_tb_logger and 'debug' not in self.exp_name:
            self.tb_logger.add_scalar(f'losses/{key}' if key.startswith('l_') else key, value, current_iter)
    self.logger.info(message)


def log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
    """basicsr's validation lines of ``SRModel``: each metric's mean, and in training the best so far with its
    iteration (a test run passes its name as the iteration: basicsr's line read ``Best: ... @ <name> iter``)."""
    lines = [f'Validation {dataset_name}']
    for metric, value in self.metric_results.items():
        line = f'\t # {metric}: {value:.4f}'
        if self.opt['is_train'] and hasattr(self, 'best_metric_results'):
            best = self.best_metric_results[dataset_name][metric]
            line += f'\tBest: {best["val"]:.4f} @ {best["iter"]} iter'
        lines.append(line)
    get_root_logger().info('\n'.join(lines) + '\n')
    if tb_logger:
        for metric, value in self.metric_results.items():
            tb_logger.add_scalar(f'metrics/{dataset_name}/{metric}', value, current_iter)


#: The basicsr these patches were written for (and read from: see each patch's line).
BASICSR_VERSION = '1.4.2'
_installed = False


class CompatError(RuntimeError):
    """The installed basicsr is not the version these patches were written for: nothing was patched."""


def entry_install() -> None:
    """:func:`install` for an entry: another basicsr version ends it with one line (like argparse's errors)."""
    try:
        install()
    except CompatError as error:
        raise SystemExit(f'error: {error}') from None


def install() -> None:
    """Patch basicsr 1.4.2 in memory, once (a second call does nothing); each patch says what breaks without it.

    The entries and the start-up hook call it; importing a module of this package patches nothing.

    Raises:
        CompatError: If the installed basicsr is another version (then nothing is patched).
    """
    global _installed
    if _installed:
        return
    if basicsr.__version__ != BASICSR_VERSION:
        raise CompatError(
            f'wdsr-basicsr adapts basicsr {BASICSR_VERSION}, and basicsr {basicsr.__version__} is installed: nothing '
            f'was patched (pip install basicsr=={BASICSR_VERSION}).'
        )
    _installed = True
    # Without it an option file can run code (PyYAML's full loader, `eval` of --force_yml), distributed runs need NCCL
    # and CUDA, and `python -m basicsr.train` writes experiments/ into site-packages. The module's own name is patched
    # too: `python -m basicsr.train` and a BasicSR clone's `basicsr/train.py` import it from there.
    basicsr.utils.options.parse_options = basicsr.train.parse_options = basicsr.test.parse_options = entry_parse_options
    # Without it `from basicsr import parse_options` (basicsr re-exports its train module's names) is the loader above.
    basicsr.parse_options = entry_parse_options
    # Without it every `python -m basicsr.train` / `-m basicsr.test` starts with runpy's "found in sys.modules ...
    # unpredictable behaviour" warning: basicsr's own __init__ imports both modules; the one consequence (the __main__
    # copy's resume) is handled by entry_parse_options.
    warnings.filterwarnings(
        'ignore',
        message=r"'basicsr\.(train|test)' found in sys\.modules after import of package 'basicsr'",
        category=RuntimeWarning,
    )
    # Without it DDP on the CPU fails (basicsr passes CUDA device ids), and every forward broadcasts constant buffers.
    BaseModel.model_to_device = model_to_device
    # Without it a cut-short data.mdb kills a DataLoader worker with SIGBUS, and a second dataset (or a forked worker)
    # over an LMDB that is open in the process fails with "already open in this process".
    LmdbBackend.__init__ = lmdb_backend_init
    # Without it every epoch's workers replay the first epoch's crops and flips: basicsr seeds them with seed +
    # worker_id + rank * num_workers, the same at every epoch (workers are started anew each epoch unless
    # persistent_workers).
    basicsr.data.worker_init_fn = worker_init_fn
    # Without it a missing or corrupt LMDB record fails as "'NoneType' object has no attribute ...", naming nothing.
    PairedImageDataset.__getitem__ = paired_getitem
    # Without it resuming needs CUDA (basicsr maps the state to torch.cuda.current_device()); our entries call the
    # pipeline in basicsr.train, whose global this is.
    basicsr.train.load_resume_state = load_resume_state
    # Without it a run whose batch does not divide its samples ends before total_iter, without its last checkpoint
    # (basicsr counts the epochs with the incomplete batch that its loader drops), and a stop signal sent to every
    # process (slurm's, torchrun's, a terminal's Ctrl+C) kills the training loader's workers before the run saves.
    basicsr.train.create_train_val_dataloader = create_train_val_dataloader
    # Without it a resumed run starts its epoch again from the first sample (a preemption changes the result), and a
    # training sample's crop depends on which worker drew it after what: the training sampler, whose order it keeps.
    basicsr.train.EnlargedSampler = PlacedSampler
    # Without it `logger: wandb: project` fails at start against today's wandb (basicsr calls wandb.util.generate_id,
    # since removed). basicsr's train module and a `python -m basicsr.train` copy take it from basicsr.utils.
    basicsr.utils.logger.init_wandb_logger = basicsr.utils.init_wandb_logger = basicsr.train.init_wandb_logger = (
        init_wandb_logger
    )
    # Without it a run validates twice at its end, the second time named by an iteration past total_iter (@ 2001 iter).
    basicsr.models.build_model = basicsr.train.build_model = basicsr.test.build_model = build_model
    # Without it the last training line of every run reads `eta: -1 day, 23:59:59` (basicsr counts one iteration short).
    MessageLogger.__call__ = log_training
    # Without it a test run's log reads `Best: 33.93 @ demo_2000_iter iter` (basicsr's test passes the name as the
    # iteration).
    SRModel._log_validation_metric_values = log_validation_metric_values
