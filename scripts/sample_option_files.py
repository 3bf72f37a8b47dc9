"""Write the key structure of other projects' option files as a test sample (tests/assets/*_options.json).

The option check must pass every option file that BasicSR and its sibling plugins ship. Their files stay out
of this repository; the test reads a sample made from them by this script: every file's keys and nesting, its
``type`` / ``model_type`` / ``name`` values, numbers, booleans and the other short words as they are, and
path-like strings replaced by ``'x'``.

Usage (from a checkout of XPixelGroup/BasicSR or xinntao/Real-ESRGAN):
    python scripts/sample_option_files.py BasicSR/options --output tests/assets/basicsr_options.json
"""

import argparse
import json
import os
import sys
from os import path as osp

from wdsr_basicsr.options import load_options


def sample(value):
    """``value`` with path-like strings (a '/' or '.yml' / '.pth' in them) replaced by 'x'."""
    if isinstance(value, dict):
        return {str(k): sample(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sample(v) for v in value]
    if isinstance(value, str) and ('/' in value or value.endswith(('.pth', '.yml', '.txt', '.lmdb'))):
        return 'x'
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='a folder of option files (searched recursively for *.yml)')
    parser.add_argument('--output', required=True, help='the JSON file to write')
    args = parser.parse_args(argv)
    files = sorted(
        osp.join(folder, name) for folder, _, names in os.walk(args.root) for name in names if name.endswith('.yml')
    )
    if not files:
        sys.exit(f'{args.root}: no .yml files.')
    samples = {osp.relpath(path, args.root): sample(load_options(path)) for path in files}
    with open(args.output, 'w', encoding='utf-8') as f:
        json.dump(samples, f, indent=1, sort_keys=False)
        f.write('\n')
    print(f'{len(samples)} option files sampled into {args.output}')


if __name__ == '__main__':
    main()
