"""Export a checkpoint to ONNX or TorchScript; see wdsr_basicsr/export.py."""

import sys

from wdsr_basicsr.export import main

if __name__ == '__main__':
    sys.exit(main())
