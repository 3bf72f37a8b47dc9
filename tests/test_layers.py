"""The package's layers: no module imports one of a higher layer, no import cycle, no import inside a function."""

import ast
import sys

from helpers import REPO

PACKAGE = REPO / 'wdsr_basicsr'

#: Layer of each module (by its dotted name under the package, or of the subpackage it is in): a module may
#: import modules of its own layer or below. compat is the package's first import (it patches basicsr with
#: options, data and resume), so it sits with the entries.
LAYERS = {
    'archs': 0,
    'data': 0,
    'declare': 0,
    'files': 0,
    'utils': 1,
    'options': 2,
    'models': 2,
    'loading': 2,
    'backends': 2,
    'outputs': 2,
    'prepare': 2,
    'runs': 3,
    'inference': 3,
    'export': 3,
    'convert': 3,
    'spandrel_support': 3,
    'benchmark': 3,
    'compare': 3,
    'cache': 3,
    'reproduce': 3,
    'train': 3,
    'test': 3,
    'compat': 3,
    '__init__': 4,
}


def module_name(path):
    return '.'.join(path.relative_to(PACKAGE).with_suffix('').parts)


def layer(name):
    return LAYERS[name.split('.')[0]]


def package_imports(path):
    """(line, imported module under the package, at top level?) of every import of ``path``."""
    name = module_name(path)
    package = name.split('.')[:-1] if path.name != '__init__.py' else name.split('.')[:-1]
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                prefix = '.'.join(base + ([node.module] if node.module else []))
            elif node.module == 'wdsr_basicsr' or (node.module or '').startswith('wdsr_basicsr.'):
                prefix = node.module[len('wdsr_basicsr.') :] if node.module != 'wdsr_basicsr' else ''
            else:
                continue
            for alias in node.names:
                candidate = f'{prefix}.{alias.name}' if prefix else alias.name
                targets.append(
                    candidate
                    if (PACKAGE / (candidate.replace('.', '/') + '.py')).exists()
                    or (PACKAGE / candidate.replace('.', '/')).is_dir()
                    else prefix
                )
        elif isinstance(node, ast.Import):
            targets = [a.name[len('wdsr_basicsr.') :] for a in node.names if a.name.startswith('wdsr_basicsr.')]
        found += [(node.lineno, t, id(node) in top) for t in targets if t]
    return found


def modules():
    return sorted(p for p in PACKAGE.rglob('*.py'))


def test_every_module_has_a_layer():
    assert sorted({module_name(p).split('.')[0] for p in modules()} - set(LAYERS)) == []


def test_no_module_imports_a_higher_layer_or_inside_a_function():
    faults = []
    for path in modules():
        name = module_name(path)
        for line, target, at_top in package_imports(path):
            if not at_top:
                faults.append(f'{name}:{line} imports {target} inside a function')
            elif layer(target) > layer(name):
                faults.append(f'{name}:{line} (layer {layer(name)}) imports {target} (layer {layer(target)})')
    assert faults == []


#: The top-level modules installed beside the package: the start-up hook and the shim it shares with compat.
BESIDE = ('wdsr_basicsr_startup', 'wdsr_basicsr_shim')


def beside_imports(path, top_only=False):
    """The modules of :data:`BESIDE` that ``path`` imports, and the package (as ``__init__``) when ``path`` is one
    of them: anywhere in it (a function's import is an edge too), or at its top level only."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body if top_only else ast.walk(tree):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        found |= {n for n in names if n in BESIDE}
        if path.stem in BESIDE:
            found |= {'__init__' for n in names if n.split('.')[0] == 'wdsr_basicsr'}
    return found


def test_the_start_up_modules_import_the_standard_library_only():
    """site.py imports them: nothing heavy. (The hook imports the package when basicsr is imported: its job.)"""
    for name in BESIDE:
        imported = set()
        for node in ast.parse((REPO / f'{name}.py').read_text()).body:
            if isinstance(node, ast.Import):
                imported |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split('.')[0])
        assert imported - set(sys.stdlib_module_names) - set(BESIDE) == set(), name


def test_no_import_cycle():
    """None in the package, through an ``__init__`` or through the start-up modules beside it."""
    graph = {module_name(p): {t for _, t, _ in package_imports(p)} | beside_imports(p) for p in modules()}
    graph.update({name: beside_imports(REPO / f'{name}.py') for name in BESIDE})
    known = set(graph)

    def resolve(target):  # a package import means its __init__
        return target if target in known else f'{target}.__init__' if f'{target}.__init__' in known else None

    graph = {name: {resolve(t) for t in targets} - {None, name} for name, targets in graph.items()}
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = 'open'
        for target in graph[name]:
            if state.get(target) == 'open':
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[name] = 'done'

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_a_violation(tmp_path, monkeypatch):
    """The layer check finds an upward import and a function-local one (so a pass above means something)."""
    fake = tmp_path / 'wdsr_basicsr'
    (fake / 'utils').mkdir(parents=True)
    (fake / 'options').mkdir()
    (fake / 'options' / '__init__.py').write_text('')
    (fake / 'utils' / 'bad.py').write_text(
        'from ..options import load_options\n\n\ndef f():\n    from .. import runs\n'
    )
    (fake / 'runs.py').write_text('')
    monkeypatch.setattr(__import__(__name__), 'PACKAGE', fake)
    imports = package_imports(fake / 'utils' / 'bad.py')
    assert imports == [(1, 'options', True), (5, 'runs', False)]
    assert layer('options') > layer('utils.bad')


#: The entries: they speak on the console. Elsewhere only a function named main may print (a module's CLI).
ENTRY_MODULES = (
    'train',
    'test',
    'inference',
    'export',
    'convert',
    'compare',
    'cache',
    'reproduce',
    'benchmark.cli',
    'benchmark.gpu_check',
    'benchmark.training',
)


def prints_outside_entries(package):
    """``module:line`` of each ``print(`` of the library (outside the entries and ``main`` functions)."""
    found = []
    for path in sorted(package.rglob('*.py')):
        name = '.'.join(path.relative_to(package).with_suffix('').parts)
        if name in ENTRY_MODULES:
            continue

        def visit(node, function, name=name):
            for child in ast.iter_child_nodes(node):
                inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
                if (
                    isinstance(child, ast.Call)
                    and isinstance(child.func, ast.Name)
                    and child.func.id == 'print'
                    and function != 'main'
                ):
                    found.append(f'{name}:{child.lineno}')
                visit(child, inner, name)

        visit(ast.parse(path.read_text()), None)
    return found


def test_the_library_never_prints(tmp_path):
    """Library functions log (wdsr_basicsr/utils/messages.py) or raise; the entries print."""
    assert prints_outside_entries(PACKAGE) == []
    (tmp_path / 'utils').mkdir()
    (tmp_path / 'utils' / 'x.py').write_text('def f():\n    print(1)\n\n\ndef main():\n    print(2)\n')
    assert prints_outside_entries(tmp_path) == ['utils.x:2']  # the check sees one
