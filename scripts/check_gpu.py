"""GPU check (distributed training paths, mixed precision, resume, speed); see wdsr_basicsr/benchmark/gpu_check.py.

Usage: python scripts/check_gpu.py [--device cuda|cpu] [--iters 300] [--data datasets/demo] [--out docs/gpu_check.md]
"""

import sys

from wdsr_basicsr.benchmark.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
