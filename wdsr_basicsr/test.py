"""Test with BasicSR's pipeline and this package's registrations.

Usage: python wdsr_basicsr/test.py -opt FILE [--force_yml key:sub=value ...]. Results go under the current
working directory.
"""

import wdsr_basicsr  # noqa: F401  (registration, and the torchvision alias, before basicsr's pipeline)
from basicsr.test import test_pipeline
from wdsr_basicsr.compat import entry_install
from wdsr_basicsr.options import run_pipeline


def main():
    entry_install()
    run_pipeline(test_pipeline)


if __name__ == '__main__':
    main()
