"""Upscale images or folders with a trained network; see wdsr_basicsr/inference.py."""

import sys

from wdsr_basicsr.inference import main

if __name__ == '__main__':
    sys.exit(main())
