"""Write (or, with --check, compare) the option check's table of what basicsr 1.4.2 reads, from its source.

Usage: python scripts/basicsr_option_table.py [--check]
"""

import argparse
import json
import sys

from wdsr_basicsr.options.source_reads import basicsr_table
from wdsr_basicsr.options.vocabulary import TABLE


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true', help='compare with the committed table; exit 1 if it differs')
    args = parser.parse_args(argv)
    text = json.dumps(basicsr_table(), indent=1) + '\n'
    if args.check:
        with open(TABLE, encoding='utf-8') as f:
            same = f.read() == text
        print(f'{TABLE}: ' + ('as basicsr reads.' if same else 'differs from what basicsr reads: run this script.'))
        sys.exit(0 if same else 1)
    with open(TABLE, 'w', encoding='utf-8') as f:
        f.write(text)
    print(f'wrote {TABLE}')


if __name__ == '__main__':
    main()
