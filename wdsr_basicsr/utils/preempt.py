"""Stopping a training run when the cluster asks: at an iteration boundary, every rank at the same one.

SIGTERM (what slurm, Kubernetes and torchrun send before they kill), SIGUSR1 (what ``sbatch --signal`` sends
ahead of a time limit) and the first SIGINT (Ctrl+C) ask the run to stop (:class:`StopSignals`): the handler
only notes the request, so a checkpoint being written or a validation being run finishes. The model then
saves at the next iteration boundary that every rank agrees on (:class:`StopVote`) and raises
:class:`Preempted`, whose exit status :data:`REQUEUE_EXIT` says "run me again" (``--auto_resume`` continues).
A second SIGINT stops at once (``KeyboardInterrupt``), with the last checkpoint intact (every checkpoint is
written aside and renamed). The training loader's worker processes never act on these signals
(:func:`shield_workers`): slurm signals every process of a job step, torchrun and a terminal's Ctrl+C a whole
process group, and a worker killed by the request would end the run before it saves.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

#: The exit status of a run that stopped on request after saving: EX_TEMPFAIL of sysexits.h ("temporary failure;
#: the user is invited to retry"), which ``docs/tutorials/cluster.md``'s sbatch script requeues on.
REQUEUE_EXIT = 75
#: The signals that ask a run to stop and save.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
#: How many iterations apart the ranks of a distributed run compare their requests: a run stops at most twice
#: this many iterations after the first rank was asked, and never waits for the comparison.
VOTE_EVERY = 10


class Preempted(SystemExit):
    """The run stopped on request after saving at ``iteration``; its exit status is :data:`REQUEUE_EXIT`."""

    def __init__(self, iteration: int):
        super().__init__(REQUEUE_EXIT)
        self.iteration = iteration


class StopSignals:
    """The stop requests this process received: :data:`STOP_SIGNALS` noted, a second SIGINT raised.

    :meth:`install` sets the handlers (in the main thread; elsewhere it does nothing, and the signals keep
    their previous meaning).
    """

    def __init__(self):
        self.received: str | None = None  # the name of the first signal received
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Handle :data:`STOP_SIGNALS` from now on; whether it could (only the main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)
        return True

    def restore(self) -> None:
        """Give the signals back the handlers they had before :meth:`install` (training is over)."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if number == signal.SIGINT and self.received == signal.Signals.SIGINT.name:
            raise KeyboardInterrupt  # the second Ctrl+C: stop now
        if self.received is None:
            self.received = signal.Signals(number).name


class StopVote:
    """Whether the run stops after this iteration: the same answer on every rank, without waiting on a step.

    Alone, a request stops the run after the iteration that is running. In a distributed run each rank puts
    its request into an all-reduce (max) every :data:`VOTE_EVERY` iterations, without waiting for it, over a
    gloo group of its own (host memory, never the device's stream); it reads the result at the next vote, by
    when every rank has long joined it, and every rank stops at that same iteration when any was asked.

    Made on every rank once its signals are installed, it waits for every rank (a barrier, once; making a gloo
    group waits for every rank's connection today, the barrier keeps it so where groups connect lazily): past it,
    each rank knows that every rank handles the signals (a request sent to all ranks from then on is never lost).

    Args:
        signals (StopSignals): This process's requests, installed.
    """

    def __init__(self, signals: StopSignals):
        self.signals = signals
        group: Any = dist.new_group(backend='gloo') if dist.is_available() and dist.is_initialized() else None
        if group is not None:
            dist.barrier(group=group)
        self.group = group
        self._pending: tuple[Any, torch.Tensor] | None = None

    def stops_after(self, current_iter: int) -> bool:
        """Whether the run stops after iteration ``current_iter``; ranks call it at every iteration alike."""
        asked = self.signals.received is not None
        if self.group is None:
            return asked
        if current_iter % VOTE_EVERY:
            return False
        if self._pending is not None:
            work, flag = self._pending
            work.wait()
            if flag.item():  # a host tensor: no device sync
                self._pending = None
                return True
        flag = torch.tensor([int(asked)], dtype=torch.int32)
        self._pending = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group, async_op=True), flag)
        return False


@contextlib.contextmanager
def stop_signals_held(ignored: bool) -> Iterator[None]:
    """Hold :data:`STOP_SIGNALS` back in this thread for the block: a process forked meanwhile has them blocked
    from its first instruction, and a request sent meanwhile waits and is delivered here when the block ends.

    Args:
        ignored (bool): Also ignore them for the block (in the main thread only): what a process started through
            ``exec`` keeps (the ``spawn`` start method; ``exec`` clears the blocked set). A request that another
            thread of this process takes meanwhile is then lost: the block lasts only while processes start.
    """
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    handlers = {}
    if ignored and threading.current_thread() is threading.main_thread():
        waiting = set(STOP_SIGNALS) & signal.sigpending()  # ignoring a signal discards it: sent again below
        for number in STOP_SIGNALS:
            if signal.getsignal(number) is not None:  # None: a handler Python cannot put back
                handlers[number] = signal.signal(number, signal.SIG_IGN)
        for number in waiting & set(handlers):
            signal.pthread_kill(threading.get_ident(), number)  # to this thread, which holds it until the end
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)


def _deaf_worker(init_fn: Callable[[int], None] | None, worker_id: int) -> None:
    """A loader worker's ``worker_init_fn``: block the stop signals for good (after torch's worker set its own
    SIGTERM handler, which ends it), then run the loader's own."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if init_fn is not None:
        init_fn(worker_id)


def shield_workers(loader: DataLoader) -> DataLoader:
    """Make the worker processes ``loader`` starts deaf to :data:`STOP_SIGNALS` from their first instruction.

    A stop request is the main process's to act on (it saves, then ends the loader's workers with the run); a
    worker that died of it would end the run with "DataLoader worker is killed by signal" before it saves. The
    workers start with the signals held (:func:`stop_signals_held`; ignored too where they start through
    ``exec``), and block them before the loader's ``worker_init_fn`` runs. torch's own way to end a worker that
    outlives the loader's shutdown (SIGTERM) then does nothing: such a worker ends when it sees the main process
    gone.

    Args:
        loader (DataLoader): basicsr's training loader (a DataLoader or a subclass of one); changed in place.

    Returns:
        DataLoader: ``loader``.
    """
    cls = type(loader)
    if getattr(cls, 'shields_workers', False):
        return loader

    def start_shielded(self):
        if not self.num_workers:
            return cls.__iter__(self)
        context = self.multiprocessing_context or multiprocessing  # None: the process's, not fixed by asking here
        method = context.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
        with stop_signals_held(ignored=method != 'fork'):
            return cls.__iter__(self)

    loader.worker_init_fn = functools.partial(_deaf_worker, loader.worker_init_fn)
    namespace = {'__iter__': start_shielded, 'shields_workers': True, '__module__': cls.__module__}
    loader.__class__ = type(cls.__name__, (cls,), namespace)
    return loader
