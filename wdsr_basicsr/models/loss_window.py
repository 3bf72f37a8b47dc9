"""The training losses kept on the device between two log lines, read and checked only when someone asks."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.distributed as dist


class LossWindow:
    """Sums of each training loss since the last log line, on the device.

    A training step adds its losses with one device operation and never waits for the device: the host
    reads the sums (one copy) only when :meth:`read` is called, that is when basicsr's logger asks
    (``print_freq``) and before anything is saved or validated. A loss that is NaN or infinite at any
    iteration makes its sum non-finite, so :meth:`read` finds it then, naming the window of iterations.
    In a distributed run the sums are all-reduced at that moment only, on every rank alike (basicsr asks
    for the log, saves and validates on every rank), so every rank reaches the same verdict.
    """

    def __init__(self):
        self.names: list[str] = []
        self.sums: list[torch.Tensor] = []
        self.first = 0  # the first iteration of the window (0: no iteration yet)
        self.last = 0
        self.count = 0

    def add(self, current_iter: int, losses: dict[str, torch.Tensor]) -> None:
        """Add one iteration's losses (detached tensors, any device), without a host sync."""
        if not self.names:
            self.names = list(losses)
            self.sums = [torch.zeros((), dtype=torch.float64, device=v.device) for v in losses.values()]
        torch._foreach_add_(self.sums, [losses[name].double() for name in self.names])
        if self.count == 0:
            self.first = current_iter
        self.last, self.count = current_iter, self.count + 1

    def read(self, purpose: str) -> OrderedDict:
        """Each loss's mean over the window (over all ranks); raise if one is NaN or infinite.

        Args:
            purpose (str): What waits for the check, for the message (e.g. 'saving').

        Returns:
            OrderedDict: Loss name -> mean (float); empty before the first iteration.

        Raises:
            FloatingPointError: If a loss of the window is not finite.
        """
        if self.count == 0:
            return OrderedDict()
        sums = torch.stack(self.sums)
        world = 1
        if dist.is_available() and dist.is_initialized():
            sums = sums.clone()
            dist.all_reduce(sums)
            world = dist.get_world_size()
        means = OrderedDict(zip(self.names, (value / (self.count * world) for value in sums.cpu().tolist())))
        bad = {name: value for name, value in means.items() if not math.isfinite(value)}
        if bad:
            where = f'iteration {self.first}' if self.first == self.last else f'iterations {self.first}-{self.last}'
            raise FloatingPointError(
                f'Loss {bad} in {where}: training stopped before {purpose}, nothing saved; the last checkpoint '
                'in experiments/.../models is intact. Lower the learning rate or resume from the last training state.'
            )
        return means

    def restart(self) -> None:
        """Start a new window (after a log line)."""
        if self.sums:
            torch._foreach_zero_(self.sums)
        self.count = 0
