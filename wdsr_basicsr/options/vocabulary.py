"""What an option file's classes read, section by section, and what their factories take.

The keys come from the source of the classes an option file names (its model and dataset classes, with their
bases) and of basicsr's pipeline: each ``x['key']``, ``x.get('key')``, ``'key' in x`` is recorded under the
section that ``x`` stands for. ``self.opt`` is the top level in a model class and the dataset's own section
in a dataset class; names bound from a section (``train_opt = self.opt['train']``, ``for phase, dataset_opt
in opt['datasets'].items()``) follow it; in the pipeline's functions ``opt`` and ``dataset_opt`` stand for
:data:`PIPELINE_NAMES`. A read the analysis cannot place is not counted. Sections are tuples of keys;
``'*'`` stands for any key (a dataset's phase, a metric's name).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import textwrap
from collections.abc import Callable

import torch
from basicsr.models import lr_scheduler
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY, Registry

from .errors import OptionError

#: basicsr's pipeline (train.py, test.py, data loaders, loggers, resume checks) and this package's start-up: the
#: keys their functions read are known in every option file, beside those of the classes the file names.
PIPELINE_MODULES = (
    'basicsr.train',
    'basicsr.test',
    'basicsr.models',
    'basicsr.data',
    'basicsr.data.prefetch_dataloader',
    'basicsr.utils.logger',
    'basicsr.utils.misc',
    'wdsr_basicsr.options.parse',
    'wdsr_basicsr.utils.dist',
)
#: The sections that names stand for in the pipeline's functions.
PIPELINE_NAMES = {'opt': (), 'dataset_opt': ('datasets', '*')}
#: Where ``self.opt`` of a registered class points: a model reads the whole file, a dataset its own section.
CLASS_ROOTS = {'model': (), 'dataset': ('datasets', '*')}
#: Sections whose keys are free names (datasets' phases, metrics' names): one pattern stands for them all.
NAMED_SECTIONS = (('datasets',), ('val', 'metrics'))
_NOT_SCANNED = ('builtins', 'abc', 'typing', 'torch')
_READS = ('get', 'pop', 'setdefault')

Section = tuple[str, ...]


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


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _SectionReads:
    """The keys that functions read, by section (see the module's description)."""

    def __init__(self, names: dict[str, Section]):
        self.names = names
        self.reads: dict[Section, set[str]] = {}

    def function(self, node: ast.AST, root: Section | None) -> None:
        """Record the reads of one function; ``root`` is what ``self.opt`` (and a parameter ``opt``) stand for."""
        bound = {'opt': root} if root is not None else {}
        for child in sorted(
            (n for n in ast.walk(node) if hasattr(n, 'lineno')),
            key=lambda n: (getattr(n, 'lineno'), getattr(n, 'col_offset')),
        ):
            self._bind(child, bound, root)
            key, holder = self._read(child)
            section = self._section(holder, bound, root) if key is not None else None
            if section is not None:
                self.reads.setdefault(pattern(section), set()).add(key)

    def _bind(self, node, bound, root):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            section = self._section(node.value, bound, root)
            if section is not None:
                bound[node.targets[0].id] = section
        elif (
            isinstance(node, (ast.For, ast.comprehension))
            and isinstance(node.iter, ast.Call)
            and isinstance(node.iter.func, ast.Attribute)
            and node.iter.func.attr in ('items', 'values')
        ):
            section, target = self._section(node.iter.func.value, bound, root), node.target
            if node.iter.func.attr == 'items' and isinstance(target, ast.Tuple) and len(target.elts) == 2:
                target = target.elts[1]
            if section is not None and isinstance(target, ast.Name):
                bound[target.id] = section + ('*',)

    @staticmethod
    def _read(node):
        """``(key, what it is read from)`` when ``node`` reads a key by a constant name, else ``(None, None)``."""
        if isinstance(node, ast.Subscript):
            return _string(node.slice), node.value
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _READS
            and node.args
        ):
            return _string(node.args[0]), node.func.value
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return _string(node.left), node.comparators[0]
        return None, None

    def _section(self, node, bound, root):
        """The section that the expression ``node`` stands for, or None."""
        if isinstance(node, ast.Name):
            return bound.get(node.id, self.names.get(node.id))
        if (
            isinstance(node, ast.Attribute)
            and node.attr == 'opt'
            and isinstance(node.value, ast.Name)
            and node.value.id == 'self'
        ):
            return root
        if isinstance(node, ast.BoolOp):  # opt.get('val') or {}
            return next((s for s in (self._section(v, bound, root) for v in node.values) if s is not None), None)
        key, holder = self._read(node) if not isinstance(node, ast.Compare) else (None, None)
        if key is None:
            return None
        section = self._section(holder, bound, root)
        return None if section is None else section + (key,)


@functools.lru_cache(maxsize=None)
def module_reads(module_name: str) -> dict[Section, frozenset[str]] | None:
    """The keys the functions of a pipeline module read, by section; None when its source cannot be read."""
    try:
        tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    except (OSError, TypeError, SyntaxError):
        return None
    reads = _SectionReads(PIPELINE_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            reads.function(node, None)
    return {section: frozenset(keys) for section, keys in reads.reads.items()}


def class_reads(cls: type, root: Section) -> dict[Section, frozenset[str]] | None:
    """The keys the methods of ``cls`` and its bases read, by section; None when a source cannot be read."""
    if (cls, root) not in _CLASS_READS:
        _CLASS_READS[cls, root] = _class_reads(cls, root)
    return _CLASS_READS[cls, root]


_CLASS_READS: dict[tuple[type, Section], dict[Section, frozenset[str]] | None] = {}


def _class_reads(cls, root):
    reads = _SectionReads({})
    for klass in cls.__mro__:
        if klass.__module__.split('.')[0] in _NOT_SCANNED:
            continue
        for function in vars(klass).values():
            function = getattr(function, '__func__', function)  # static and class methods
            if not inspect.isfunction(function):
                continue
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
            except (OSError, TypeError, SyntaxError):
                return None
            reads.function(tree.body[0], root)
    return {section: frozenset(keys) for section, keys in reads.reads.items()}


def _merge(readings):
    merged: dict[Section, set[str]] = {}
    for reading in readings:
        for section, keys in (reading or {}).items():
            merged.setdefault(section, set()).update(keys)
    return merged


class Vocabulary:
    """The keys that an option file's model and dataset classes and basicsr's pipeline read, by section.

    Args:
        model (type): The file's model class.
        datasets (list[type]): Its dataset classes.
    """

    def __init__(self, model: type, datasets: list[type]):
        readings = [module_reads(m) for m in PIPELINE_MODULES] + [class_reads(model, CLASS_ROOTS['model'])]
        readings += [class_reads(d, CLASS_ROOTS['dataset']) for d in datasets if inspect.isclass(d)]
        self.reads = _merge(readings)
        self.judgeable = None not in readings
        self.names = ', '.join(dict.fromkeys(c.__name__ for c in [model] + datasets if inspect.isclass(c)))
        self._others = None

    def known(self, section: Section) -> set[str]:
        """The keys read in ``section``."""
        return self.reads.get(pattern(section), set())

    def judge(self, opt: dict, section: Section, key: str, owned: tuple[Section, ...]) -> str | None:
        """None for a key read where it stands, else a warning; a key in the wrong section or a typo raises.

        A key that the file's classes read in another of the ``owned`` sections belongs there: refused,
        unless some registered class reads it where it stands, or it is written in its (one) home with the
        same value (a duplicate, as BasicSR's TOF test file has). A typo of a key of its own section is
        refused, unless some registered class reads it. Anything else is a warning.

        Args:
            opt (dict): The options (to find a key's home).
            section (Section): Where the key stands.
            key (str): The key.
            owned (tuple[Section, ...]): The sections judged by key.

        Raises:
            OptionError: Without the file's name: the caller adds it.
        """
        if key in self.known(section):
            return None
        where = f'{shown(section)}{key}' if section else key
        others = key in self._other_reads().get(pattern(section), ())
        homes = [s for s in owned if key in self.known(s) and pattern(s) != pattern(section)]
        if homes and self.judgeable and not others:
            home = _section(opt, homes[0]) if len(homes) == 1 and '*' not in homes[0] else None
            if home is None or home.get(key, object()) != _section(opt, section).get(key):
                raise OptionError(
                    f'{where}: belongs under {" or ".join(shown(s) for s in homes)} ({self.names} and '
                    f'basicsr read it there; where it stands nothing does).'
                )
            return f'option {where} has no effect: a duplicate of {shown(homes[0])}{key}, which is read.'
        close = misspelt(key, self.known(section))
        if close and self.judgeable and not others:
            raise OptionError(f'unknown option {where} (did you mean {close}?)')
        also = ' (other registered classes do)' if others else ''
        return f"option {where} has no effect: {self.names} and basicsr's pipeline do not read it there{also}."

    def _other_reads(self):
        """What every registered model and dataset class reads, by section (read once, when needed)."""
        if self._others is None:
            self._others = _merge(
                class_reads(c, CLASS_ROOTS[kind])
                for kind, registry in (('model', MODEL_REGISTRY), ('dataset', DATASET_REGISTRY))
                for _, c in registry
                if inspect.isclass(c)
            )
        return self._others


def _section(opt, section):
    """The mapping at ``section`` of ``opt`` (an empty one where there is none)."""
    for key in section:
        opt = opt.get(key) if isinstance(opt, dict) else None
    return opt if isinstance(opt, dict) else {}


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


def _resolve(node, namespace):
    """The object a dotted name (``torch.optim.Adam``) stands for in ``namespace``, or None."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in namespace:
        return None
    obj = namespace[node.id]
    for name in reversed(names):
        obj = getattr(obj, name, None)
    return obj


def built_types(cls: type, method: str, fallback: Callable) -> dict[str, type | None] | None:
    """The types a model's ``get_optimizer`` / ``setup_schedulers`` builds, read from its ``if`` branches.

    A branch ``if x == 'A':`` or ``if x in ('A', 'B'):`` builds the first class
    called in its body (``torch.optim.Adam(...)``,
    ``lr_scheduler.MultiStepRestartLR(...)``), else ``fallback(name)``.
    Definitions along the MRO are merged, the most derived winning.

    Args:
        cls (type): The model class.
        method (str): The method's name.
        fallback (callable): ``name -> class or None`` for branches that call no class by name.

    Returns:
        dict[str, type | None] | None: Type name to class; None when no branch could be read.
    """
    found: dict[str, type | None] = {}
    for klass in reversed(cls.__mro__):
        func = klass.__dict__.get(method)
        if func is None:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.If)
                and isinstance(node.test, ast.Compare)
                and isinstance(node.test.ops[0], (ast.Eq, ast.In))
            ):
                continue
            right = node.test.comparators[0]
            names = (
                [_string(e) for e in right.elts]
                if isinstance(right, (ast.List, ast.Tuple, ast.Set))
                else [_string(right)]
            )
            if not names or None in names:
                continue
            called = (
                _resolve(call.func, func.__globals__)
                for stmt in node.body
                for call in ast.walk(stmt)
                if isinstance(call, ast.Call)
            )
            factory = next((obj for obj in called if inspect.isclass(obj)), None)
            found.update((name, factory or fallback(name)) for name in names)
    return found or None


def optimizer_class(name: str):
    """torch's optimizer class of that name, or None."""
    return getattr(torch.optim, name, None)


def scheduler_class(name: str):
    """basicsr's or torch's scheduler class of that name, or None."""
    return getattr(lr_scheduler, name, None) or getattr(torch.optim.lr_scheduler, name, None)
