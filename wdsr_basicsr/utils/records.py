"""``validation.jsonl``: one JSON row per (iteration, dataset), rewritten atomically."""
from __future__ import annotations

import json
import math
from os import path as osp

from .checkpoint import atomic_path


def _rows(path):
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(path, rows):
    with atomic_path(path) as temporary, open(temporary, 'w') as f:
        f.writelines(json.dumps(row, allow_nan=False) + '\n' for row in rows)


def record_validation(path: str, row: dict) -> None:
    """Put ``row`` (``iter``, ``dataset``, ``mean``) into the record, replacing a row of the same iteration and set.

    Non-finite means (a perfect image's PSNR) are written as null: the file stays standard JSON.
    """
    row = dict(row, mean={k: v if math.isfinite(v) else None for k, v in row['mean'].items()})
    rows = [r for r in _rows(path) if (r['iter'], r['dataset']) != (row['iter'], row['dataset'])]
    _write(path, rows + [row])


def forget_validations_after(path: str, iteration: int) -> None:
    """Drop the rows of iterations after ``iteration`` (a run resumed from there will validate them again)."""
    rows = _rows(path)
    kept = [r for r in rows if r['iter'] <= iteration]
    if len(kept) != len(rows):
        _write(path, kept)
