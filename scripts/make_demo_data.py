"""Build the demo set (scikit-image photographs as DIV2K LMDBs): python scripts/make_demo_data.py
[--root datasets/demo] [--scales 2 3 4]. See wdsr_basicsr/prepare/demo.py."""

import sys

from wdsr_basicsr.prepare.demo import main

if __name__ == '__main__':
    sys.exit(main())
