"""Test with BasicSR's pipeline and this package's registrations.

Usage: python wdsr_basicsr/test.py -opt FILE [--force_yml key:sub=value ...]. Results go under the current
working directory.
"""
import os
import sys

import wdsr_basicsr  # noqa: F401  (compat and registration, before basicsr's pipeline)
from basicsr.test import test_pipeline
from wdsr_basicsr.options import OptionError
from wdsr_basicsr.utils.dist import run_reporting_rank


def main():
    try:
        run_reporting_rank(test_pipeline, os.getcwd())
    except OptionError as error:  # named by the check, before any work: no traceback
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
