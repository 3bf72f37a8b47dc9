"""The error of an option file: raised by the loader's checks, worded for the command line by the entries.

:class:`OptionError` is defined beside the rules it judges by (:mod:`wdsr_basicsr.declare`), which the datasets
apply too; the option loader's modules take it from here.
"""

from ..declare import OptionError

__all__ = ['OptionError']
