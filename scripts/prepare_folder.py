"""Prepare folders of HR images as training reads them: python scripts/prepare_folder.py --hr DIR [DIR ...]
--out DIR [--scales 2 3 4] [--valid N | --valid-list FILE | --valid-folder DIR] [--lr 2=DIR ...] [--recipe FILE]
[--crop-size 480 --step 240] [--workers N]. See wdsr_basicsr/prepare/folder.py."""

import sys

from wdsr_basicsr.prepare.folder import main

if __name__ == '__main__':
    sys.exit(main())
