"""What the run reads: the keys that no table or declaration could judge are watched, and the unread named once.

The option check knows basicsr's reads (its committed table) and what classes declare; a key in a section
read by a class that declares nothing (a sibling plugin's model or dataset) is left to the run. Such keys are
watched: the sections that hold them are handed to basicsr as :class:`WatchedSection` (a ``dict`` that marks
a key when it is read by ``[]``, ``get``, ``in``, ``pop`` or ``setdefault``; iterating, as ``dict2str`` does,
reads nothing). Marks live in shared memory, so reads in forked DataLoader workers count. After the first
iteration and the first validation (a test run: the first validation), :meth:`Watch.unread` names each
watched key that nothing read, and the entries log it once.

A watched section is invisible to basicsr: ``copy.deepcopy`` keeps it watched (basicsr's ``build_dataset``
copies its section before the dataset reads it), pickling and ``yaml`` dumping give a plain mapping.
"""

from __future__ import annotations

import copy
from multiprocessing.sharedctypes import RawArray

import yaml
from basicsr.utils import get_root_logger

from ..declare import Section
from .vocabulary import shown

_READ = 1


class Watch:
    """The keys of one run that are watched, and whether each was read (shared with forked processes).

    Args:
        keys (list[tuple[Section, str]]): The watched keys, with their sections.
    """

    def __init__(self, keys: list[tuple[Section, str]]):
        self.index = {key: i for i, key in enumerate(dict.fromkeys(keys))}
        self.marks = RawArray('B', max(len(self.index), 1))

    def mark(self, section: Section, key: object) -> None:
        """Note that ``key`` of ``section`` was read."""
        i = self.index.get((section, key)) if isinstance(key, str) else None
        if i is not None:
            self.marks[i] = _READ

    def unread(self) -> list[str]:
        """One line per watched key that nothing has read."""
        return [
            f'option {shown(section) + key if section else key} has no effect: nothing read it (by the first '
            'iteration and validation).'
            for (section, key), i in self.index.items()
            if self.marks[i] != _READ
        ]


class WatchedSection(dict):
    """A section of the options whose reads of watched keys are marked in a :class:`Watch`."""

    watch: Watch | None = None
    section: Section = ()

    def _mark(self, key):
        if self.watch is not None:
            self.watch.mark(self.section, key)

    def __getitem__(self, key):
        self._mark(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._mark(key)
        return super().get(key, default)

    def __contains__(self, key):
        self._mark(key)
        return super().__contains__(key)

    def pop(self, key, *default):
        self._mark(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self._mark(key)
        return super().setdefault(key, default)

    def __deepcopy__(self, memo):
        twin = type(self)((copy.deepcopy(k, memo), copy.deepcopy(v, memo)) for k, v in dict.items(self))
        twin.watch, twin.section = self.watch, self.section
        return twin

    def __reduce__(self):
        return dict, (dict(self),)


def watch(opt: WatchedSection, keys: list[tuple[Section, str]]) -> Watch:
    """Watch ``keys`` of ``opt`` (the top level, itself a :class:`WatchedSection`): their sections become watched.

    Args:
        opt (WatchedSection): The options.
        keys (list[tuple[Section, str]]): The keys left to the run, each with its section (concrete).

    Returns:
        Watch: Where the reads are marked.
    """
    record = Watch(keys)
    opt.watch = record
    for section in sorted({section for section, _ in keys if section}, key=len):
        parent: object = opt
        for part in section[:-1]:
            parent = dict.get(parent, part) if isinstance(parent, dict) else None
        child = dict.get(parent, section[-1]) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(child, dict):
            watched = WatchedSection(child)
            watched.watch, watched.section = record, section
            dict.__setitem__(parent, section[-1], watched)
    return record


class UnreadReport:
    """Logs :meth:`Watch.unread` once, when the run has done what it waits for (an iteration, a validation).

    Args:
        watch (Watch): The run's watched keys.
        waits_for (tuple[str, ...]): ``'iteration'`` and / or ``'validation'``.
    """

    def __init__(self, watch: Watch, waits_for: tuple[str, ...]):
        self.watch, self.pending = watch, set(waits_for)

    def after(self, method, event: str):
        """``method``, which then counts as ``event`` having happened."""

        def run(*args, **kwargs):
            result = method(*args, **kwargs)
            if self.pending:
                self.pending.discard(event)
                if not self.pending:
                    for line in self.watch.unread():
                        get_root_logger().warning(line)
            return result

        return run


# a watched section is dumped as the mapping it is (the options' YAML copy, a sibling's own dump)
for _dumper in (yaml.SafeDumper, yaml.Dumper):
    yaml.add_multi_representer(WatchedSection, yaml.representer.SafeRepresenter.represent_dict, Dumper=_dumper)
