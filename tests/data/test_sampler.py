"""The training sampler: basicsr's order, each sample's draw named by its place, an epoch resumed mid-way."""

import random

import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.paired_image_dataset import PairedImageDataset
from test_sampling import lmdb_train

from wdsr_basicsr.data.sampler import Place, PlacedSampler


class Numbers:
    """A dataset of n items (only its length matters to a sampler)."""

    def __init__(self, n, draws_by_place=False):
        self.n, self.draws_by_place = n, draws_by_place

    def __len__(self):
        return self.n


@pytest.mark.parametrize('world, ratio', [(1, 1), (2, 3), (3, 2)])
def test_the_order_is_basicsrs(world, ratio):
    """Every rank and epoch: the indices of basicsr's EnlargedSampler, plain ints for a dataset that does not draw
    by place; a Place of the same index (the seed of its global position) for one that does."""
    for epoch in (0, 1, 5):
        positions = []
        for rank in range(world):
            theirs = EnlargedSampler(Numbers(7), world, rank, ratio)
            theirs.set_epoch(epoch)
            plain, placed = (
                PlacedSampler(Numbers(7), world, rank, ratio),
                PlacedSampler(Numbers(7, True), world, rank, ratio),
            )
            for sampler in (plain, placed):
                sampler.draw_seed = 11
                sampler.set_epoch(epoch)
            assert list(plain) == list(theirs)
            places = list(placed)
            assert [p.sample for p in places] == list(theirs)
            for j, place in enumerate(places):
                seed, at_epoch, position = map(int, place.seed.split(':'))
                assert (seed, at_epoch, position) == (11, epoch, rank + j * world)
                positions.append(position)
        assert sorted(positions) == list(range(len(positions)))  # each place of the epoch once, over all ranks


def test_a_resumed_epoch_starts_where_it_stopped():
    """The state after k samples of epoch 2: a new sampler given it yields the rest of epoch 2 (every time it is
    iterated, as basicsr's prefetcher iterates twice), then whole epochs."""
    whole = PlacedSampler(Numbers(10, True), 2, 1, 2)
    whole.draw_seed = 3
    epochs = {}
    for epoch in (2, 3):
        whole.set_epoch(epoch)
        epochs[epoch] = list(whole)
    whole.set_epoch(2)
    whole.take(4)
    state = whole.state_dict()
    assert state == {'epoch': 2, 'taken': 4}
    resumed = PlacedSampler(Numbers(10, True), 2, 1, 2)
    resumed.draw_seed = 3
    resumed.load_state_dict(state)
    resumed.set_epoch(2)
    assert list(resumed) == list(resumed) == epochs[2][4:]
    assert resumed.taken == 4
    resumed.set_epoch(3)
    assert list(resumed) == epochs[3] and resumed.taken == 0


def test_a_state_from_a_longer_epoch_is_refused():
    sampler = PlacedSampler(Numbers(4), 1, 0)
    with pytest.raises(ValueError, match='took 9 samples of epoch 1, and an epoch holds 4 per rank here'):
        sampler.load_state_dict({'epoch': 1, 'taken': 9})


def test_a_place_draws_what_basicsr_draws_from_its_seed(lmdb_root, tmp_path):
    """Without cache_data: the sample of Place(i, s) is basicsr's PairedImageDataset sample i after random.seed(s),
    and the process's own random state is left as it was."""
    opt = lmdb_train(lmdb_root, tmp_path, cache_data=False, use_hflip=True, use_rot=True)
    for key in ('sampling', 'cache_dir'):
        opt.pop(key)
    ours, theirs = build_dataset(opt), PairedImageDataset(opt)
    random.seed(99)
    before = random.getstate()
    for index, seed in [(0, '0:0:0'), (3, '0:0:1'), (3, '7:2:40')]:
        sample = ours[Place(index, seed)]
        assert random.getstate() == before
        random.seed(seed)
        expected = theirs[index]
        random.setstate(before)
        assert torch.equal(sample['gt'], expected['gt']) and torch.equal(sample['lq'], expected['lq'])


@pytest.mark.parametrize('cache_data', [False, True])
def test_samples_do_not_depend_on_the_workers(lmdb_root, tmp_path, cache_data):
    """The same epoch through 0 and 2 workers (different worker seeds, each worker drawing other samples): the
    same batches, with and without cache_data."""
    changes = {'cache_data': cache_data, 'batch_size_per_gpu': 2}
    batches = []
    for workers, torch_seed in ((0, 1), (2, 2)):
        opt = lmdb_train(lmdb_root, tmp_path, num_worker_per_gpu=workers, **changes)
        if not cache_data:
            for key in ('sampling', 'cache_dir'):
                opt.pop(key)
        dataset = build_dataset(opt)
        sampler = PlacedSampler(dataset, 1, 0, 4)
        sampler.draw_seed = 4
        sampler.set_epoch(1)
        torch.manual_seed(torch_seed)
        loader = build_dataloader(dataset, opt, num_gpu=0, dist=False, sampler=sampler, seed=torch_seed)
        batches.append(list(loader))
    assert len(batches[0]) == len(batches[1]) > 1
    for a, b in zip(*batches):
        assert torch.equal(a['gt'], b['gt']) and torch.equal(a['lq'], b['lq'])
