"""The error of an option file: raised by the loader's checks, worded for the command line by the entries."""


class OptionError(ValueError):
    """An option (or the data it names) that cannot work, named with its file and key path: one line."""
