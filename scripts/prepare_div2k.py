"""Prepare DIV2K as LMDBs: python scripts/prepare_div2k.py --root DIR [--scales 2 3 4] [--download]
[--crop-size 480 --step 240] [--workers N]. See wdsr_basicsr/prepare/div2k.py."""

import sys

from wdsr_basicsr.prepare.div2k import main

if __name__ == '__main__':
    sys.exit(main())
