"""Stop requests: a signal noted, a second Ctrl+C raised, every rank stopping at the same iteration."""

import os
import random
import signal

import numpy as np
import pytest
import torch
import torch.distributed as dist

from wdsr_basicsr.utils.preempt import STOP_SIGNALS, VOTE_EVERY, StopSignals, StopVote
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
