"""What an option file's classes read, section by section, and what their factories take: known, not guessed.

Three sources, none of them source code read at run time:

* basicsr 1.4.2's pipeline and registered model and dataset classes: the committed table :data:`TABLE`
  (made from basicsr's source by ``scripts/basicsr_option_table.py``; a test remakes it and compares);
* the ``option_keys`` (and ``option_builds``) that a class declares (:mod:`wdsr_basicsr.declare`): this
  package's classes, and any sibling plugin's that does the same;
* this package's own pipeline (:data:`.rules.PIPELINE_KEYS`).

A class that is in neither the table nor declares its keys makes the sections it reads unjudgeable: a key
there is never refused for what the check cannot know (the run names it if nothing read it, see
:mod:`.observed`). Sections are tuples of keys; ``'*'`` stands for any key (a dataset's phase, a metric's name).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Callable
from os import path as osp

import basicsr
import torch
from basicsr.models import lr_scheduler
from basicsr.utils.registry import Registry

from ..declare import Section, declared_builds, declared_keys
from .errors import OptionError
from .rules import PIPELINE_KEYS
from .values import section_at

#: basicsr's reads, made by ``scripts/basicsr_option_table.py`` (see :func:`.source_reads.basicsr_table`).
TABLE = osp.join(osp.dirname(osp.abspath(__file__)), 'basicsr_reads.json')
#: Where ``self.opt`` of a registered class points: a model reads the whole file, a dataset its own section.
CLASS_ROOTS: dict[str, Section] = {'model': (), 'dataset': ('datasets', '*')}
#: Sections whose keys are free names (datasets' phases, metrics' names): one pattern stands for them all.
NAMED_SECTIONS = (('datasets',), ('val', 'metrics'))
#: Modules of classes that read no options (a dataset's ``torch.utils.data.Dataset``, ``typing.Generic``).
_READ_NOTHING = ('builtins', 'abc', 'typing', 'torch')


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    previous, row = list(range(len(b) + 1)), list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        before, previous, row = previous, row, [i] + [0] * len(b)  # before: the row above previous
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[-1]


def misspelt(key: object, known) -> str | None:
    """The known key that ``key`` is a typo of (1 edit away, 2 for keys longer than 6), or None.

    The one "did you mean" of the option check: keys, types, keywords.
    """
    key = str(key)
    best = min(((edit_distance(key, str(k)), str(k)) for k in known if str(k) != key), default=None)
    return best[1] if best and best[0] <= (1 if len(key) <= 6 else 2) else None


def pattern(section: Section) -> Section:
    """``section`` with its free names (a dataset's phase, a metric's name) as ``'*'``."""
    section = tuple(section)
    for named in NAMED_SECTIONS:
        if section[: len(named)] == named and len(section) > len(named):
            section = named + ('*',) + section[len(named) + 1 :]
    return section


def shown(section: Section) -> str:
    """How a message names a section: ``train:``, ``datasets:<phase>:``, or ``the top level``."""
    return ':'.join(s if s != '*' else '<name>' for s in section) + ':' if section else 'the top level'


def section_name(section: Section) -> str:
    """A section as the table and ``option_keys`` name it: ``'train'``, ``'datasets:*'``, ``''`` (top level)."""
    return ':'.join(section)


def _section_of(name: str) -> Section:
    return tuple(name.split(':')) if name else ()


@functools.cache
def basicsr_table() -> dict:
    """The committed table of basicsr's reads (read once); an empty one when installed basicsr is another version."""
    with open(TABLE, encoding='utf-8') as f:
        table = json.load(f)
    return table if table['basicsr'] == basicsr.__version__ else {'pipeline': {}, 'classes': {}}


@functools.cache
def _basicsr_words() -> dict[Section, set[str]]:
    words: dict[Section, set[str]] = {}
    for entry in basicsr_table()['classes'].values():
        for section, keys in entry['reads'].items():  # the table's sections are patterns already
            words.setdefault(_section_of(section), set()).update(keys)
    return words


def _locate(qualified: str):
    """The class that ``module.qualname`` names, or None."""
    module, _, name = qualified.rpartition('.')
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def _qualified(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


class ClassKeys:
    """What a registered class and its bases read, by section, and whether every one of them is known.

    Args:
        cls (type): The class.
        kind (str): ``'model'`` or ``'dataset'`` (where its ``self.opt`` points, :data:`CLASS_ROOTS`).
        root (Section): Where its ``self.opt`` points in this file (a dataset: ``('datasets', phase)``).
    """

    def __init__(self, cls: type, kind: str, root: Section):
        self.cls = cls
        self.reads: dict[Section, set[str]] = {}
        self.unknown: list[str] = []
        classes = basicsr_table()['classes']
        for klass in cls.__mro__:
            if klass.__module__.split('.')[0] in _READ_NOTHING:
                continue
            declared = declared_keys(klass)
            if _qualified(klass) in classes:
                reads = {_section_of(s): set(keys) for s, keys in classes[_qualified(klass)]['reads'].items()}
                reads = {root + s[len(CLASS_ROOTS[kind]) :]: keys for s, keys in reads.items()}
            elif declared is not None:
                reads = {root + s: set(keys) for s, keys in declared.items()}
            else:
                self.unknown.append(klass.__name__)
                continue
            for section, keys in reads.items():
                self.reads.setdefault(pattern(section), set()).update(keys)

    def builds(self, method: str, fallback: Callable) -> dict[str, type | None] | None:
        """The types the model's ``method`` builds (``get_optimizer``, ``setup_schedulers``); None if unknown.

        Along the MRO each class that defines ``method`` adds what it builds (the table's, or its
        ``option_builds`` with ``fallback(name)`` for the class); one that is in neither makes it unknown.
        """
        classes = basicsr_table()['classes']
        found: dict[str, type | None] = {}
        for klass in reversed(self.cls.__mro__):
            if method not in vars(klass):
                continue
            entry = classes.get(_qualified(klass), {}).get('builds', {})
            declared = declared_builds(klass, method)
            if method in entry:
                found.update((n, _locate(q) if q else fallback(n)) for n, q in entry[method].items())
            elif declared is not None:
                found.update((name, fallback(name)) for name in declared)
            else:
                return None
        return found or None


class Vocabulary:
    """The keys that an option file's model and dataset classes and the pipelines read, by section.

    Args:
        model (type): The file's model class.
        datasets (dict[str, type]): Its dataset class of each phase.
    """

    def __init__(self, model: type, datasets: dict[str, type]):
        pipeline = {_section_of(s): set(k) for s, k in basicsr_table()['pipeline'].items()}
        for section, keys in PIPELINE_KEYS.items():
            pipeline.setdefault(section, set()).update(keys)
        self.pipeline = pipeline
        self.model = ClassKeys(model, 'model', ())
        self.datasets = {
            phase: ClassKeys(cls, 'dataset', ('datasets', phase))
            for phase, cls in datasets.items()
            if inspect.isclass(cls)
        }
        self.names = ', '.join(dict.fromkeys(c.__name__ for c in [model, *datasets.values()] if inspect.isclass(c)))

    def known(self, section: Section) -> set[str]:
        """The keys read in ``section`` (a concrete one, or a pattern: then by any dataset)."""
        found = set(self.pipeline.get(pattern(section), ())) | self.model.reads.get(pattern(section), set())
        for phase, keys in self.datasets.items():
            if section[:2] in (('datasets', phase), ('datasets', '*')):
                found |= keys.reads.get(pattern(section), set())
        return found

    @staticmethod
    def basicsr_words(section: Section) -> set[str]:
        """What any of basicsr's classes reads in ``section``: words of basicsr's own, never a typo there."""
        return _basicsr_words().get(pattern(section), set())

    def unknown(self, section: Section) -> list[str]:
        """The classes that may read ``section`` and neither the table nor a declaration knows."""
        dataset = self.datasets.get(section[1]) if section[:1] == ('datasets',) and len(section) > 1 else None
        return self.model.unknown + (dataset.unknown if dataset is not None else [])

    def judge(self, opt: dict, section: Section, key: str, owned: tuple[Section, ...], fits: Callable) -> str | None:
        """None for a key read where it stands, else a warning; a key in the wrong section or a typo raises.

        Only where every class that may read the section is known: a key that the file's classes read in
        another of the ``owned`` sections belongs there (refused, unless written in its one home with the
        same value, or at the top level beside the same key of ``val:``: a warning); a typo of a key of its
        own section is refused with that key, unless the key is a word some basicsr class reads there, or
        that key is written there too and the value could not be its (``dataset: toy`` beside
        ``datasets:``). Anything else is a warning; where a class is unknown, a likely typo is a warning and
        any other key is left to the run (:mod:`.observed`).

        Args:
            opt (dict): The options (to find a key's home).
            section (Section): Where the key stands.
            key (str): The key.
            owned (tuple[Section, ...]): The sections judged by key (patterns).
            fits (callable): ``fits(section, key, value, present)``: whether ``value`` could be that of ``key``
                there, whose value is ``present``.

        Raises:
            OptionError: Without the file's name: the caller adds it.
        """
        if key in self.known(section):
            return None
        where = f'{shown(section)}{key}' if section else key
        here = section_at(opt, section) or {}
        close = misspelt(key, self.known(section))
        if key in self.basicsr_words(section) or (close in here and not fits(section, close, here[key], here[close])):
            close = None  # a word of basicsr's own there, or another option beside the one it resembles
        unknown = self.unknown(section)
        if unknown:
            if close is None:
                return None
            return (
                f'option {where} may be a typo of {close} ({", ".join(unknown)} declare no option_keys: the run '
                'names each key that nothing read).'
            )
        homes = [s for s in owned if key in self.known(s) and pattern(s) != pattern(section)]
        if homes:
            home = section_at(opt, homes[0]) if len(homes) == 1 and '*' not in homes[0] else None
            if home is not None and not section and homes[0] == ('val',) and key in home:
                return f'option {where} has no effect: val:{key} is the one read (SRFormer writes both).'
            if home is None or home.get(key, object()) != here.get(key):
                raise OptionError(
                    f'{where}: belongs under {" or ".join(shown(s) for s in homes)} ({self.names} and '
                    f'basicsr read it there; where it stands nothing does).'
                )
            return f'option {where} has no effect: a duplicate of {shown(homes[0])}{key}, which is read.'
        if close:
            raise OptionError(f'unknown option {where} (did you mean {close}?)')
        return f"option {where} has no effect: {self.names} and basicsr's pipeline do not read it there."


# ---------------------------------------------------------------- registered types and their keywords


def _registered(registry, name):
    """What ``registry`` builds for ``name`` (basicsr's ``get``: ``name``, else ``name_basicsr``), or None."""
    for key in (name, f'{name}_basicsr'):
        if isinstance(key, str) and key in registry:
            return registry.get(key)
    return None


def require_registered(registry: Registry, name: str, where: str, kind: str):
    """What ``registry`` holds for ``name``; an unregistered name is refused, naming the type and the registry."""
    found = _registered(registry, name)
    if found is None:
        close = misspelt(name, [key for key, _ in registry])
        hint = f'did you mean {close}? ' if close else ''
        raise OptionError(
            f'{where}type={name!r} is not registered with basicsr: no {kind} of that name is '
            f'registered ({hint}a class of another package is registered when that package is '
            'installed and imported, e.g. by its own train.py).'
        )
    return found


def parameters(factory: Callable, skip: tuple[str, ...] = ()) -> tuple[dict[str, inspect.Parameter], bool] | None:
    """The keyword parameters of ``factory`` (but ``self`` and ``skip``), and whether it takes ``**kwargs``.

    Returns:
        tuple | None: ``({name: parameter}, takes_more)``, or None when the signature cannot be read.
    """
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    named = {
        p.name: p
        for p in params
        if p.name not in ('self',) + tuple(skip)
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    return named, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def optimizer_class(name: str):
    """torch's optimizer class of that name, or None."""
    return getattr(torch.optim, name, None)


def scheduler_class(name: str):
    """basicsr's or torch's scheduler class of that name, or None."""
    return getattr(lr_scheduler, name, None) or getattr(torch.optim.lr_scheduler, name, None)
