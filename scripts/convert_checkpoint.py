"""Convert an official WDSR checkpoint (2018 or 2019 code) to ours; see wdsr_basicsr/convert.py."""

import sys

from wdsr_basicsr.convert import main

if __name__ == '__main__':
    sys.exit(main())
