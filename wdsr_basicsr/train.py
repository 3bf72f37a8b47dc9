"""Train with BasicSR's pipeline and this package's registrations.

Usage: python wdsr_basicsr/train.py -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] [--debug]
[--force_yml key:sub=value ...]. Experiments and tb_logger go under the current working directory.
"""

import wdsr_basicsr  # noqa: F401  (registration, and the torchvision alias, before basicsr's pipeline)
from basicsr.train import train_pipeline
from wdsr_basicsr.compat import entry_install
from wdsr_basicsr.options import run_pipeline


def main():
    entry_install()
    run_pipeline(train_pipeline)


if __name__ == '__main__':
    main()
