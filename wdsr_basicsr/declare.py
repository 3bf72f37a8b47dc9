"""How a class declares the option keys it reads, so that the option check knows them without reading source.

A registered class (a model, a dataset, a network, of this package or of a sibling plugin) may carry the
class attribute ``option_keys``: plain data, so a sibling needs nothing of ours to write it. It maps a
section, named relative to where the class reads (a model: the top level of the file; a dataset: its own
``datasets:<phase>`` section; a network: its ``network_*`` section), with ``':'`` between parts and ``''``
for that root, to the keys the class itself reads there (not those of its bases), either as a list of names
or as a mapping ``{key: rule}`` whose rule says what the value must be (a :class:`Rule`, or None)::

    @MODEL_REGISTRY.register()
    class HATModel(SRModel):
        option_keys = {'': ['tile'], 'val': {'window_size': None}}

A class whose keys depend on one another (one read only with another, a value that needs the machine to have
something) may say so in a static method ``options_fault(section) -> str | None``, given its section as written:
the option check asks it (:func:`relations_fault`) after each value passed its rule, and names the section.

A dataset class may check its data before the run starts in a class method ``check_data(opt, world_size)``
(``opt``: its section with ``phase`` and ``scale``); the entries call it on every rank, after the options.

Both are hooks only where the class that defines them also declares ``option_keys`` (:func:`declared_hook`): a
sibling's method that happens to have one of these common names is never called.

A model may also declare ``option_builds``: for ``'get_optimizer'`` or ``'setup_schedulers'``, the type
names its own method builds beside what its bases build.

:func:`checked` judges a value by its rule (the option check for every class, a dataset for its own section).

The option check then refuses a typo of a declared key (with the key it stands for) and judges values by
the declared rules; a key that neither basicsr's table nor a declaration knows is only a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

#: A section of an option file: the keys that lead to it (``('train', 'optim_g')``); ``()`` is the top level.
Section = tuple[str, ...]
#: The largest iteration count: basicsr's loggers and torch's schedulers keep iterations in 32-bit fields.
MAX_ITER = 2**31 - 1


class Rule(NamedTuple):
    """What one option must be.

    Attributes:
        kind (str): ``'int'``, ``'number'``, ``'count'`` (a number; an integral one made an int), ``'bool'``,
            ``'str'``, ``'list'`` (of ``item``), ``'section'`` (a mapping) or ``'typed'`` (a mapping with a
            ``type``, built by a registry or a model).
        low, high (float | None): The range, both ends included (``low_open`` / ``high_open``: that end
            excluded).
        null (bool): Whether null means something (a random seed, no loss, torch's default timeout).
        words (tuple[str, ...]): Strings accepted beside the kind (``num_gpu: auto``); for a ``'str'``, the
            only strings accepted.
        item (Rule | None): The rule of each element of a list.
        high_open (bool): Whether ``high`` itself is excluded.
        length (int | str | None): A list's length: a number, or the name of the key of the same section
            (its value, else the factory's default) that gives it (``rgb_mean`` has ``num_in_ch`` values).
        low_open (bool): Whether ``low`` itself is excluded.
        doc (str): What the option means, in one line (the option reference shows it).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    null: bool = False
    words: tuple[str, ...] = ()
    item: Rule | None = None
    high_open: bool = False
    length: int | str | None = None
    low_open: bool = False
    doc: str = ''


def declared_keys(cls: type) -> dict[Section, dict[str, Rule | None]] | None:
    """The keys that ``cls`` itself declares (its own ``option_keys``, not a base's), by section; None if none.

    Raises:
        TypeError: If the declaration is not a mapping of sections to lists or mappings of keys.
    """
    declared = vars(cls).get('option_keys')
    if declared is None:
        return None
    if not isinstance(declared, Mapping):
        raise TypeError(f'{cls.__qualname__}.option_keys must map sections to keys, not {declared!r}.')
    found: dict[Section, dict[str, Rule | None]] = {}
    for section, keys in declared.items():
        if not isinstance(section, str) or not isinstance(keys, (Mapping, list, tuple)):
            raise TypeError(f'{cls.__qualname__}.option_keys[{section!r}] must name keys (a list or a mapping).')
        rules = keys if isinstance(keys, Mapping) else dict.fromkeys(keys)
        found[tuple(section.split(':')) if section else ()] = dict(rules)
    return found


def inherited_rules(cls: type) -> dict[Section, dict[str, Rule]]:
    """The rules that ``cls`` and its bases declare, by section; a subclass's rule of a key wins."""
    found: dict[Section, dict[str, Rule]] = {}
    for klass in reversed(cls.__mro__):
        for section, keys in (declared_keys(klass) or {}).items():
            found.setdefault(section, {}).update((key, rule) for key, rule in keys.items() if rule is not None)
    return found


def declared_builds(cls: type, method: str) -> tuple[str, ...] | None:
    """The type names that ``cls``'s own ``method`` builds, as its ``option_builds`` declares; None if undeclared."""
    builds = vars(cls).get('option_builds') or {}
    return tuple(builds[method]) if method in builds else None


def declared_hook(cls: object, hook: str):
    """``cls``'s ``hook`` (``options_fault``, ``check_data``) where the class defining it declares ``option_keys``
    too, else None."""
    if not isinstance(cls, type):
        return None
    owner = next((klass for klass in cls.__mro__ if hook in vars(klass)), None)
    return getattr(cls, hook) if owner is not None and 'option_keys' in vars(owner) else None


def relations_fault(cls: object, section: dict) -> str | None:
    """What ``cls``'s declared ``options_fault`` finds wrong between the keys of its ``section``; None if nothing or
    if ``cls`` declares none (:func:`declared_hook`)."""
    ask = declared_hook(cls, 'options_fault')
    return ask(section) if callable(ask) else None


class OptionError(ValueError):
    """An option (or the data it names) that cannot work, named with its file and key path: one line."""


_KINDS = {
    'int': 'an integer',
    'number': 'a number',
    'count': 'a number',
    'bool': 'true or false (unquoted)',
    'str': 'a string',
    'list': 'a list [a, b, ...]',
    'section': 'a section of key: value lines',
    'typed': 'a section of key: value lines with a type',
}


def name(where: tuple) -> str:
    """How a message names an option: ``train:optim_g:lr``."""
    return ':'.join(map(str, where))


def checked(value, rule: Rule, where: tuple):
    """``value`` if it is what ``rule`` says (an integral number made an int), else an OptionError."""
    must = f'{name(where)}={value!r} must be {_KINDS[rule.kind]}'
    if value is None:
        if rule.null or rule.kind == 'bool':  # basicsr tests switches for truth: null is false
            return value
        raise OptionError(f'{name(where)} is null; it must be {_KINDS[rule.kind]}.')
    if isinstance(value, str) and value in rule.words:
        return value
    if rule.kind in ('section', 'typed'):
        if not isinstance(value, dict):
            raise OptionError(f'option {name(where)} must be {_KINDS[rule.kind]}, not {value!r}.')
        if rule.kind == 'typed' and value.get('type') is None:
            raise OptionError(f'option {name(where)} has no type: it names what is built.')
    elif rule.kind == 'list':
        if not isinstance(value, list):
            raise OptionError(f'{must}.')
        if isinstance(rule.length, int) and len(value) != rule.length:
            raise OptionError(f'{name(where)}={value!r} must be a list of {rule.length} values, not {len(value)}.')
        if rule.item is None:
            return value
        return [checked(v, rule.item, where[:-1] + (f'{where[-1]}[{i}]',)) for i, v in enumerate(value)]
    elif rule.kind in ('bool', 'str'):
        if not isinstance(value, bool if rule.kind == 'bool' else str):
            raise OptionError(f'{must}' + (' (quoted, it is text)' if isinstance(value, str) else '') + '.')
        if rule.kind == 'str' and rule.words:
            raise OptionError(f'{name(where)}={value!r} must be one of {", ".join(rule.words)}.')
    else:
        return _number(value, rule, where, must)
    return value


def _number(value, rule, where, must):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f'{must}' + (' (quoted, it is text)' if isinstance(value, str) else '') + '.')
    if rule.low is not None and (value <= rule.low if rule.low_open else value < rule.low):
        raise OptionError(
            f'{name(where)}={value!r} must be ' + ('above' if rule.low_open else 'at least') + f' {rule.low}.'
        )
    if rule.high is not None and (value >= rule.high if rule.high_open else value > rule.high):
        bound = f'in [{rule.low}, {rule.high})' if rule.high_open else f'at most {rule.high}'
        raise OptionError(f'{name(where)}={value!r} must be {bound}.')
    if rule.kind == 'int' and value != int(value):
        raise OptionError(f'{must}.')
    return int(value) if rule.kind in ('int', 'count') and value == int(value) else value
