"""The vocabulary of an option file, read off the registered classes: the keys they read, the keywords they take,
the optimizers and schedulers a model builds."""
from __future__ import annotations

import ast
import difflib
import functools
import importlib
import inspect
import textwrap
from collections.abc import Callable

import torch

from basicsr.models import lr_scheduler
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY, Registry

from .reading import OptionError


# ---------------------------------------------------------------- the vocabulary, read off the registered classes

#: basicsr's pipeline (train.py, test.py, data loaders, loggers, resume checks) and this package's start-up:
#: the option keys these modules read are known in every option file, beside those of the model and dataset
#: classes (and their bases) that the file names.
PIPELINE_MODULES = ('basicsr.train', 'basicsr.test', 'basicsr.data', 'basicsr.data.prefetch_dataloader',
                    'basicsr.utils.logger', 'basicsr.utils.misc', 'basicsr.utils.options',
                    'wdsr_basicsr.options.reading',
                    'wdsr_basicsr.options.vocabulary', 'wdsr_basicsr.options.check', 'wdsr_basicsr.options.parse',
                    'wdsr_basicsr.utils.dist')
_NOT_SCANNED = ('builtins', 'abc', 'typing', 'torch')


def edit_distance(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    previous, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        before, previous, row = previous, row, [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], before[j - 2] + 1)
    return row[-1]


def misspelt(key: str, known: list[str]) -> str | None:
    """The known key that ``key`` is a typo of (1 edit away, 2 for keys longer than 6), or None."""
    key = str(key)
    best = min(((edit_distance(key, str(k)), str(k)) for k in known), default=None)
    return best[1] if best and best[0] <= (1 if len(key) <= 6 else 2) else None


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.lru_cache(maxsize=None)
def _module_tree(module_name):
    """The parsed source of a loaded module, or None when it has none (compiled, generated)."""
    try:
        return ast.parse(inspect.getsource(importlib.import_module(module_name)))
    except (OSError, TypeError, SyntaxError):
        return None


@functools.lru_cache(maxsize=None)
def keys_read(module_name: str) -> frozenset[str] | None:
    """The option keys a module reads: ``x['key']``, ``x.get('key')`` / ``pop`` / ``setdefault``, ``'key' in x``.

    Args:
        module_name (str): A module (with its source on disk).

    Returns:
        frozenset[str] | None: The keys, or None when the module's source cannot be read.
    """
    tree = _module_tree(module_name)
    if tree is None:
        return None
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            key = _string(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            key = _string(node.args[0]) if node.func.attr in ('get', 'pop', 'setdefault') else None
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key = _string(node.left)
        else:
            key = None
        if key is not None:
            keys.add(key)
    return frozenset(keys)


def _modules_of(cls):
    """The modules that define ``cls`` and its bases (not Python's or torch's)."""
    return [klass.__module__ for klass in cls.__mro__ if klass.__module__.split('.')[0] not in _NOT_SCANNED]


def _registered(registry, name):
    """What ``registry`` builds for ``name`` (basicsr's ``get``: ``name``, else ``name_basicsr``), or None."""
    for key in (name, f'{name}_basicsr'):
        if isinstance(key, str) and key in registry:
            return registry.get(key)
    return None


def require_registered(registry: Registry, name: str, where: str, kind: str, opt_path: str):
    """What ``registry`` holds for ``name``; an unregistered name is refused, naming the type and the registry."""
    found = _registered(registry, name)
    if found is None:
        close = misspelt(name, [key for key, _ in registry])
        hint = f'did you mean {close}? ' if close else ''
        raise OptionError(f'{opt_path}: {where}type={name!r} is not registered with basicsr: no {kind} of that name '
                          f'is registered ({hint}a class of another package is registered when that package is '
                          'installed and imported, e.g. by its own train.py).')
    return found


def _keywords(factory, skip):
    """The keyword names ``factory`` takes, or None when it takes ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in skip and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def refuse_unknown(section: dict, known: list[str], where: str, opt_path: str, taker: str = 'it') -> None:
    """Refuse every key of ``section`` not in ``known`` (a signature: certain), with the closest or the list."""
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f' (did you mean {close[0]}?)' if close else f'; {taker} takes {", ".join(map(str, known))}'
            raise OptionError(f'{opt_path}: unknown option {where}{key}{hint}')


def check_signature(section: dict, factory: Callable, where: str, opt_path: str, skip: tuple[str, ...] = ()) -> None:
    """Refuse keywords (besides ``type``) that ``factory`` does not take (anything goes with ``**kwargs``), and a
    value that is not true or false for a keyword whose default is."""
    known = _keywords(factory, ('self', ) + tuple(skip))
    if known is not None:
        refuse_unknown(section, ['type'] + known, where, opt_path, getattr(factory, '__name__', 'it'))
    try:
        defaults = {name: p.default for name, p in inspect.signature(factory).parameters.items()}
    except (TypeError, ValueError):
        return
    for key, value in section.items():
        if isinstance(defaults.get(key), bool) and not isinstance(value, bool):
            raise OptionError(f'{opt_path}: {where}{key}={value!r} must be true or false (unquoted).')


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
    found = {}
    for klass in reversed(cls.__mro__):
        func = klass.__dict__.get(method)
        if func is None:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        except (OSError, TypeError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.ops[0], (ast.Eq, ast.In))):
                continue
            right = node.test.comparators[0]
            names = [_string(e) for e in right.elts] if isinstance(right, (ast.List, ast.Tuple, ast.Set)) else [
                _string(right)]
            if not names or None in names:
                continue
            called = (_resolve(call.func, func.__globals__) for stmt in node.body for call in ast.walk(stmt)
                      if isinstance(call, ast.Call))
            factory = next((obj for obj in called if inspect.isclass(obj)), None)
            found.update((name, factory or fallback(name)) for name in names)
    return found or None


def optimizer_class(name: str):
    return getattr(torch.optim, name, None)


def scheduler_class(name: str):
    return getattr(lr_scheduler, name, None) or getattr(torch.optim.lr_scheduler, name, None)


def _keys_of(modules):
    """The keys the ``modules`` read, and whether every one of them could be read."""
    read = [keys_read(m) for m in dict.fromkeys(modules)]
    return frozenset().union(*(r for r in read if r is not None)), None not in read


def _registered_modules():
    """The modules of every registered model and dataset class (and their bases)."""
    return [m for registry in (MODEL_REGISTRY, DATASET_REGISTRY) for _, obj in registry if inspect.isclass(obj)
            for m in _modules_of(obj)]


class Vocabulary:
    """The keys that an option file's classes and basicsr's pipeline read, and how an unknown key is judged.

    A key that the file's model or dataset classes (or the pipeline) read is
    known. One that only another registered class reads has no effect here: a
    warning. One that nothing reads and is a typo of a known key is refused;
    any other is a warning, and so is everything when some source could not be
    read (a class without source cannot be judged).
    """

    def __init__(self, classes):
        self.keys, self.judgeable = _keys_of(list(PIPELINE_MODULES) + [m for c in classes for m in _modules_of(c)])
        self.names = ', '.join(dict.fromkeys(c.__name__ for c in classes))
        self._elsewhere = None

    def check(self, section: dict, where: str, opt_path: str, warnings: list[str], skip: tuple[str, ...] = ()) -> None:
        """Judge every key of ``section`` (but ``skip``); refuse a typo, append a warning for a key without effect."""
        for key in section:
            if key in skip or key in self.keys:
                continue
            if self._elsewhere is None:
                self._elsewhere = _keys_of(_registered_modules())[0]
            close = misspelt(key, self.keys)
            if key not in self._elsewhere and close and self.judgeable:
                raise OptionError(f'{opt_path}: unknown option {where}{key} (did you mean {close}?)')
            others = ' (other registered classes do)' if key in self._elsewhere else ''
            warnings.append(f"{opt_path}: option {where}{key} has no effect: {self.names} and basicsr's pipeline do "
                            f'not read it{others}.')


# ---------------------------------------------------------------- the check


