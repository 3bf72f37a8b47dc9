"""The commands that README.md and docs/*.md show, as words a test can run."""

import ast
import glob
import itertools
import re
import shlex
import sys
from pathlib import Path

from helpers import REPO

DOCS = ('README.md', *sorted(str(p.relative_to(REPO)) for p in (REPO / 'docs').rglob('*.md')))
BIN = Path(sys.executable).parent


def doc_commands():
    """Every command of the docs' ``bash`` blocks: ``(doc, line, text)``, continuation lines joined."""
    found = []
    for doc in DOCS:
        block, pending, start = None, '', 0
        for number, line in enumerate((REPO / doc).read_text().splitlines(), 1):
            if line.startswith('```'):
                block = None if block is not None else line[3:].strip()
                continue
            if block != 'bash' or not (pending or line.strip()) or (not pending and line.lstrip().startswith('#')):
                continue
            start = start if pending else number
            text = line.split('  # ')[0].rstrip()  # a comment after the command
            if text.endswith('\\'):
                pending += text[:-1] + ' '
                continue
            found.append((doc, start, ' '.join((pending + text).split())))
            pending = ''
    return found


def matches(doc, snippet, commands):
    """The commands of ``doc`` that ``snippet`` names: the one it equals, else those that hold it."""
    texts = [text for d, _, text in commands if d == doc and snippet in text]
    return [snippet] if snippet in texts else texts


def documented(doc, snippet):
    """The one command of ``doc`` that ``snippet`` names (:func:`matches`), as its text; tests ask by these two
    strings, literally or through ``pytest.mark.parametrize``, and ``test_docs`` counts what they ask for."""
    found = matches(doc, snippet, doc_commands())
    assert len(found) == 1, f'{doc}: {len(found)} commands hold {snippet!r}'
    return found[0]


def claims(path):
    """The ``(doc, snippet)`` pairs that the test file ``path`` passes to :func:`documented`: literal arguments,
    and names given by the ``parametrize`` decorators of the calling test."""
    found = set()
    for function in ast.walk(ast.parse(Path(path).read_text())):
        calls = [
            call
            for call in ast.walk(function)
            if isinstance(call, ast.Call) and getattr(call.func, 'id', None) == 'documented'
        ]
        if not isinstance(function, ast.FunctionDef) or not calls:
            continue
        rows = [{}]
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, 'attr', None) == 'parametrize':
                names = [n.strip() for n in ast.literal_eval(decorator.args[0]).split(',')]
                values = ast.literal_eval(decorator.args[1])
                table = [dict(zip(names, v if len(names) > 1 else (v,))) for v in values]
                rows = [dict(row, **extra) for row in rows for extra in table]
        for call in calls:
            for row in rows:
                args = tuple(
                    a.value if isinstance(a, ast.Constant) else row.get(getattr(a, 'id', None)) for a in call.args
                )
                assert None not in args, f'{path}:{call.lineno}: documented() of names no parametrize gives'
                found.add(args)
    return found


def words(text, optional=False, **placeholders):
    """``text`` as argv: ``[...]`` groups dropped (``optional``: kept, each ``a|b`` its first choice), braces and
    the repository's globs expanded, ``placeholders`` (``CKPT``, ``$NODE_RANK``) replaced, the venv's programs
    and the repository's files by their paths here."""
    for name, value in placeholders.items():
        text = re.sub(rf'(?<![\w$]){re.escape(name)}(?!\w)', value, text)
    if optional:
        text = re.sub(r'\[([^\]]*)\]', lambda m: m.group(1).split(' | ')[0], text)
        text = re.sub(r'(\S+?)\|\S+', r'\1', text)  # auto|png|jpg: auto
        text = re.sub(r'(^| )(-\w)/--[\w-]+', r'\1\2', text)  # -t/--tile: -t
    else:
        text = re.sub(r' ?\[[^\]]*\]', '', text)
    argv = []
    for word in shlex.split(text):
        for expanded in _braces(word):
            argv += _resolved(expanded)
    return argv


def _braces(word):
    """``a{1,3}b`` as ``a1b``, ``a3b``, as bash expands it."""
    parts = re.split(r'\{([^{}]*,[^{}]*)\}', word)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]


def _resolved(word):
    """A word as a path here: the venv's programs, the repository's files (globs expanded), else as written."""
    if word in ('python', '.venv/bin/python'):
        return [sys.executable]
    if word.startswith('.venv/bin/'):
        return [str(BIN / word[len('.venv/bin/') :])]
    if word == 'torchrun':
        return [sys.executable, '-m', 'torch.distributed.run']
    if word.split('/')[0] in ('options', 'scripts', 'wdsr_basicsr') and '=' not in word:
        paths = sorted(glob.glob(str(REPO / word)))
        assert paths, f'{word}: no such file in the repository'
        return paths
    return [word]
