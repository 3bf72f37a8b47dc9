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

A run's own entry runs (the training runs that ``reproduce``, the demo and the GPU check start through
:func:`wdsr_basicsr.runs.run_entry`) are forked from this interpreter too, never from the run (whose loggers and
memos a fresh interpreter would not have): the run asks over a Unix socket, passing the descriptors its command's
output goes to, and waits for the exit status, as ``subprocess.run`` would (the command in the run's process group,
killed alone on a timeout).
"""

import atexit
import json
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

#: The environment this interpreter started with (before an import changes it: cv2 extends LD_LIBRARY_PATH).
START_ENV = dict(os.environ)

import basicsr.test  # noqa: E402, F401  (what every entry imports, once: the start-up hook patches basicsr here)
import basicsr.train  # noqa: E402, F401
import torch  # noqa: E402, F401

import wdsr_basicsr.test  # noqa: E402, F401
import wdsr_basicsr.train  # noqa: E402, F401
from fresh import forkable, outputs  # noqa: E402
from wdsr_basicsr import runs  # noqa: E402

PYTHON = sys.executable
PROTOCOL = sys.stdout
#: The socket a run asks for its own entry runs on (bound by :func:`serve`).
ASK = os.path.join(tempfile.mkdtemp(prefix='entry_server_'), 'ask')
#: What :func:`reap` answers for a run still running.
RUNNING = object()


class ForkingSubprocess:
    """The ``subprocess`` module as :mod:`wdsr_basicsr.runs` sees it in a run: ``run`` has the server fork the
    commands :func:`fresh.forkable` allows; the rest is the module's."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def run(args, cwd=None, capture_output=False, text=False, env=None, timeout=None):
        cwd = os.getcwd() if cwd is None else str(cwd)
        env = dict(os.environ) if env is None else env
        if not text or not forkable(args, cwd, env, PYTHON, START_ENV):
            return subprocess.run(args, cwd=cwd, capture_output=capture_output, text=text, env=env, timeout=timeout)
        request = {'argv': args[1:], 'cwd': cwd, 'env': env, 'timeout': timeout}
        if not capture_output:
            status, texts = ask(request, (1, 2)), (None, None)
        else:
            with tempfile.TemporaryDirectory() as folder:
                paths = os.path.join(folder, 'out'), os.path.join(folder, 'err')
                fds = [os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for path in paths]
                try:
                    status = ask(request, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
                texts = outputs(*paths)
        if status is None:
            raise subprocess.TimeoutExpired(args, timeout, *texts)
        return subprocess.CompletedProcess(args, status, *texts)


def ask(request, fds):
    """Have the server run ``request`` with its standard output and error on ``fds``; wait for its exit status."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(ASK)
        socket.send_fds(connection, [json.dumps(request).encode() + b'\n'], list(fds))
        answer = connection.makefile().readline()
    assert answer, 'the entry server ended'
    return json.loads(answer)['status']


def child(request, fds, group):
    """Run one command in this forked process and end it with the command's exit status."""
    try:
        os.setpgid(0, group)  # its own group (0), or its asker's: its workers go with it on a timeout
    except PermissionError:  # the asker's group has ended: so has the asker
        os._exit(1)
    LISTENER.close()
    for fd, source in zip((1, 2), fds):
        os.dup2(source, fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    runs.subprocess = ForkingSubprocess()
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


def start(request, fds, group):
    """Fork a child running ``request`` with its output on ``fds`` (closed here), in process group ``group``.

    Returns:
        tuple[int, float | None]: The child's pid and the monotonic time past which it is killed.
    """
    pid = os.fork()
    if pid == 0:
        child(request, fds, group)
    for fd in fds:
        os.close(fd)
    try:
        os.setpgid(pid, group or pid)  # as the child does: set before anyone signals the group
    except (PermissionError, ProcessLookupError):
        pass
    return pid, None if request['timeout'] is None else time.monotonic() + request['timeout']


def reap(pid, deadline, kill):
    """The exit status of child ``pid`` if it has ended; None after killing it (``kill``) past ``deadline``;
    :data:`RUNNING` otherwise."""
    done, wait_status = os.waitpid(pid, os.WNOHANG)
    if done:
        return os.waitstatus_to_exitcode(wait_status)
    if deadline is None or time.monotonic() <= deadline:
        return RUNNING
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    return None


def take_asked(group, asked):
    """Start what the runs ask for (each in process group ``group``) into ``asked``: pid -> (connection, deadline)."""
    while True:
        try:
            connection, _ = LISTENER.accept()
        except BlockingIOError:
            return
        connection.setblocking(True)
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        while not message.endswith(b'\n'):
            message += connection.recv(1 << 20)
        pid, deadline = start(json.loads(message), fds, group)
        asked[pid] = (connection, deadline)


def serve_one(request):
    """Run one request of the suite and what it asks for; return its exit status (None: killed on its timeout)."""
    fds = [os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for key in ('out', 'err')]
    pid, deadline = start(request, fds, 0)
    asked = {}
    while True:
        take_asked(pid, asked)
        for asked_pid, (connection, asked_deadline) in list(asked.items()):
            status = reap(asked_pid, asked_deadline, os.kill)
            if status is not RUNNING:
                connection.sendall(json.dumps({'status': status}).encode() + b'\n')
                connection.close()
                del asked[asked_pid]
        status = reap(pid, deadline, os.killpg)
        if status is not RUNNING:
            for asked_pid, (connection, _) in asked.items():  # left behind by a run that was killed
                reap(asked_pid, time.monotonic() - 1, os.kill)
                connection.close()
            return status
        time.sleep(0.02)


def serve():
    global LISTENER
    LISTENER = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    LISTENER.bind(ASK)
    LISTENER.listen()
    LISTENER.setblocking(False)
    try:
        for line in sys.stdin:
            status = serve_one(json.loads(line))
            PROTOCOL.write(json.dumps({'status': status}) + '\n')
            PROTOCOL.flush()
    finally:
        LISTENER.close()
        os.remove(ASK)
        os.rmdir(os.path.dirname(ASK))


if __name__ == '__main__':
    serve()
