"""Write the option reference and the option files' JSON schema from the declarations.

Both are committed; a test remakes them and compares. Run it after changing a declaration, a rule or a
meaning: python scripts/make_reference.py
"""

import argparse
import json
from os import path as osp

from wdsr_basicsr.options.reference import SCHEMA_FILE, reference, schema

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Where each file goes, relative to the project's root.
REFERENCE = osp.join('docs', 'reference', 'options.md')
SCHEMA = osp.join('wdsr_basicsr', *SCHEMA_FILE.split('/'))


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(schema(), indent=1) + '\n'


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    for rel, text in ((REFERENCE, reference()), (SCHEMA, schema_text())):
        with open(osp.join(ROOT, rel), 'w', encoding='utf-8') as f:
            f.write(text)
        print(f'wrote {rel}')


if __name__ == '__main__':
    main()
