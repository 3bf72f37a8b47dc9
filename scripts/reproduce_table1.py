"""Train and evaluate the paper's Table 1 sweep and normalisation ablation; see wdsr_basicsr/reproduce.py."""

import sys

from wdsr_basicsr.reproduce import main

if __name__ == '__main__':
    sys.exit(main())
