"""One interpreter for the suite's single-process entry runs: it imports torch, basicsr and this package once, then
forks a child for each run, which runs the command as a fresh interpreter would (``python SCRIPT ...``,
``python -m MODULE ...``): sys.argv, sys.path[0], ``__main__``, the working folder, the environment, standard
streams to files, the exit status as the interpreter makes it (``SystemExit`` text on stderr and 1, a traceback
and 1).

Started by :func:`helpers.run` (never imported): requests come one per line on stdin as JSON (``argv`` without the
interpreter, ``cwd``, ``env``, ``out``, ``err``, ``timeout``); each answer is one JSON line on stdout
(``status``: the exit status, or None when the run outlived its timeout and was killed with its process group).
What an interpreter reads at its start (the start-up hook, ``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``) is this
server's: :func:`helpers.run` sends here only commands whose environment agrees with the server's on those.
"""

import atexit
import json
import logging
import os
import runpy
import signal
import sys
import threading
import time
import traceback

import basicsr.test  # noqa: F401  (what every entry imports, once: the start-up hook patches basicsr here)
import basicsr.train  # noqa: F401
import torch  # noqa: F401

import wdsr_basicsr.test  # noqa: F401
import wdsr_basicsr.train  # noqa: F401

PROTOCOL = sys.stdout


def child(request):
    """Run one command in this forked process and end it with the command's exit status."""
    os.setpgid(0, 0)  # its loader workers and compile workers go with it on a timeout
    for fd, path in ((1, request['out']), (2, request['err'])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    sys.stdout = open(1, 'w', encoding='utf-8', errors='backslashreplace', closefd=False)
    sys.stderr = open(2, 'w', encoding='utf-8', errors='backslashreplace', closefd=False, buffering=1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
    argv = request['argv']
    code: object = 0
    try:
        if argv[0] == '-m':
            sys.argv = argv[1:]
            sys.path[0] = os.getcwd()  # python -m puts the working folder first
            runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
        else:
            sys.argv = argv
            sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))  # python SCRIPT puts the script's folder first
            runpy.run_path(argv[0], run_name='__main__')
    except SystemExit as error:
        code = error.code
    except BaseException:  # what the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve():
    assert threading.active_count() == 1, 'a thread before fork would be copied half-way'
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        deadline = time.monotonic() + request['timeout']
        status = None
        while True:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(wait_status)
                break
            if time.monotonic() > deadline:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        PROTOCOL.write(json.dumps({'status': status}) + '\n')
        PROTOCOL.flush()


if __name__ == '__main__':
    serve()
