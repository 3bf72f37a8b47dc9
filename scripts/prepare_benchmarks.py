"""Prepare Set5, Set14, B100, Urban100 and Manga109 in BasicSR's layout: python scripts/prepare_benchmarks.py
--input DIR --output datasets [--scales 2 3 4] [--sets ...] [--download]. See wdsr_basicsr/prepare/benchmarks.py."""

import sys

from wdsr_basicsr.prepare.benchmarks import main

if __name__ == '__main__':
    sys.exit(main())
