"""Benchmark networks from option files (parameters, MACs, latency, PSNR/SSIM); see wdsr_basicsr/benchmark/."""

import sys

from wdsr_basicsr.benchmark.cli import main

if __name__ == '__main__':
    sys.exit(main())
