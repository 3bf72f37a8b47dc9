"""The training sampler: basicsr's order, each sample's draw named by its place, an epoch resumed where it stopped.

:class:`PlacedSampler` is basicsr's ``EnlargedSampler`` (the same indices, in the same order, on every rank),
which :mod:`wdsr_basicsr.compat` gives basicsr's training pipeline in its place. On top:

* A dataset that draws by place (``draws_by_place = True``, :class:`~.paired_dataset.CheckedPairedImageDataset`)
  receives a :class:`Place` instead of an index: the index and the seed of that sample's crop and flips, made
  of the run's ``manual_seed``, the epoch and the sample's position in the epoch's order (over all ranks). A
  sample's patch then depends on nothing else: not on which worker drew it, nor on what that worker drew before.
* It counts the samples the training loop has taken in the epoch (:meth:`take`, called by the model once per
  iteration), so a training state can say where the epoch stopped (:meth:`state_dict`), and a resumed run
  starts the epoch there (:meth:`load_state_dict`) instead of at its beginning, as basicsr does.
"""

from __future__ import annotations

from typing import NamedTuple

from basicsr.data.data_sampler import EnlargedSampler


class Place(NamedTuple):
    """What a training set that draws by place receives from :class:`PlacedSampler` instead of an index."""

    sample: int  # the index in the dataset
    seed: str  # '<manual_seed>:<epoch>:<position>': the seed of its patch's random source


class PlacedSampler(EnlargedSampler):
    """basicsr's ``EnlargedSampler`` whose samples are named by place and whose epoch can be resumed mid-way.

    Args:
        dataset (Dataset): The training set.
        num_replicas (int): The number of ranks.
        rank (int): This rank.
        ratio (int): basicsr's ``dataset_enlarge_ratio``. Default: 1.
    """

    epoch: int

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        #: The run's ``manual_seed``; with it a dataset that draws by place receives :class:`Place` s.
        self.draw_seed: int | None = None
        #: Samples of this epoch the training loop has taken (on this rank).
        self.taken = 0
        self._start = 0  # where iterating over this epoch starts (a resumed epoch: where it stopped; else 0)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch``: from its beginning, or where a resumed state stopped in it."""
        if epoch != self.epoch:
            self._start = 0
        self.epoch = epoch
        self.taken = self._start

    def take(self, samples: int) -> None:
        """Count ``samples`` taken by the training loop (one batch per iteration)."""
        self.taken += samples

    def state_dict(self) -> dict:
        """Where the training loop is: ``{'epoch': e, 'taken': samples of epoch e taken on each rank}``."""
        return {'epoch': self.epoch, 'taken': self.taken}

    def load_state_dict(self, state: dict) -> None:
        """Start the next iteration over ``state['epoch']`` after the samples it had taken.

        Raises:
            ValueError: If it took more samples than an epoch holds here (the data, ``batch_size_per_gpu`` or the
                number of ranks changed since).
        """
        if not 0 <= state['taken'] <= self.num_samples:
            raise ValueError(
                f'the training state took {state["taken"]} samples of epoch {state["epoch"]}, and an epoch holds '
                f'{self.num_samples} per rank here: the training set or the number of ranks changed since.'
            )
        self.epoch, self._start, self.taken = state['epoch'], state['taken'], state['taken']

    def __iter__(self):
        indices = list(super().__iter__())
        start = self._start  # every iterator over a resumed epoch starts there (basicsr's prefetcher makes two)
        places = self.draw_seed is not None and getattr(self.dataset, 'draws_by_place', False)
        for j in range(start, len(indices)):
            if places:
                position = self.rank + j * self.num_replicas  # its place in the epoch's order over all ranks
                yield Place(indices[j], f'{self.draw_seed}:{self.epoch}:{position}')
            else:
                yield indices[j]
