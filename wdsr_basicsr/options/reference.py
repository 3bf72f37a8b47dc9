"""The option reference (Markdown) and the JSON schema of option files, made from what the code declares.

Every key that ``WDSRModel``, ``CheckedPairedImageDataset`` and basicsr's pipeline read (:mod:`.vocabulary`),
with its rule (a class's declaration, else basicsr's table :mod:`.rules`), its meaning (the rule's ``doc``, else
:data:`.meanings.MEANINGS`) and, for the networks, their keywords (signature, declared rules, docstring). Both
files are written by ``python scripts/make_reference.py`` and compared with these functions by the tests, so
neither can drift from the code. The schema is what YAML-aware editors read (the shipped option files name it in a
``# yaml-language-server: $schema=...`` line) to complete keys and flag a misspelt one.
"""

from __future__ import annotations

import inspect
import re
from typing import NamedTuple

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from ..declare import Rule, Section, inherited_rules
from ..utils.dist import DIST_PARAMS
from .check import REQUIRED
from .meanings import MEANINGS, SET_BY_ENTRY
from .rules import RULES
from .values import pattern_rule, signature_rule
from .vocabulary import Vocabulary, parameters, section_name

#: The model and dataset whose keys are documented, and the networks whose keywords are.
MODEL = 'WDSRModel'
DATASET = 'CheckedPairedImageDataset'
NETWORKS = ('WDSR_A', 'WDSR_B', 'RDN', 'EDSR')
#: The sections documented, in order, with their titles; ``*`` is any name (a dataset's phase, a metric's).
SECTIONS: tuple[tuple[Section, str], ...] = (
    ((), 'Top level'),
    (('datasets', '*'), 'datasets:<phase>'),
    (('train',), 'train'),
    (('val',), 'val'),
    (('val', 'metrics', '*'), 'val:metrics:<name>'),
    (('logger',), 'logger'),
    (('logger', 'wandb'), 'logger:wandb'),
    (('path',), 'path'),
    (('dist_params',), 'dist_params'),
)
#: Keys that stand for a family (basicsr's table): a section a file may hold under any matching name.
PATTERN_KEYS: dict[Section, tuple[str, ...]] = {
    (): ('network_*',),
    ('train',): ('optim_*', '*_opt'),
    ('path',): ('strict_load_*', 'pretrain_network_*', 'param_key_*'),
}
#: Where an option file's schema is (package data), relative to the package.
SCHEMA_FILE = 'options/options.schema.json'


class Option(NamedTuple):
    """One documented key: its section (``train``, ``datasets:*``), key, rule (None: any value), default
    (:data:`inspect.Parameter.empty`: none) and meaning."""

    section: str
    key: str
    rule: Rule | None
    default: object
    meaning: str


def section_options(section: Section) -> list[Option]:
    """The keys of ``section`` that the documented model, dataset and pipeline read (not those the entries set).

    Raises:
        LookupError: If a key has no meaning (no rule ``doc`` and no :data:`~.meanings.MEANINGS` entry).
    """
    model, dataset = MODEL_REGISTRY.get(MODEL), DATASET_REGISTRY.get(DATASET)
    where = section_name(section)
    if section == ('dist_params',):
        keys = set(DIST_PARAMS)
    else:
        keys = Vocabulary(model, {'*': dataset}).known(section)
        keys |= {key for (s, key), _ in RULES.items() if s == section and not any(c in key for c in '*?[')}
    declared = inherited_rules(dataset).get((), {}) if section == ('datasets', '*') else {}
    declared = {**inherited_rules(model).get(section, {}), **declared}
    found = []
    for key in sorted(keys - {k for s, k in SET_BY_ENTRY if s == where}):
        rule = DIST_PARAMS[key] if section == ('dist_params',) else declared.get(key) or pattern_rule(section, key)
        meaning = (rule.doc if rule is not None else '') or MEANINGS.get((where, key))
        if not meaning:
            raise LookupError(f'option {where}:{key} has no meaning: give its rule a doc or add it to MEANINGS.')
        found.append(Option(where, key, rule, inspect.Parameter.empty, meaning))
    return found


def network_options(network: str) -> list[Option]:
    """The keywords of a registered network: rule (declared, else by signature), default and docstring meaning.

    Raises:
        LookupError: If a keyword is not described in the class's docstring ``Args``.
    """
    cls = ARCH_REGISTRY.get(network)
    params, _ = parameters(cls) or ({}, False)
    declared = inherited_rules(cls).get((), {})
    described = docstring_args(cls.__doc__ or '')
    found = [Option(f'network_g ({network})', 'type', Rule('str', words=(network,)), network, 'The network.')]
    for key, param in params.items():
        if key not in described:
            raise LookupError(f'{cls.__name__}.{key} is not described in its docstring (Args).')
        rule = declared.get(key) or signature_rule(param)
        found.append(Option(f'network_g ({network})', key, rule, param.default, described[key]))
    return found


def docstring_args(doc: str) -> dict[str, str]:
    """The description of each argument in a Google-style docstring's ``Args:``, joined on one line, without its
    ``Default: ...`` sentence (the signature says the default) and with reST literals made Markdown's."""
    lines = inspect.cleandoc(doc).splitlines()
    if 'Args:' not in [line.strip() for line in lines]:
        return {}
    start = [line.strip() for line in lines].index('Args:') + 1
    found: dict[str, str] = {}
    current = None
    for line in lines[start:]:
        if not line.strip() or not line.startswith(' '):
            break
        match = re.match(r'^ {4}(\w+) \(([^)]*)\):\s*(.*)$', line)
        if match:
            current = match.group(1)
            found[current] = match.group(3)
        elif current is not None:
            found[current] += ' ' + line.strip()
    cleaned = {}
    for key, text in found.items():
        text = re.sub(r'\s*Default:.*$', '', text).replace('``', '`')
        cleaned[key] = re.sub(r':\w+:`~?\.?([\w.]+)`', r'`\1`', text).strip()
    return cleaned


def describe_rule(rule: Rule | None) -> tuple[str, str]:
    """A rule as the reference shows it: its type, and its values or range."""
    if rule is None:
        return 'any', ''
    kind = {'count': 'number', 'typed': 'section with type', 'section': 'section'}.get(rule.kind, rule.kind)
    if rule.kind == 'list':
        item = describe_rule(rule.item)[0] if rule.item else 'any'
        kind = f'list of {item}' + (f' ({rule.length} values)' if rule.length else '')
    values = []
    if rule.kind == 'str' and rule.words:
        values.append(', '.join(rule.words))
    elif rule.words:
        values.append('or ' + ', '.join(rule.words))
    if rule.low is not None or rule.high is not None:
        low = '' if rule.low is None else ('(' if rule.low_open else '[') + _number(rule.low)
        high = '' if rule.high is None else _number(rule.high) + (')' if rule.high_open else ']')
        values.insert(0, f'{low or "(-inf"}, {high or "inf)"}')
    if rule.null:
        values.append('or null')
    return kind, ' '.join(values)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _default(option: Option) -> str:
    if option.default is not inspect.Parameter.empty:
        return f'`{option.default!r}`' if not isinstance(option.default, float) else f'`{option.default:g}`'
    return '`false`' if option.rule is not None and option.rule.kind == 'bool' else ''


def _table(options: list[Option]) -> list[str]:
    rows = ['| key | type | values | default | meaning |', '|---|---|---|---|---|']
    for option in options:
        kind, values = describe_rule(option.rule)
        cells = [f'`{option.key}`', kind, values, _default(option), option.meaning.replace('|', '\\|')]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return rows


def reference() -> str:
    """The option reference, as ``docs/reference/options.md`` holds it."""
    lines = [
        '# Option reference',
        '',
        '<!-- Made by `python scripts/make_reference.py` from the declarations; do not edit by hand. -->',
        '',
        f"Every key that `{MODEL}`, `{DATASET}` and basicsr's pipeline read, and the keywords of the networks.",
        'Values are judged by these rules before any work (`values`: the accepted words, or the range, both ends',
        'included unless the bracket is round); a misspelt key is refused with the key it stands for. A section',
        'built by `type` (an optimizer, a scheduler, a loss, a metric) takes the keywords of that class or',
        f'function. Editors that read JSON schemas complete and check option files with `wdsr_basicsr/{SCHEMA_FILE}`',
        '(see [the option check](../explanations/option-check.md)).',
    ]
    for section, title in SECTIONS:
        lines += ['', f'## {title}', '']
        lines += _table(section_options(section))
        for key in PATTERN_KEYS.get(section, ()):
            lines.append(f'\nAny `{key}` key: {describe_rule(pattern_rule(section, key))[0]}.')
    lines += ['', '## Set by the entries', '', 'Written by the entries before the run (a value in a file is replaced):']
    lines.append('')
    lines += [f'- `{s + ":" if s else ""}{k}`: {what}' for (s, k), what in SET_BY_ENTRY.items()]
    lines += ['', '## network_g', '']
    for network in NETWORKS:
        lines += [f'### {network}', '']
        lines += _table(network_options(network)) + ['']
    return '\n'.join(lines).rstrip('\n') + '\n'


def rule_schema(rule: Rule | None, meaning: str = '') -> dict:
    """The JSON schema of one value by its rule (an integral float is an integer, as JSON Schema counts)."""
    schema: dict = {}
    if rule is not None:
        base = _kind_schema(rule)
        if rule.words and rule.kind != 'str':
            base = {'anyOf': [base, {'enum': list(rule.words)}]}
        if rule.null or rule.kind == 'bool':
            base = {'anyOf': [base, {'type': 'null'}]}
        schema.update(base)
    if meaning:
        schema['description'] = meaning
    return schema


def _kind_schema(rule: Rule) -> dict:
    if rule.kind in ('section', 'typed'):
        return {'type': 'object', **({'required': ['type']} if rule.kind == 'typed' else {})}
    if rule.kind == 'list':
        schema: dict = {'type': 'array'}
        if rule.item is not None:
            schema['items'] = rule_schema(rule.item)
        if isinstance(rule.length, int):
            schema.update(minItems=rule.length, maxItems=rule.length)
        return schema
    if rule.kind in ('bool', 'str'):
        if rule.kind == 'str' and rule.words:
            return {'enum': list(rule.words)}
        return {'type': 'boolean' if rule.kind == 'bool' else 'string'}
    schema = {'type': 'integer' if rule.kind == 'int' else 'number'}
    if rule.low is not None:
        schema['exclusiveMinimum' if rule.low_open else 'minimum'] = rule.low
    if rule.high is not None:
        schema['exclusiveMaximum' if rule.high_open else 'maximum'] = rule.high
    return schema


def _object(options: list[Option], section: Section, extra: dict | None = None) -> dict:
    properties = {o.key: rule_schema(o.rule, o.meaning) for o in options}
    properties.update(extra or {})
    patterns = {
        '^' + re.escape(key).replace(r'\*', '.*') + '$': rule_schema(pattern_rule(section, key))
        for key in PATTERN_KEYS.get(section, ())
    }
    schema: dict = {'type': 'object', 'properties': properties, 'additionalProperties': False}
    if patterns:
        schema['patternProperties'] = patterns
    return schema


def schema() -> dict:
    """The JSON schema (draft 7) of an option file of ``WDSRModel``: what editors complete and check."""
    by_section = {section: section_options(section) for section, _ in SECTIONS}
    networks = [
        {
            'if': {'properties': {'type': {'const': network}}, 'required': ['type']},
            'then': _object(network_options(network), ()),
        }
        for network in NETWORKS
    ]
    network = {'type': 'object', 'required': ['type'], 'allOf': networks}
    metric = _object(by_section[('val', 'metrics', '*')], ('val', 'metrics', '*'))
    metric.update(required=['type'], additionalProperties=True)  # the metric function's keywords
    val = _object(by_section[('val',)], ('val',))
    val['properties']['metrics'] = {'anyOf': [{'type': 'object', 'additionalProperties': metric}, {'type': 'null'}]}
    logger = _object(by_section[('logger',)], ('logger',))
    logger['properties']['wandb'] = {
        'anyOf': [_object(by_section[('logger', 'wandb')], ('logger', 'wandb')), {'type': 'null'}]
    }
    top = _object(by_section[()], ())
    top['patternProperties'] = {'^network_.*$': network}
    top['properties'].update(
        datasets={'type': 'object', 'additionalProperties': _object(by_section[('datasets', '*')], ('datasets', '*'))},
        train=_object(by_section[('train',)], ('train',)),
        val={'anyOf': [val, {'type': 'null'}]},
        logger=logger,
        path=_object(by_section[('path',)], ('path',)),
        dist_params={'anyOf': [_object(by_section[('dist_params',)], ('dist_params',)), {'type': 'null'}]},
    )
    top['properties']['network_g'] = network
    return {
        '$schema': 'http://json-schema.org/draft-07/schema#',
        'title': f'wdsr-basicsr option file ({MODEL})',
        'description': 'Made by scripts/make_reference.py from the declarations; see docs/reference/options.md.',
        **top,
        'required': [key for section, key in REQUIRED if section == ()],
    }
