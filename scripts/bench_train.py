"""Training-step and loader speed of WDSR-A, WDSR-B and EDSR; see wdsr_basicsr/benchmark/training.py."""

import sys

from wdsr_basicsr.benchmark.training import main

if __name__ == '__main__':
    sys.exit(main())
