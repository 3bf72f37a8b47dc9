"""What each value of an option file must be: its rule (basicsr's table, a class's declaration, a signature).

:func:`~wdsr_basicsr.declare.checked` judges one value by one :class:`~wdsr_basicsr.declare.Rule` (an integral
number made an int); :func:`check_values` applies rules to every key they name, ``'*'`` and shell patterns
matching; a keyword of a built factory without a rule of its own is judged by its default's or annotation's type
(:func:`signature_rule`).
"""

from __future__ import annotations

import fnmatch
import inspect
import math

from ..declare import OptionError, Rule, Section, checked, inherited_rules, name
from .rules import RULES


def check_finite(value, where):
    """Refuse a NaN or infinite number anywhere (no option of basicsr means one)."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, where + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_finite(item, where[:-1] + (f'{where[-1]}[{index}]',))
    elif isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f'{name(where)}={value!r} must be a finite number.')


def section_at(opt: dict, section: Section) -> dict | None:
    """The mapping that the key path ``section`` leads to in ``opt``, or None where there is none."""
    found: object = opt
    for key in section:
        found = found.get(key) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else None


def sections(opt, section):
    """The mappings (with their key paths) that ``section`` names in ``opt``, ``'*'`` matching every key."""
    found: list[tuple[tuple, dict]] = [((), opt)]
    for part in section:
        found = [
            (where + (k,), v)
            for where, p in found
            for k, v in p.items()
            if fnmatch.fnmatchcase(str(k), part) and isinstance(v, dict)
        ]
    return found


def check_values(opt, rules):
    """Each value that a rule names, by its rule (an integral number made an int), in place."""
    for section, key, rule in rules:
        for where, parent in sections(opt, section):
            for found in [k for k in parent if fnmatch.fnmatchcase(str(k), key)]:
                parent[found] = checked(parent[found], sized(rule, parent, {}), where + (found,))


def declared_rules(model, datasets) -> list[tuple[Section, str, Rule]]:
    """The rules that the file's model and dataset classes declare (``option_keys``), with their sections."""
    roots = [(model, ())] + [(cls, ('datasets', phase)) for phase, cls in datasets.items() if inspect.isclass(cls)]
    return [
        (root + section, key, rule)
        for cls, root in roots
        for section, rules in inherited_rules(cls).items()
        for key, rule in rules.items()
    ]


def sized(rule: Rule, section: dict, defaults: dict) -> Rule:
    """``rule`` with a length given by a key (``num_in_ch``) made a number: the section's value, else the default."""
    if not isinstance(rule.length, str):
        return rule
    length = section.get(rule.length, defaults.get(rule.length))
    return rule._replace(length=length if isinstance(length, int) and not isinstance(length, bool) else None)


def matches(where: Section, section: Section) -> bool:
    """Whether the key path ``where`` is one that ``section`` (parts as shell patterns) names."""
    return len(section) == len(where) and all(fnmatch.fnmatchcase(str(w), s) for w, s in zip(where, section))


def pattern_rule(where, key):
    """The :data:`.rules.RULES` rule of a key, if any (its value was checked by it)."""
    return next(
        (rule for (section, k), rule in RULES.items() if matches(where, section) and fnmatch.fnmatchcase(key, k)),
        None,
    )


def signature_rule(parameter: inspect.Parameter) -> Rule | None:
    """What a keyword must be by its annotation (``int``, ``float``, ``bool``, ``str``) or its default's type.

    An int default takes any number (basicsr's ``res_scale=1`` is given 0.1; ``64.0`` is made 64); a None
    default anything.
    """
    annotation = parameter.annotation
    names = {'int': int, 'float': float, 'bool': bool, 'str': str}
    kind: type | None = names.get(annotation) if isinstance(annotation, str) else annotation
    if kind not in (int, float, bool, str):
        kind = None if parameter.default is inspect.Parameter.empty else type(parameter.default)
    return SIGNATURE_RULES.get(kind) if kind is not None else None


#: The rule of a keyword whose default (or annotation) has this type.
SIGNATURE_RULES: dict[type, Rule] = {
    bool: Rule('bool'),
    int: Rule('count'),
    float: Rule('number'),
    str: Rule('str'),
    list: Rule('list'),
    tuple: Rule('list'),
}
