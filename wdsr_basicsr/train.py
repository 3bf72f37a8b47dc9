"""Train with BasicSR's pipeline and this package's registrations.

Usage: python wdsr_basicsr/train.py -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] [--debug]
[--force_yml key:sub=value ...]. Experiments and tb_logger go under the current working directory.
"""
import os
import sys

import wdsr_basicsr  # noqa: F401  (compat and registration, before basicsr's pipeline)
from basicsr.train import train_pipeline
from wdsr_basicsr.options import OptionError
from wdsr_basicsr.utils.dist import run_reporting_rank


def main():
    try:
        run_reporting_rank(train_pipeline, os.getcwd())
    except OptionError as error:  # named by the check, before any work: no traceback
        sys.exit(f'error: {error}')


if __name__ == '__main__':
    main()
