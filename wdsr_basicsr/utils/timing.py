"""Timing forwards against each other, for the benchmark and the choice of a runtime."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved_median_ms(
    calls: list[tuple[Callable, torch.Tensor]], device: str, warmup: int = 3, runs: int = 10
) -> list[float]:
    """Median milliseconds of each ``forward(x)`` in ``calls``, timed in alternating rounds.

    Each round times every call once, so a change of machine load during the
    run slows all of them alike and their ratios stay meaningful.

    Args:
        calls (list[tuple[callable, Tensor]]): ``(forward, x)`` pairs.
        device (str): ``'cpu'`` or ``'cuda'`` (synchronised around each call).
        warmup (int): Untimed calls of each forward first. Default: 3.
        runs (int): Timed rounds. Default: 10.

    Returns:
        list[float]: One median per call, in order.
    """
    times: list[list[float]] = [[] for _ in calls]
    with torch.no_grad():
        for forward, x in calls:
            for _ in range(warmup):
                forward(x)
        for _ in range(runs):
            for (forward, x), spent in zip(calls, times):
                if device == 'cuda':
                    torch.cuda.synchronize()
                start = time.perf_counter()
                forward(x)
                if device == 'cuda':
                    torch.cuda.synchronize()
                spent.append((time.perf_counter() - start) * 1000)
    return [statistics.median(spent) for spent in times]
