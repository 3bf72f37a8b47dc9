"""One interpreter for the suite's single-process entry runs: it imports torch, basicsr and this package once, then
forks a child for each run, which runs the command as a fresh interpreter would (``python SCRIPT ...``,
``python -m MODULE ...``): sys.argv, sys.path[0], ``__main__``, the working folder, the environment, standard
streams to files, the exit status as the interpreter makes it (``SystemExit`` text on stderr and 1, a traceback
and 1).

Started by :mod:`helpers` (never imported): requests come one per line on stdin as JSON (``argv`` without the
interpreter, ``cwd``, ``env``, ``out`` and ``err``, the files the output goes to (one file when equal),
``timeout``); each is answered by two JSON lines on stdout: ``pid`` once the run has started, ``status`` when it
has ended (its exit status, or None when it outlived its timeout and was killed with its process group).
What an interpreter reads at its start (the start-up hook, ``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``) is this
server's: :func:`helpers.run` sends here only commands whose environment agrees with the server's on those.

What a run starts in turn is forked from this interpreter too, never from the run (whose loggers and memos a
fresh interpreter would not have): the training runs that ``reproduce``, the demo and the GPU check start through
:func:`wdsr_basicsr.runs.run_entry`, and the workers a forked torchrun launcher starts. The run asks over a Unix
socket (its command, the descriptors its output goes to, its process group or a new session) and gets a stand-in
for ``subprocess.Popen`` with the real pid (signals reach the command) whose exit status the server sends.
"""

import atexit
import io
import json
import logging
import os
import runpy
import select
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
from torch.distributed.elastic.multiprocessing.subprocess_handler import subprocess_handler  # noqa: E402

import wdsr_basicsr.test  # noqa: E402, F401
import wdsr_basicsr.train  # noqa: E402, F401
from fresh import forkable, outputs  # noqa: E402
from wdsr_basicsr import runs  # noqa: E402

PYTHON = sys.executable
PROTOCOL = sys.stdout
#: The socket a run asks for its own commands on (bound by :func:`serve`).
ASK = os.path.join(tempfile.mkdtemp(prefix='entry_server_'), 'ask')


class ForkedProcess:
    """``subprocess.Popen`` for a command the server forked: the pid, ``poll``, ``wait``, ``send_signal``."""

    def __init__(self, args, cwd, env, fds, session):
        self.args, self.returncode, self._buffer = args, None, b''
        request = {'argv': args[1:], 'cwd': cwd, 'env': env, 'session': session, 'group': os.getpgid(0)}
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._connection.connect(ASK)
        socket.send_fds(self._connection, [json.dumps(request).encode() + b'\n'], list(fds))
        self.pid = self._answer(None)['pid']

    def _answer(self, timeout):
        """The server's next answer; None when none comes within ``timeout`` seconds (None: wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b'\n' not in self._buffer:
            if deadline is not None:
                readable, _, _ = select.select([self._connection], [], [], max(0.0, deadline - time.monotonic()))
                if not readable:
                    return None
            chunk = self._connection.recv(1 << 16)
            assert chunk, 'the entry server ended'
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b'\n')
        return json.loads(line)

    def poll(self):
        return self.wait(0) if self.returncode is None else self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            answer = self._answer(timeout)
            if answer is None:
                if timeout == 0:
                    return None
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = answer['status']
            self._connection.close()
        return self.returncode

    def send_signal(self, number):
        if self.returncode is None:
            os.kill(self.pid, number)

    def kill(self):
        self.send_signal(signal.SIGKILL)


def popen(args, cwd=None, env=None, stdout=None, stderr=None, start_new_session=False):
    """``subprocess.Popen`` as the commands of a run see it (what torchrun's launcher and ``run_entry`` use): a
    :class:`ForkedProcess` for what :func:`fresh.forkable` allows, the real one for the rest."""
    cwd = os.getcwd() if cwd is None else str(cwd)
    env = dict(os.environ) if env is None else env
    fds = [(1, 2)[i] if f is None else f if isinstance(f, int) else f.fileno() for i, f in enumerate((stdout, stderr))]
    if any(f < 0 for f in fds) or not forkable(list(args), cwd, env, PYTHON, START_ENV):  # a pipe asked for
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=start_new_session
        )
    return ForkedProcess(list(args), cwd, env, fds, start_new_session)


def created(path):
    """A descriptor of ``path``, made empty for writing."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


class ForkingSubprocess:
    """The ``subprocess`` module as :mod:`wdsr_basicsr.runs` sees it in a run: ``run`` (text, captured or not)
    through :func:`popen`, as ``subprocess.run`` runs a command; the rest is the module's."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def run(args, cwd=None, capture_output=False, text=False, env=None, timeout=None):
        assert text, 'run_entry reads text'
        with tempfile.TemporaryDirectory() as folder:
            paths = (os.path.join(folder, 'out'), os.path.join(folder, 'err')) if capture_output else ()
            fds = [created(path) for path in paths]
            try:
                process = popen(args, cwd=cwd, env=env, stdout=fds[0] if fds else None, stderr=fds[1] if fds else None)
            finally:
                for fd in fds:
                    os.close(fd)
            try:
                status = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                status = None
            texts = outputs(*paths) if capture_output else (None, None)
        if status is None:
            raise subprocess.TimeoutExpired(args, timeout, *texts)
        return subprocess.CompletedProcess(args, status, *texts)


def child(request, fds):
    """Run one command in this forked process and end it with the command's exit status."""
    if request.get('session'):
        os.setsid()  # as torchrun starts its workers
    else:
        try:
            os.setpgid(0, request.get('group', 0))  # its own group (0), or its asker's: all go on a timeout
        except PermissionError:  # the asker's group has ended: so has the asker
            os._exit(1)
    LISTENER.close()
    for fd, source in zip((1, 2), fds):
        os.dup2(source, fd)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    runs.subprocess = ForkingSubprocess()
    subprocess_handler.Popen = popen
    argv = request['argv']
    unbuffered = argv[0] == '-u'  # python -u (torchrun's workers)
    if unbuffered:
        argv = argv[1:]
    for fd, name in ((1, 'stdout'), (2, 'stderr')):
        raw = open(fd, 'wb', buffering=0 if unbuffered else -1, closefd=False)
        buffering = {'line_buffering': fd == 2 and not unbuffered, 'write_through': unbuffered}
        setattr(sys, name, io.TextIOWrapper(raw, 'utf-8', 'backslashreplace', **buffering))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request['cwd'])
    os.environ.clear()
    os.environ.update(request['env'])
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


def start(request, fds):
    """Fork a child running ``request`` with its output on ``fds`` (closed here). Returns its pid."""
    pid = os.fork()
    if pid == 0:
        child(request, fds)
    for fd in fds:
        os.close(fd)
    if not request.get('session'):
        try:
            os.setpgid(pid, request.get('group', 0) or pid)  # as the child does: before anyone signals the group
        except (PermissionError, ProcessLookupError):
            pass
    return pid


def ended(pid):
    """The exit status of child ``pid``, None while it runs."""
    done, wait_status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(wait_status) if done else None


def take_asked(asked):
    """Start what the runs ask for into ``asked``: pid -> the connection its exit status goes to."""
    while True:
        try:
            connection, _ = LISTENER.accept()
        except BlockingIOError:
            return
        connection.setblocking(True)
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        while not message.endswith(b'\n'):
            message += connection.recv(1 << 20)
        pid = start(json.loads(message), fds)
        connection.sendall(json.dumps({'pid': pid}).encode() + b'\n')
        asked[pid] = connection


def serve_one(request):
    """Run one request of the suite and what it asks for; return its exit status (None: killed on its timeout)."""
    out = created(request['out'])
    err = os.dup(out) if request['err'] == request['out'] else created(request['err'])
    pid = start(request, [out, err])
    PROTOCOL.write(json.dumps({'pid': pid}) + '\n')
    PROTOCOL.flush()
    deadline = time.monotonic() + request['timeout']
    asked = {}
    while True:
        take_asked(asked)
        for asked_pid, connection in list(asked.items()):
            status = ended(asked_pid)
            if status is not None:
                connection.sendall(json.dumps({'status': status}).encode() + b'\n')
                connection.close()
                del asked[asked_pid]
        status = ended(pid)
        if status is None and time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if status is not None or time.monotonic() > deadline:
            for asked_pid, connection in asked.items():  # left behind by a run that ended (or was killed)
                for kill in (os.killpg, os.kill):
                    try:
                        kill(asked_pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                os.waitpid(asked_pid, 0)
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
