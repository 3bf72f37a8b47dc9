"""Which commands a child forked from the entry server (``entry_server.py``) may run as a fresh interpreter would.

Imported by :mod:`helpers` (the suite's commands) and by the entry server (the commands its runs start in turn:
the training runs of ``reproduce``, the demo and the GPU check, torchrun's workers); light on purpose (the standard
library only).
"""

import os
from pathlib import Path

#: Modules that must start fresh: never run in a forked child (torchrun's launcher may: its workers start fresh).
OWN_PROCESS_MODULES = ('venv', 'pip')

#: Environment variables an interpreter (or torch, or the start-up hook) reads when it starts.
READ_AT_START = ('PYTHON', 'CUDA', 'OMP_', 'MKL_', 'TORCH', 'LD_', 'WDSR_BASICSR', 'KMP_', 'OPENBLAS')
#: Of those, what torchrun sets for its workers and torch reads only later (the process group, error files).
READ_LATER = ('TORCHELASTIC_', 'TORCH_NCCL_ASYNC_ERROR_HANDLING')


def forkable(args, cwd, env, python, start_env):
    """Whether ``args`` is a single-process entry that a child of the entry server can run as a fresh interpreter.

    Args:
        args (list[str]): The command line.
        cwd (str): Its working folder.
        env (dict): Its environment.
        python (str): The entry server's interpreter: the command must be this one.
        start_env (dict): The entry server's environment at its start: what the command's interpreter would read
            at its start must be the same.

    Returns:
        bool
    """
    if len(args) < 2 or args[0] != python:
        return False
    if args[1] == '-u':  # unbuffered output (torchrun's workers)
        args = args[1:]
    if args[1] == '-m':
        if len(args) < 3 or args[2] in OWN_PROCESS_MODULES:
            return False
    elif args[1].startswith('-') or not os.path.isfile(os.path.join(cwd, args[1])):
        return False
    keys = set(env) | set(start_env)
    return all(
        env.get(k) == start_env.get(k) for k in keys if k.startswith(READ_AT_START) and not k.startswith(READ_LATER)
    )


def outputs(out, err):
    """The texts a forked run wrote to the files ``out`` and ``err`` (empty for a file it never opened).

    Returns:
        tuple[str, str]
    """
    return tuple(
        Path(path).read_text(encoding='utf-8', errors='replace') if os.path.exists(path) else '' for path in (out, err)
    )
