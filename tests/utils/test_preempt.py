"""Stop requests: a signal noted, a second Ctrl+C raised, every rank stopping at the same iteration, the training
loader's workers deaf to them."""

import os
import random
import signal
import sys
import threading

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from helpers import run
from wdsr_basicsr.utils.preempt import (
    STOP_SIGNALS,
    VOTE_EVERY,
    StopSignals,
    StopVote,
    shield_workers,
    stop_signals_held,
)
from wdsr_basicsr.utils.resume import random_states, restore_random_states


@pytest.fixture
def handlers():
    """Put the process's signal handlers back after the test."""
    saved = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.parametrize('number', [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_is_noted_not_obeyed(handlers, number):
    signals = StopSignals()
    assert signals.install()
    os.kill(os.getpid(), number)
    os.kill(os.getpid(), signal.SIGTERM)  # a second request changes nothing
    assert signals.received == signal.Signals(number).name


def test_the_handlers_before_are_restored(handlers):
    def mine(number, frame):
        pass

    signal.signal(signal.SIGTERM, mine)
    signals = StopSignals()
    signals.install()
    assert signal.getsignal(signal.SIGTERM) != mine
    signals.restore()
    assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_second_ctrl_c_stops_at_once(handlers):
    signals = StopSignals()
    signals.install()
    os.kill(os.getpid(), signal.SIGINT)
    assert signals.received == 'SIGINT'
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_alone_the_run_stops_after_the_iteration_running():
    signals = StopSignals()
    vote = StopVote(signals)
    assert not any(vote.stops_after(i) for i in range(1, 25))
    signals.received = 'SIGTERM'
    assert vote.stops_after(25)


LATE_RANK = """
import multiprocessing, sys, time
import torch.distributed as dist
from wdsr_basicsr.utils.preempt import StopSignals, StopVote

def rank(number, store, late_s, out):
    dist.init_process_group('gloo', store=dist.FileStore(store, 2), rank=number, world_size=2)
    signals = StopSignals()
    signals.install()
    if number == 1:
        time.sleep(late_s)  # rank 1 installs its handlers and joins late
    start = time.monotonic()
    StopVote(signals)
    out.put((number, time.monotonic() - start))
    dist.destroy_process_group()

if __name__ == '__main__':
    out = multiprocessing.get_context('fork').Queue()
    ranks = [multiprocessing.get_context('fork').Process(target=rank, args=(n, sys.argv[1], 2.0, out)) for n in (0, 1)]
    for process in ranks:
        process.start()
    waited = dict(out.get(timeout=60) for _ in ranks)
    for process in ranks:
        process.join()
    print(f'{waited[0]:.1f}')
"""


@pytest.mark.slow
def test_no_rank_is_past_the_vote_before_every_rank_handles_the_signals(tmp_path):
    """Rank 1 installs its handlers 2 s late: rank 0 waits for it in StopVote (the run logs "SIGTERM, SIGUSR1 or
    Ctrl+C: the run saves ..." after it, on rank 0)."""
    (tmp_path / 'late.py').write_text(LATE_RANK)
    result = run([sys.executable, tmp_path / 'late.py', tmp_path / 'store'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout) >= 1.5


def test_ranks_stop_at_the_second_vote_after_a_request(tmp_path):
    """In a process group (one gloo rank here): votes every VOTE_EVERY iterations, read at the next one; a request
    at iteration 13 is put in at 20 and stops the run after 30, at no other iteration."""
    store = dist.FileStore(str(tmp_path / 'store'), 1)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    try:
        signals = StopSignals()
        vote = StopVote(signals)
        stops = []
        for iteration in range(1, 45):
            if iteration == 13:
                signals.received = 'SIGUSR1'
            if vote.stops_after(iteration):
                stops.append(iteration)
                break
        assert stops == [3 * VOTE_EVERY]
    finally:
        dist.destroy_process_group()


def test_random_states_survive_a_training_state(tmp_path):
    """Saved as a training state is (torch.save, loaded with weights_only=True), restored: the same next draws."""
    torch.manual_seed(3)
    states = random_states()
    path = tmp_path / 's.state'
    torch.save({'random_states': [states]}, path)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    restore_random_states(torch.load(path, weights_only=True)['random_states'][0])
    again = (random.random(), np.random.rand(), torch.rand(1))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2])


def test_a_request_that_comes_while_workers_start_is_delivered_after(handlers):
    signals = StopSignals()
    signals.install()
    with stop_signals_held(ignored=True):
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN  # what a process started now keeps
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this thread, the one that starts workers
        assert signals.received is None
    assert signals.received == 'SIGUSR1'
    assert not set(STOP_SIGNALS) & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_request_already_waiting_is_not_lost(handlers):
    """Ignoring a signal discards it where it waits (blocked): the hold sends it again."""
    signals = StopSignals()
    signals.install()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
        with stop_signals_held(ignored=True):
            pass
        assert signals.received is None and signal.SIGTERM in signal.sigpending()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    assert signals.received == 'SIGTERM'


class WorkerSignals(torch.utils.data.Dataset):
    """Each sample: the signals blocked or ignored in the process that loads it (the kernel's word:
    /proc/self/status)."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        with open('/proc/self/status') as f:
            masks = {line[:6]: int(line.split()[1], 16) for line in f if line.startswith(('SigBlk', 'SigIgn'))}
        return torch.tensor([os.getpid(), masks['SigBlk'] | masks['SigIgn']])


@pytest.mark.parametrize('context', ['fork', pytest.param('spawn', marks=pytest.mark.slow)])
def test_loader_workers_never_take_the_stop_signals(handlers, context):
    """fork, and spawn (what basicsr's distributed runs use: across exec); the main process's handlers kept."""
    signals = StopSignals()
    signals.install()
    loader = shield_workers(DataLoader(WorkerSignals(), num_workers=1, multiprocessing_context=context))
    for pid, deaf in (sample[0].tolist() for sample in loader):
        assert pid != os.getpid()
        assert all((deaf >> (number - 1)) & 1 for number in STOP_SIGNALS)
    os.kill(os.getpid(), signal.SIGTERM)
    assert signals.received == 'SIGTERM'


GROUP_SIGNALLED = """
import os, signal, sys, time
import torch
from torch.utils.data import DataLoader
from wdsr_basicsr.utils.preempt import StopSignals, shield_workers

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        time.sleep(0.05)
        return index

if __name__ == '__main__':
    signals = StopSignals()
    signals.install()
    loader = DataLoader(Slow(), num_workers=2, multiprocessing_context=sys.argv[1])
    if sys.argv[2] == 'shielded':
        shield_workers(loader)
    taken = []
    for batch in loader:
        if not taken:
            os.killpg(0, signal.SIGTERM)  # as torchrun and slurm send it: to every process of the group
        taken += batch.tolist()
    print(signals.received, sorted(taken))
"""


@pytest.mark.parametrize(
    'context, shielded',
    [('fork', True)] + [pytest.param(*case, marks=pytest.mark.slow) for case in (('fork', False), ('spawn', True))],
)
def test_a_stop_signal_to_the_whole_process_group_leaves_the_loader_to_finish(tmp_path, context, shielded):
    """The main process notes the request and gets every sample; unshielded, the workers die of it (the control,
    slow: the loader notices after its 5 s status interval)."""
    script = tmp_path / 'group.py'
    script.write_text(GROUP_SIGNALLED)
    argv = [sys.executable, script, context, 'shielded' if shielded else 'bare']
    result = run(argv, tmp_path)  # a process group of its own
    if shielded:
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout == f'SIGTERM {list(range(8))}\n'
    else:
        assert result.returncode != 0 and 'RuntimeError: DataLoader worker (pid' in result.stderr, result.stderr[-3000:]
