"""What basicsr 1.4.2's source reads, section by section: how the committed table of the option check is made.

Development only: nothing imports this module at run time. ``scripts/basicsr_option_table.py`` writes the
table (:data:`wdsr_basicsr.options.vocabulary.TABLE`) and a test regenerates it and compares, so the table
stays what basicsr's source says while the check reads plain data.

Each ``x['key']`` (a load, not a store), ``x.get('key')``, ``'key' in x`` is recorded under the section that
``x`` stands for. ``self.opt`` is the top level in a model class and the dataset's own section in a dataset
class; names bound from a section (``train_opt = self.opt['train']``, ``for phase, dataset_opt in
opt['datasets'].items()``) follow it; in the pipeline's functions ``opt`` and ``dataset_opt`` stand for
:data:`PIPELINE_NAMES`. A read the analysis cannot place is not counted. ``'*'`` stands for any key (a
dataset's phase, a metric's name).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import basicsr
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY

from .vocabulary import CLASS_ROOTS, Section, optimizer_class, pattern, scheduler_class, section_name

#: basicsr's pipeline (train.py, test.py, data loaders, loggers, resume checks; the builders of networks, losses
#: and metrics read only ``type`` of the section they build, which the check judges by signatures).
PIPELINE_MODULES = (
    'basicsr.train',
    'basicsr.test',
    'basicsr.data',
    'basicsr.data.prefetch_dataloader',
    'basicsr.models',
    'basicsr.utils.logger',
    'basicsr.utils.misc',
)
#: The sections that names stand for in the pipeline's functions.
PIPELINE_NAMES = {'opt': (), 'dataset_opt': ('datasets', '*')}
#: The methods whose ``if type == 'Name':`` branches say which types a model builds, and who builds a name.
BUILDERS = {'get_optimizer': optimizer_class, 'setup_schedulers': scheduler_class}
_READS = ('get', 'pop', 'setdefault')


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
        placed: list[ast.expr | ast.stmt] = [n for n in ast.walk(node) if isinstance(n, (ast.expr, ast.stmt))]
        for child in sorted(placed, key=lambda n: (n.lineno, n.col_offset)):
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
        if isinstance(node, ast.Subscript):  # a load: a store (`opt['rank'] = ...`) or a del is no read
            return (_string(node.slice), node.value) if isinstance(node.ctx, ast.Load) else (None, None)
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


def module_reads(module_name: str) -> dict[Section, set[str]]:
    """The keys the functions of a module read, by section."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    reads = _SectionReads(PIPELINE_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            reads.function(node, None)
    return reads.reads


def own_reads(cls: type, root: Section) -> dict[Section, set[str]]:
    """The keys that the methods ``cls`` itself defines read, by section (``self.opt`` is ``root``).

    The class is read from its source file, so a method that anyone has patched since counts as written.
    """
    reads = _SectionReads({})
    for function in _methods(cls).values():
        reads.function(function, root)
    return reads.reads


def _methods(cls: type) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The methods that the source of ``cls`` defines, by name."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    return {n.name: n for n in body.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def own_builds(cls: type, method: str) -> dict[str, str | None]:
    """The type names that ``cls``'s own ``method`` builds (``if x == 'A':`` branches), with the class built.

    A branch builds the first class called in its body (``torch.optim.Adam(...)``), else what
    :data:`BUILDERS` finds for the name; the class is named ``module.qualname`` (None: none found).
    """
    function = _methods(cls).get(method)
    if function is None:
        return {}
    namespace = vars(importlib.import_module(cls.__module__))
    found = {}
    for node in ast.walk(function):
        if not (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.ops[0], (ast.Eq, ast.In))
        ):
            continue
        right = node.test.comparators[0]
        names = (
            [_string(e) for e in right.elts] if isinstance(right, (ast.List, ast.Tuple, ast.Set)) else [_string(right)]
        )
        if not names or None in names:
            continue
        called = (
            _resolve(call.func, namespace)
            for stmt in node.body
            for call in ast.walk(stmt)
            if isinstance(call, ast.Call)
        )
        factory = next((obj for obj in called if inspect.isclass(obj)), None)
        for name in names:
            built = factory or BUILDERS[method](name)
            found[name] = f'{built.__module__}.{built.__qualname__}' if built is not None else None
    return found


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


def _keys(reads):
    return {section_name(section): sorted(keys) for section, keys in sorted(reads.items())}


def basicsr_table() -> dict:
    """What basicsr's pipeline and its registered model and dataset classes (with their bases) read.

    Returns:
        dict: ``{'basicsr': version, 'pipeline': {section: keys}, 'classes': {'module.qualname': {'kind':
        'model' | 'dataset', 'reads': {section: keys}, 'builds': {method: {name: class}}}}}``, sections
        named as in ``option_keys`` (``'train'``, ``'datasets:*'``), every list sorted.
    """
    pipeline: dict[Section, set[str]] = {}
    for module in PIPELINE_MODULES:
        for section, keys in module_reads(module).items():
            pipeline.setdefault(section, set()).update(keys)
    classes = {}
    for kind, registry in (('model', MODEL_REGISTRY), ('dataset', DATASET_REGISTRY)):
        for _, registered in registry:
            for cls in registered.__mro__:
                if not cls.__module__.startswith('basicsr.'):
                    continue
                builds = {m: own_builds(cls, m) for m in BUILDERS if kind == 'model' and m in _methods(cls)}
                classes[f'{cls.__module__}.{cls.__qualname__}'] = {
                    'kind': kind,
                    'reads': _keys(own_reads(cls, CLASS_ROOTS[kind])),
                    'builds': builds,
                }
    return {'basicsr': basicsr.__version__, 'pipeline': _keys(pipeline), 'classes': dict(sorted(classes.items()))}
