"""Shared helpers of the tests: paths, photographs, small DIV2K-shaped LMDBs, running the entries, small models.

Fixtures built from them live in ``conftest.py``; test files import from here, never from each other.
"""

import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F
import yaml
from skimage import data as skimage_data

import wdsr_basicsr  # noqa: F401  (the torchvision alias first: basicsr is importable in every test module)
from fresh import forkable, outputs
from wdsr_basicsr.options import in_process_options, load_options
from wdsr_basicsr.prepare.div2k import prepare

REPO = Path(__file__).resolve().parent.parent
OPTIONS = REPO / 'options'
TRAIN = str(REPO / 'wdsr_basicsr' / 'train.py')
TEST = str(REPO / 'wdsr_basicsr' / 'test.py')

# HR crops of real photographs (BGR, uint8). Sizes are not multiples of 12 on purpose.
TRAIN_CROPS = {'0001': ('astronaut', 130, 110), '0002': ('coffee', 100, 150)}
VALID_CROPS = {'0801': ('chelsea', 101, 97)}
#: A small WDSR-B x2 (the ``checkpoint`` fixture's network).
SMALL_WDSR_B = {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 2, 'upscale': 2}


def photo(name, h, w):
    return cv2.cvtColor(getattr(skimage_data, name)()[:h, :w], cv2.COLOR_RGB2BGR)


def write_hr(root, split, crops):
    folder = root / f'DIV2K_{split}_HR'
    folder.mkdir(parents=True)
    for stem, (name, h, w) in crops.items():
        cv2.imwrite(str(folder / f'{stem}.png'), photo(name, h, w))


def make_lmdbs(root, scales, valid=VALID_CROPS):
    """DIV2K-shaped LMDBs (48 px sub-images every 24 px) of the fixture photographs under ``root``."""
    write_hr(root, 'train', TRAIN_CROPS)
    write_hr(root, 'valid', valid)
    prepare(str(root), tuple(scales), crop_size=48, step=24, workers=2)
    return root


def write_options(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return str(path)


def cpu_env(extra=None):
    """The environment of a command run on the CPU: no GPU visible, one thread per process, plus ``extra``."""
    return dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', **(extra or {}))


def run(args, cwd, timeout=300, env=None):
    """Run a command on the CPU (:func:`cpu_env`), capturing its output.

    A single-process Python entry (``python SCRIPT ...``, ``python -m MODULE ...``, torchrun's launcher) runs in
    a child forked from one interpreter that has imported torch and basicsr already (``entry_server.py``), as a
    fresh interpreter would run it, and so do the entries it starts (torchrun's workers, ``run_entry``'s runs);
    anything else (``-c``, a command whose environment changes what an interpreter reads at its start:
    :func:`fresh.forkable`) is started as its own process.
    """
    args = [str(a) for a in args]
    full_env = cpu_env(env)
    if _console_script(args[0], cwd):  # the venv's wdsr-* programs: python running the script they are
        args = [sys.executable, str(Path(cwd, args[0]))] + args[1:]
    if forkable(args, str(cwd), full_env, sys.executable, _ENTRIES.env):
        return _ENTRIES.start(args, str(cwd), full_env, timeout, merged=False).wait()
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


def start(args, cwd, timeout=600, env=None, merged=False):
    """Start a single-process entry (a command :func:`run` forks) in the background, on the CPU.

    Returns:
        Started: Its pid, its output line by line (stdout and stderr in one file when ``merged``), its end.
    """
    args = [str(a) for a in args]
    full_env = cpu_env(env)
    if not forkable(args, str(cwd), full_env, sys.executable, _ENTRIES.env):
        raise ValueError(f'{args}: not a single-process entry the entry server can run')
    return _ENTRIES.start(args, str(cwd), full_env, timeout, merged)


def _console_script(program, cwd):
    """Whether ``program`` is one of the venv's console scripts (a Python file run by this interpreter)."""
    path = Path(cwd, program)
    if path.parent.resolve() != Path(sys.executable).parent.resolve() or not path.is_file():
        return False
    with open(path, 'rb') as f:
        return f.readline().strip() == b'#!' + os.fsencode(sys.executable)


class Started:
    """A command the entry server runs in the background (:func:`start`): its pid, its output as it comes, its end."""

    def __init__(self, server, args, timeout):
        self.args, self.timeout, self._server = args, timeout, server
        self._folder = tempfile.TemporaryDirectory()
        self.paths = {'out': os.path.join(self._folder.name, 'out'), 'err': os.path.join(self._folder.name, 'err')}
        self._readers, self._partial, self._status = {}, {}, None

    def _answer(self):
        answer = self._server.process.stdout.readline()
        assert answer, 'the entry server ended'
        return json.loads(answer)

    def _ended(self):
        try:
            os.kill(self.pid, 0)  # a child the server has not reaped yet is still there
        except ProcessLookupError:
            return True
        return False

    def next_line(self, timeout=None, stream='err'):
        """The next whole line the command writes to ``stream`` ('out' or 'err'; one file when merged), '' once it
        has ended and everything is read. Raises TimeoutError when no line comes within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if stream not in self._readers:
            self._readers[stream], self._partial[stream] = open(self.paths[stream], 'rb'), b''
        while True:
            ended = self._ended()  # before reading: what it wrote before it ended is read below
            self._partial[stream] += self._readers[stream].readline()
            if self._partial[stream].endswith(b'\n') or (ended and self._partial[stream]):
                line, self._partial[stream] = self._partial[stream], b''
                return line.decode('utf-8', errors='replace')
            if ended:
                return ''
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f'no line from {self.args} for {timeout} s')
            time.sleep(0.05)

    def send_signal(self, number):
        os.kill(self.pid, number)

    def kill(self):
        """Kill the command and its process group (its loader workers, what it started)."""
        os.killpg(self.pid, signal.SIGKILL)

    def wait(self):
        """Wait for the command's end.

        Returns:
            subprocess.CompletedProcess: Its exit status, stdout and stderr (texts).
        """
        status = self._answer()['status']
        self._server.pending = None
        texts = outputs(self.paths['out'], self.paths['err'])
        for reader in self._readers.values():
            reader.close()
        self._folder.cleanup()
        if status is None:
            raise subprocess.TimeoutExpired(self.args, self.timeout, texts[0], texts[1])
        return subprocess.CompletedProcess(self.args, status, texts[0], texts[1])


class _EntryServer:
    """The entry server's process (started at its first use) and the requests to it, one at a time."""

    def __init__(self):
        self.env = cpu_env()
        self.process = None
        self.pending = None

    def start(self, args, cwd, env, timeout, merged):
        if self.pending is not None:
            raise RuntimeError(f'the entry server runs one command at a time: {self.pending} has not ended')
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / 'tests' / 'entry_server.py')],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=self.env,
                cwd=REPO,
            )
        started = Started(self, args, timeout)
        if merged:
            started.paths['err'] = started.paths['out']
        request = {'argv': args[1:], 'cwd': cwd, 'env': env, 'timeout': timeout, **started.paths}
        self.process.stdin.write(json.dumps(request) + '\n')
        self.process.stdin.flush()
        self.pending = args
        started.pid = started._answer()['pid']
        return started


_ENTRIES = _EntryServer()


def next_second():
    """Wait for the clock's next second: basicsr names a run's log by the second it starts (``train_<name>_<time>.log``,
    opened for writing), so a run started in the same second as the one before writes over its log. A fresh
    interpreter takes seconds to start; a forked entry run does not."""
    time.sleep(1.01 - time.time() % 1)


def popen(args, cwd, env=None):
    """Start a command on the CPU (:func:`cpu_env`) in the background, its output piped."""
    return subprocess.Popen(args, cwd=cwd, env=cpu_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def free_port():
    """A TCP port of this machine that nothing listens on now."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun(*args, nproc=2):
    """``python -m torch.distributed.run --standalone --nproc_per_node=N`` + args."""
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', *args]


def reference_forward(net, x, kind, res_scale, img_range, mean):
    """The paper's data flow written out with F.conv2d, using weights folded by the weight-norm formula."""

    def conv(name, t, k):
        g = net.get_parameter(f'{name}.parametrizations.weight.original0')
        v = net.get_parameter(f'{name}.parametrizations.weight.original1')
        w = g * v / v.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
        return F.conv2d(t, w, net.get_parameter(f'{name}.bias'), padding=k // 2)

    mean = torch.tensor(mean).view(1, 3, 1, 1)
    t = (x - mean) * img_range
    feat = conv('head', t, 3)
    for i in range(len(net.body)):
        p = f'body.{i}.body'
        if kind == 'A':
            r = conv(f'{p}.2', torch.relu(conv(f'{p}.0', feat, 3)), 3)
        else:  # linear low-rank pair: no activation between the 1x1 and the 3x3
            r = conv(f'{p}.3', conv(f'{p}.2', torch.relu(conv(f'{p}.0', feat, 1)), 1), 3)
        feat = feat + res_scale * r
    out = F.pixel_shuffle(conv('tail', feat, 3) + conv('skip', t, 5), net.shuffle.upscale_factor)
    return out / img_range + mean


def model_options(tmp_path, norm='weight', ema=0.5, val=None):
    """The demo file's options made runnable in this process (the package's one builder), for a model built by
    hand: a tiny WDSR-B, ``ema``, ``val``, eager steps; models/ and training_states/ under ``tmp_path``."""
    opt = load_options(OPTIONS / 'demo_wdsr_b_x2.yml')
    opt.update(name=tmp_path.name, use_compile=False)
    opt['network_g'].update(num_feat=8, num_block=2, norm=norm)
    opt['train']['ema_decay'] = ema
    opt['train']['scheduler']['milestones'] = [100]
    opt['datasets'] = {'train': opt['datasets']['train']}  # the tests hand the model their own batches and loaders
    opt['val'] = dict({'val_freq': 10**9, 'save_img': False}, **(val or {}))  # validated by hand, never by the loop
    opt['path']['experiments_root'] = str(tmp_path.parent)  # experiments_root/<name> is tmp_path itself
    in_process_options(opt, 'demo_wdsr_b_x2.yml', str(tmp_path), is_train=True)
    return opt


def batch(n=2, size=12):
    lq = torch.rand(n, 3, size, size)
    return {'lq': lq, 'gt': F.interpolate(lq, scale_factor=2, mode='bicubic', align_corners=False).clamp(0, 1)}


def make_zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buf.getvalue()


class RangeServer:
    """An HTTP server on loopback serving bytes by path, honouring 'Range: bytes=N-'."""

    def __init__(self, files):
        self.files, self.ranges = files, []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's naming)
                body = owner.files.get(self.path.lstrip('/'))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get('Range'):
                    start = int(self.headers['Range'].split('=')[1].rstrip('-'))
                    owner.ranges.append(start)
                self.send_response(206 if start else 200)
                self.send_header('Content-Length', str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_port}/'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
