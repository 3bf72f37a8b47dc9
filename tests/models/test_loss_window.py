"""The losses a step leaves on the device: over two gloo ranks, read once, the mean of every rank's losses."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from wdsr_basicsr.models.loss_window import LossWindow

#: Each rank's l_pix over 3 iterations (rank 1's third is NaN in the second case).
LOSSES = {0: [1.0, 2.0, 3.0], 1: [5.0, 7.0, 9.0]}


def _rank(rank, init, nan, results):
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    try:
        window = LossWindow()
        for i, value in enumerate(LOSSES[rank], 1):
            if nan and rank == 1 and i == 3:
                value = float('nan')
            window.add(i, {'l_pix': torch.tensor(value)})
        try:
            results[rank] = window.read('logging')['l_pix']
        except FloatingPointError as error:
            results[rank] = str(error)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two interpreters
@pytest.mark.parametrize('nan', [False, True])
def test_two_ranks_read_the_mean_of_all_their_losses_and_stop_alike(tmp_path, nan):
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(f'file://{tmp_path}/rendezvous', nan, results), nprocs=2)
    if nan:  # rank 0's own losses are finite: it stops too, at the same read
        assert all('iterations 1-3: training stopped before logging' in results[r] for r in (0, 1))
    else:
        expected = sum(LOSSES[0] + LOSSES[1]) / 6  # by hand: the mean over 3 iterations and 2 ranks
        assert results[0] == results[1] == pytest.approx(expected)
