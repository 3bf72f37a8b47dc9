"""Option files read safely: plain YAML values only, no key written twice, ``--force_yml`` as YAML."""

from __future__ import annotations

import re

import yaml


class DuplicateKeyError(yaml.YAMLError):
    """A key written twice in one mapping of an option file."""


#: A number in exponent form without a dot (``1e-3``, ``2E5``): YAML 1.2 reads it as a float, PyYAML (YAML 1.1)
#: as a string, which basicsr then passes on (an lr of '1e-3', a milestone that is never reached).
EXPONENT_NUMBER = re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$')


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key written twice in one mapping with different values (YAML would keep
    the last silently) and notes one written twice alike (``duplicates``), and reads numbers in exponent form without
    a dot as numbers (:data:`EXPONENT_NUMBER`), everywhere.

    basicsr's ``!!float`` is a standard tag and works; merge keys (``<<: *base``)
    may be overridden, as YAML means them to be.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[object, tuple[int, object]] = {}
            for key_node, value_node in node.value:
                if key_node.tag == 'tag:yaml.org,2002:merge':
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)):
                    continue
                line = key_node.start_mark.line + 1
                value = self.construct_object(value_node, deep=True)
                if key not in first:
                    first[key] = (line, value)
                    continue
                seen_line, seen_value = first[key]
                where = f'line {line}: key {key!r} is written twice in one section (lines {seen_line} and {line})'
                if seen_value != value or type(seen_value) is not type(value):
                    raise DuplicateKeyError(f'{where} with different values; YAML would keep the second silently.')
                self.duplicates.append(f'{where}, alike; the second changes nothing.')
        return super().construct_mapping(node, deep)


_SafeLoader.add_implicit_resolver('tag:yaml.org,2002:float', EXPONENT_NUMBER, list('-+0123456789.'))


def load_options(path: str, warnings: list[str] | None = None) -> dict:
    """Read an option file with a safe YAML loader.

    Args:
        path (str): The YAML file.
        warnings (list[str] | None): Where a key written twice alike in one section is noted, as
            ``<path>, line N: ...``. Default: None (not noted).

    Returns:
        dict: The options.

    Raises:
        ValueError: If the file uses a tag the safe loader does not construct
            (``!!python/object/apply`` and the like), naming the file, line and
            tag, if a key is written twice in one section with different values (both lines), if it
            is not YAML, or if its top level is not a mapping.
    """
    with open(path, encoding='utf-8') as f:
        loader = _SafeLoader(f)
        try:
            opt = loader.get_single_data()
        except yaml.constructor.ConstructorError as error:
            mark = error.problem_mark
            raise ValueError(
                f'{path}, line {mark.line + 1}: {error.problem}; option files may hold plain values '
                'only, nothing is executed.'
            ) from None
        except DuplicateKeyError as error:
            raise ValueError(f'{path}, {error}') from None
        except yaml.YAMLError as error:
            raise ValueError(f'{path} is not valid YAML: {" ".join(str(error).split())}') from None
        finally:
            loader.dispose()
    if warnings is not None:
        warnings.extend(f'{path}, {duplicate}' for duplicate in loader.duplicates)
    if not isinstance(opt, dict):
        raise ValueError(
            f'{path}: an option file is a YAML mapping (name:, model_type:, ...), not {type(opt).__name__}.'
        )
    return opt


def apply_force_yml(opt: dict, entries: list[str]) -> None:
    """Apply ``--force_yml`` entries ``key:sub:leaf=value`` to ``opt`` in place.

    Every key but the last must name an existing section; the value is read as a
    YAML scalar or flow list (``1e-4``, ``true``, ``~``, ``[1, 2]``).

    Args:
        opt (dict): The options.
        entries (list[str]): The ``--force_yml`` arguments.

    Raises:
        ValueError: Naming the entry at fault.
    """
    for entry in entries:
        keys, sep, text = entry.partition('=')
        path = [k.strip() for k in keys.split(':')]
        if not sep or not all(path):
            raise ValueError(f'--force_yml {entry!r}: expected key:sub=value.')
        try:
            value = yaml.load(text.strip(), Loader=_SafeLoader) if text.strip() else None  # noqa: S506
        except yaml.YAMLError as error:
            raise ValueError(f'--force_yml {entry!r}: the value is not a YAML scalar or list ({error}).') from None
        if isinstance(value, str) and text.strip().lower() == 'none':  # basicsr's spelling of null
            value = None
        section = opt
        for depth, key in enumerate(path[:-1]):
            if not isinstance(section.get(key), dict):
                raise ValueError(
                    f'--force_yml {entry!r}: {":".join(path[: depth + 1])} is not a section of the options.'
                )
            section = section[key]
        section[path[-1]] = value
