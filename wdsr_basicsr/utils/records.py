"""The JSON records of runs: standard JSON only, written atomically; ``validation.jsonl`` one row per evaluation.

A non-finite figure (the PSNR of an image reproduced exactly is infinite) is written as ``null``: Python's
``json`` would write ``Infinity``, which browsers and most JSON readers refuse.
"""

from __future__ import annotations

import json
import math
from os import path as osp

from ..files import written_aside


def finite(value):
    """``value`` with every non-finite float (at any depth of dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: str, value, indent: int | None = 1) -> None:
    """Write ``value`` to ``path`` as standard JSON (non-finite numbers as null), replacing the file atomically."""
    with written_aside(path) as temporary, open(temporary, 'w') as f:
        json.dump(finite(value), f, indent=indent, allow_nan=False)


def _rows(path):
    if not osp.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write(path, rows):
    with written_aside(path) as temporary, open(temporary, 'w') as f:
        f.writelines(json.dumps(finite(row), allow_nan=False) + '\n' for row in rows)


def record_validation(path: str, row: dict) -> None:
    """Put ``row`` (``iter``, ``dataset``, ``mean``) into the record, replacing a row of the same iteration and set.

    Non-finite means (a perfect image's PSNR) are written as null.
    """
    rows = [r for r in _rows(path) if (r['iter'], r['dataset']) != (row['iter'], row['dataset'])]
    _write(path, rows + [row])


def validation_rows(path: str) -> list[dict]:
    """The record's rows (``iter``, ``dataset``, ``mean``), in the order they were written; none if it is missing."""
    return _rows(path)


def recorded_datasets(path: str, iteration: int) -> set[str]:
    """The datasets the record holds a row of ``iteration`` for."""
    return {row['dataset'] for row in _rows(path) if row['iter'] == iteration}


def forget_validations_after(path: str, iteration: int) -> None:
    """Drop the rows of iterations after ``iteration`` (a run resumed from there will validate them again)."""
    rows = _rows(path)
    kept = [r for r in rows if r['iter'] <= iteration]
    if len(kept) != len(rows):
        _write(path, kept)
