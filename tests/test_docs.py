"""Every command that README.md and docs/*.md show runs here, as written but for sizes, lengths and places.

Each test takes its command's words from the docs (:func:`docs.documented`), so a documented command cannot drift
from the code; :func:`test_every_documented_command_is_run` fails for a command that no test takes. What a test
changes, it adds as flags or placeholders: smaller images, fewer iterations and processes (the CPU), ports,
a local server for the archives, ``--device cpu`` where the docs say ``cuda`` (CI has no GPU).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import basicsr
import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.matlab_functions import imresize

from docs import DOCS, claims, doc_commands, documented, matches, words
from helpers import REPO, TRAIN_CROPS, VALID_CROPS, RangeServer, cpu_env, free_port, make_lmdbs, make_zip, photo
from helpers import run as run_command
from official import official_2018, official_2019
from wdsr_basicsr.options import load_options
from wdsr_basicsr.prepare.benchmarks import prepare_benchmarks
from wdsr_basicsr.runs import shrink_options
from wdsr_basicsr.utils.preempt import VOTE_EVERY

SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
#: The commands CI runs itself (`.ci/run`, word for word), and the fast suite (collected here, not run again).
CI_COMMANDS = ('bash scripts/setup_env.sh && .venv/bin/python -m pytest -q tests', '-m ruff check .', '-m mypy')


def test_every_documented_command_is_run():
    """Each command of the docs is asked for by a test (:func:`docs.claims`) or is one that CI runs itself."""
    commands = doc_commands()
    taken = set()
    for path in (REPO / 'tests').rglob('*.py'):
        for doc, snippet in claims(path):
            found = matches(doc, snippet, commands)
            assert len(found) == 1, f'{path.name}: documented({doc!r}, {snippet!r}) names {len(found)} commands'
            taken.add((doc, found[0]))
    ci = (REPO / '.ci' / 'run').read_text()
    untaken = [
        f'{doc}:{line}: {text}'
        for doc, line, text in commands
        if (doc, text) not in taken
        and not (any(c in text for c in CI_COMMANDS) and all(part.strip() in ci for part in text.split('&&')))
    ]
    assert untaken == []
    assert 'bash scripts/setup_env.sh && .venv/bin/python -m pytest -q tests' in ci  # the README's test command


def test_every_link_between_the_pages_resolves():
    """README.md and docs/: each relative link names a file that exists (pages moved between folders)."""
    broken = [
        f'{doc}: {target}'
        for doc in DOCS
        for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', (REPO / doc).read_text())
        if not target.startswith(('http://', 'https://')) and not (REPO / doc).parent.joinpath(target).exists()
    ]
    assert broken == []


@pytest.mark.slow  # a pytest of its own, collecting the suite
def test_the_fast_suite_command_selects_the_fast_tests():
    argv = words(documented('docs/how-to/develop.md', '-m "not slow"')) + ['--collect-only']
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600, env=cpu_env())
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'deselected' in result.stdout.splitlines()[-1] and 'test_docs.py::test_every' in result.stdout


@pytest.mark.parametrize(
    'doc, snippet',
    [
        ('docs/tutorials/train-div2k.md', '.venv/bin/python scripts/prepare_div2k.py --root datasets/DIV2K --download'),
        ('docs/tutorials/train-div2k.md', 'wdsr_basicsr/train.py -opt options/train_wdsr_b_x2.yml'),
        ('docs/tutorials/train-div2k.md', 'wdsr_basicsr/test.py -opt options/test_wdsr_b_x2.yml'),
        ('docs/tutorials/own-images.md', 'wdsr-inference -i my_lowres/'),
        ('docs/how-to/benchmark.md', 'benchmark.py --opt options/train_wdsr_b_x2.yml'),
    ],
)
def test_the_readme_tour_is_the_pages_own(doc, snippet):
    """The README's short tour shows commands of the pages it links, word for word (they run there)."""
    assert documented('README.md', snippet) == documented(doc, snippet)


# ----------------------------------------------------------------------------- a project folder


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    """DIV2K-shaped LMDBs (x2, x3, x4) and the five benchmark sets in BasicSR's layout, made once."""
    root = tmp_path_factory.mktemp('docs_data')
    make_lmdbs(root / 'DIV2K', (2, 3, 4))
    for i, name in enumerate(SETS):
        (root / 'in' / name).mkdir(parents=True)
        for j, picture in enumerate(('astronaut', 'coffee')):
            cv2.imwrite(str(root / 'in' / name / f'img_{j:03d}.png'), photo(picture, 40 + 4 * i, 44 + 4 * j))
    prepare_benchmarks(str(root / 'in'), str(root / 'datasets'), scales=(2, 3, 4), sets=SETS)
    return root


def project(tmp_path, shared, datasets=True):
    """A working folder as the docs assume: the repository's options/, scripts/, wdsr_basicsr/ and the data."""
    for name in ('options', 'scripts', 'wdsr_basicsr'):
        (tmp_path / name).symlink_to(REPO / name)
    if datasets:
        (tmp_path / 'datasets').mkdir()
        (tmp_path / 'datasets' / 'DIV2K').symlink_to(shared / 'DIV2K')
        for name in SETS:
            (tmp_path / 'datasets' / name).symlink_to(shared / 'datasets' / name)
    return tmp_path


def run(argv, cwd, env=None, timeout=600):
    env = dict(env or {}, XDG_CACHE_HOME=str(Path(cwd) / '.cache'))  # decoded caches stay in the test's folder
    result = run_command(argv, cwd, timeout=timeout, env=env)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-3000:])
    return result


def shrink(opt_file, **changes):
    """``--force_yml`` entries that shrink a shipped training file (:func:`shrink_options`: 2 iterations, 24 px
    patches, batch 2, the data under ``datasets/DIV2K``), and ``changes``."""
    opt = load_options(opt_file)
    small = shrink_options(opt, data='datasets/DIV2K', iters=2, gt_size=24, batch=2, workers=0, validations=1)
    old, new = dict(_leaves(opt)), dict(_leaves(dict(small, num_gpu='auto', **changes)))
    entries = [f'{key}={_flow(value)}' for key, value in new.items() if key not in old or old[key] != value]
    return ['--force_yml', *entries, *(f'{key}=~' for key in old if key not in new)]


def _leaves(opt, prefix=''):
    """``(section:key, value)`` of every value that is not a section."""
    for key, value in opt.items():
        if isinstance(value, dict):
            yield from _leaves(value, f'{prefix}{key}:')
        else:
            yield f'{prefix}{key}', value


def _flow(value):
    """``value`` as one line of YAML, as ``--force_yml`` reads it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()


def with_values(argv, **flags):
    """``argv`` with each flag's values replaced (``lr_size=['32', '32']`` for ``--lr-size``), or appended."""
    argv = list(argv)
    for name, values in flags.items():
        flag = f'--{name}' if f'--{name}' in argv else f'--{name.replace("_", "-")}'
        if flag in argv:
            start = end = argv.index(flag) + 1
            while end < len(argv) and not argv[end].startswith('-'):
                end += 1
            argv[start:end] = values
        else:
            argv += [flag, *values]
    return argv


def checkpoint(path, network_g):
    """Random weights of ``network_g`` saved as the model saves them, at ``path``."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = build_network(dict(network_g))
    torch.save({'params': net.state_dict(), 'network_g': dict(network_g)}, path)
    return str(path)


def trained(cwd, name, world_size=None):
    """The run's folder, after checking it saved its network (and, given ``world_size``, that its log says it
    trained on that many processes to the end, validating)."""
    experiment = Path(cwd) / 'experiments' / name
    assert (experiment / 'models' / 'net_g_latest.pth').is_file(), sorted(os.listdir(experiment))
    if world_size is not None:
        log = ''.join(p.read_text() for p in sorted(experiment.glob('train_*.log')))
        assert f'World size (gpu number): {world_size}' in log and 'End of training' in log and '# psnr: ' in log
    return experiment


# ----------------------------------------------------------------------------- the main job, the entries


@pytest.mark.slow
def test_the_main_job(shared, tmp_path):
    """README's main command (setup, then run_demo.py: 4 iterations instead of 2000); docs/results.md's too."""
    text = documented('README.md', 'scripts/run_demo.py')
    setup, demo = (part.strip() for part in text.split('&&'))
    assert demo == documented('docs/results.md', 'scripts/run_demo.py')
    if Path(sys.prefix).resolve() == (REPO / '.venv').resolve():  # the README's venv: set up already, a no-op
        run(words(setup), REPO)
    cwd = project(tmp_path, shared, datasets=False)
    force = ['train:total_iter=4', 'val:val_freq=2', 'logger:save_checkpoint_freq=2', 'logger:print_freq=1']
    result = run_command(words(demo) + ['--force_yml', *force], cwd, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: not better than bicubic (4 iterations)
    assert 'WDSR-B demo: PSNR' in result.stdout and 'bicubic:     PSNR' in result.stdout
    trained(cwd, 'demo_wdsr_b_x2')


@pytest.mark.slow
@pytest.mark.parametrize(
    'doc, snippet',
    [
        ('docs/how-to/basicsr-entries.md', 'python -m basicsr.train'),
        ('docs/tutorials/train-div2k.md', 'wdsr_basicsr/train.py -opt options/train_wdsr_b_x2.yml'),
    ],
)
def test_training_entries(shared, tmp_path, doc, snippet):
    text = documented(doc, snippet)
    cwd = project(tmp_path, shared)
    run(words(text) + shrink(REPO / 'options' / 'train_wdsr_b_x2.yml'), cwd)
    trained(cwd, 'train_wdsr_b_x2')


@pytest.mark.slow
def test_training_in_a_basicsr_clone(shared, tmp_path):
    text = documented('docs/how-to/basicsr-entries.md', 'python basicsr/train.py')
    clone = project(tmp_path, shared)
    (clone / 'basicsr').mkdir()
    shutil.copy(Path(basicsr.__file__).parent / 'train.py', clone / 'basicsr' / 'train.py')
    run(words(text) + shrink(REPO / 'options' / 'train_wdsr_b_x2.yml'), clone)
    trained(clone, 'train_wdsr_b_x2')


@pytest.mark.slow
@pytest.mark.parametrize(
    'doc, snippet',
    [
        ('docs/how-to/basicsr-entries.md', 'python -m basicsr.test'),
        ('docs/tutorials/train-div2k.md', 'wdsr_basicsr/test.py -opt options/test_wdsr_b_x2.yml'),
    ],
)
def test_test_entries(shared, tmp_path, doc, snippet):
    """The shipped test file on the five sets and DIV2K's validation, with weights where it looks for them."""
    cwd = project(tmp_path, shared)
    opt = load_options(REPO / 'options' / 'test_wdsr_b_x2.yml')
    checkpoint(cwd / opt['path']['pretrain_network_g'], opt['network_g'])
    run(words(documented(doc, snippet)), cwd)
    results = cwd / 'results' / 'test_wdsr_b_x2'
    assert {f'metrics_{name}.json' for name in SETS} <= set(os.listdir(results))


# ----------------------------------------------------------------------------- distributed


def torchrun_words(text, nproc, **placeholders):
    """A documented torchrun command for the CPU: ``nproc`` processes a node, a free port."""
    argv = [w.replace('--nproc_per_node=4', f'--nproc_per_node={nproc}') for w in words(text, **placeholders)]
    if not any(w.startswith('--master_port') for w in argv):
        argv.insert(argv.index('--nproc_per_node=' + str(nproc)) + 1, f'--master_port={free_port()}')
    return argv


@pytest.mark.slow
def test_torchrun_on_one_machine(shared, tmp_path):
    cwd = project(tmp_path, shared)
    argv = torchrun_words(documented('docs/tutorials/cluster.md', 'torchrun --nproc_per_node=4'), 2)
    run(argv + shrink(REPO / 'options' / 'dist' / 'train_wdsr_b_x2_4gpu.yml'), cwd)
    trained(cwd, 'train_wdsr_b_x2_4gpu', world_size=2)


@pytest.mark.slow
def test_torchrun_on_two_nodes(shared, tmp_path):
    """Two "nodes" of one CPU process each, on this machine."""
    cwd = project(tmp_path, shared)
    port = str(free_port())
    text = documented('docs/tutorials/cluster.md', 'torchrun --nnodes=2')
    env = cpu_env({'XDG_CACHE_HOME': str(cwd / '.cache')})
    nodes = [
        subprocess.Popen(
            [w.replace('--master_port=29500', f'--master_port={port}') for w in torchrun_words(text, 1, **names)]
            + shrink(REPO / 'options' / 'dist' / 'train_wdsr_b_x2_8gpu.yml'),
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for names in ({'$NODE_RANK': '0', '$MASTER': '127.0.0.1'}, {'$NODE_RANK': '1', '$MASTER': '127.0.0.1'})
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    trained(cwd, 'train_wdsr_b_x2_8gpu', world_size=2)


@pytest.mark.slow
def test_torch_distributed_launch(shared, tmp_path):
    cwd = project(tmp_path, shared)
    opt_file = 'options/dist/train_wdsr_b_x2_4gpu.yml'
    argv = torchrun_words(documented('docs/tutorials/cluster.md', 'torch.distributed.launch'), 2, FILE=opt_file)
    run(argv + shrink(REPO / opt_file), cwd)
    trained(cwd, 'train_wdsr_b_x2_4gpu', world_size=2)  # --local-rank, as the old launcher passes it, is taken


def slurm_stand_ins(cwd):
    """``sbatch`` (runs the script here), ``srun`` (one task: runs its command, its pid in ``srun.pid``) and
    ``scontrol`` (``show hostnames``: this machine; ``requeue``: the job id appended to ``requeued``). The
    project's environment is active, as where a user calls ``sbatch`` (which passes its environment on): the
    script's ``python`` is the suite's."""
    bin_dir = cwd / 'bin'
    bin_dir.mkdir()
    scripts = {
        'sbatch': '#!/bin/sh\nexec bash "$@"\n',
        'srun': '#!/bin/sh\necho $$ > srun.pid\nexec "$@"\n',
        'scontrol': '#!/bin/sh\nif [ "$1" = requeue ]; then echo "$2" >> requeued; else echo 127.0.0.1; fi\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {'PATH': f'{bin_dir}:{Path(sys.executable).parent}:{os.environ["PATH"]}', 'SLURM_PROCID': '0'}
    env.update(SLURM_NTASKS='1')
    env.update(SLURM_LOCALID='0', SLURM_NODELIST='node1', SLURM_JOB_ID='7')
    return env


@pytest.mark.slow
def test_slurm(shared, tmp_path):
    """The batch script, one task: left alone it trains and is not requeued; stopped by SIGUSR1 (what
    --signal=USR1@120 sends every task) it saves, ends with 75 and requeues the job, which then resumes."""
    cwd = project(tmp_path, shared)
    env = slurm_stand_ins(cwd)
    argv = words(documented('docs/tutorials/cluster.md', 'sbatch scripts/slurm_train.sh'))
    opt_file = REPO / argv[-1]
    run(argv + shrink(opt_file, **{'dist_params:port': free_port()}), cwd, env=env)
    trained(cwd, 'train_wdsr_b_x2_8gpu')
    assert not (cwd / 'requeued').exists()

    long_run = shrink(opt_file, **{'dist_params:port': free_port(), 'name': 'requeued', 'train:total_iter': 100000})
    proc = subprocess.Popen(
        argv + long_run, cwd=cwd, env=cpu_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stderr:
        if 'SIGTERM, SIGUSR1 or Ctrl+C: the run saves' in line:
            os.kill(int((cwd / 'srun.pid').read_text()), signal.SIGUSR1)
            break
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 75, err[-3000:]
    assert (cwd / 'requeued').read_text() == '7\n'
    stop = 2 * VOTE_EVERY  # a process group of one: the second vote after the request
    assert f'SIGUSR1: saving iteration {stop} and stopping (exit status 75)' in err
    resumed = [w.replace('train:total_iter=100000', f'train:total_iter={stop + 2}') for w in long_run]
    result = run(argv + resumed, cwd, env=env)
    assert f'iter: {stop}.' in result.stderr and 'Resuming training from epoch' in result.stderr
    assert (cwd / 'requeued').read_text() == '7\n'


# ----------------------------------------------------------------------------- data


def div2k_archives(server, scales):
    """The official DIV2K archives of the fixture photographs (HR and bicubic LR), served by ``server``."""

    def png(image):
        return cv2.imencode('.png', image)[1].tobytes()

    for split, crops in (('train', TRAIN_CROPS), ('valid', VALID_CROPS)):
        hr = {stem: photo(*spec) for stem, spec in crops.items()}
        server.files[f'DIV2K_{split}_HR.zip'] = make_zip({f'DIV2K_{split}_HR/{s}.png': png(i) for s, i in hr.items()})
        for scale in scales:
            lr = {}
            for stem, image in hr.items():
                h, w = (d - d % scale for d in image.shape[:2])
                small = imresize(image[:h, :w] / 255.0, 1 / scale)
                lr[f'DIV2K_{split}_LR_bicubic/X{scale}/{stem}x{scale}.png'] = png(
                    np.clip(np.round(small * 255), 0, 255).astype(np.uint8)
                )
            server.files[f'DIV2K_{split}_LR_bicubic_X{scale}.zip'] = make_zip(lr)


@pytest.mark.slow
@pytest.mark.parametrize(
    'snippet',
    [
        '.venv/bin/python scripts/prepare_div2k.py --root datasets/DIV2K --download',
        'prepare_div2k.py --root datasets/DIV2K --download --scales 2 3 4',
    ],
)
def test_prepare_div2k_with_its_download(tmp_path, snippet):
    """Both of the tutorial's commands, the archives from a server on this machine, 48 px sub-images."""
    server = RangeServer({})
    try:
        div2k_archives(server, (2, 3, 4))
        argv = words(documented('docs/tutorials/train-div2k.md', snippet)) + [
            '--base-url',
            server.url,
            '--crop-size',
            '48',
            '--step',
            '24',
        ]
        run(argv, project(tmp_path, None, datasets=False))
    finally:
        server.close()
    names = set(os.listdir(tmp_path / 'datasets' / 'DIV2K'))
    assert {'DIV2K_train_HR_sub.lmdb', 'DIV2K_valid_HR.lmdb', 'DIV2K_train_LR_bicubic_X4_sub.lmdb'} <= names


@pytest.mark.slow
def test_prepare_benchmarks_and_the_demo_set(shared, tmp_path):
    cwd = project(tmp_path, shared, datasets=False)
    run(words(documented('docs/tutorials/train-div2k.md', 'prepare_benchmarks.py'), IN=str(shared / 'in')), cwd)
    assert sorted(os.listdir(cwd / 'datasets' / 'Set5')) == ['GTmod12', 'LRbicx2', 'LRbicx3', 'LRbicx4']
    run(words(documented('docs/tutorials/train-div2k.md', 'make_demo_data.py')), cwd)
    assert (cwd / 'datasets' / 'demo' / 'DIV2K_train_HR_sub.lmdb').is_dir()


# ----------------------------------------------------------------------------- inference, export, conversion


@pytest.mark.slow
def test_own_folder(shared, tmp_path):
    """The tutorial's three commands for a folder of one's own (mixed formats), sizes and lengths shrunk."""
    cwd = project(tmp_path, shared)
    (cwd / 'my_photos').mkdir()
    cv2.imwrite(str(cwd / 'my_photos' / 'beach.jpg'), photo('astronaut', 130, 110))
    cv2.imwrite(str(cwd / 'my_photos' / 'cat.png'), cv2.cvtColor(photo('chelsea', 110, 103), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(cwd / 'my_photos' / 'cup.png'), photo('coffee', 101, 125).astype(np.uint16) * 257)
    cv2.imwrite(str(cwd / 'my_photos' / 'rocket.tif'), photo('rocket', 120, 140))
    prepare = words(documented('docs/tutorials/own-images.md', 'prepare_folder.py'))
    train = words(documented('docs/tutorials/own-images.md', '-opt datasets/my_photos'))
    upscale = words(documented('docs/tutorials/own-images.md', 'wdsr-inference -i my_lowres/'))
    run(prepare + ['--crop-size', '96', '--step', '48', '--valid', '1'], cwd)
    lengths = ['train:total_iter=2', 'val:val_freq=2', 'logger:print_freq=1', 'logger:save_checkpoint_freq=2']
    lengths += ['datasets:train:batch_size_per_gpu=2', 'datasets:train:num_worker_per_gpu=0', 'num_gpu=0']
    lengths += ['network_g:num_feat=8', 'network_g:num_block=1']
    run(train + ['--force_yml', *lengths], cwd)
    assert (trained(cwd, 'train_wdsr_b_x2_my_photos') / 'models' / 'net_g_best.pth').is_file()
    (cwd / 'my_lowres').mkdir()
    cv2.imwrite(str(cwd / 'my_lowres' / 'small.png'), photo('coffee', 30, 40))
    run(upscale, cwd)
    assert cv2.imread(str(cwd / 'my_upscaled' / 'small.png')).shape == (60, 80, 3)


@pytest.fixture
def weights(shared, tmp_path):
    """A folder with the deploy tutorial's checkpoint of the shipped WDSR-B x2, and two photographs in photos/."""
    cwd = project(tmp_path, shared)
    network_g = load_options(REPO / 'options' / 'train_wdsr_b_x2.yml')['network_g']
    checkpoint(cwd / 'experiments/train_wdsr_b_x2/models/net_g_latest.pth', network_g)
    (cwd / 'photos').mkdir()
    for name in ('astronaut', 'coffee'):
        cv2.imwrite(str(cwd / 'photos' / f'{name}.png'), photo(name, 30, 40))
    return cwd


@pytest.mark.slow
def test_inference_export_and_spandrel(weights):
    cwd, ckpt = weights, 'experiments/train_wdsr_b_x2/models/net_g_latest.pth'
    run(words(documented('docs/tutorials/deploy.md', 'scripts/inference_wdsr.py')), cwd)
    assert [cv2.imread(str(p)).shape for p in sorted((cwd / 'out').iterdir())] == [(60, 80, 3)] * 2
    run(words(documented('docs/tutorials/deploy.md', '--format onnx'), CKPT=ckpt), cwd)
    run(words(documented('docs/tutorials/deploy.md', '--format safetensors'), CKPT=ckpt), cwd)
    assert (cwd / 'wdsr_b_x2.onnx').stat().st_size > 0 and (cwd / 'wdsr_b_x2.safetensors').stat().st_size > 0
    shutil.copy(cwd / ckpt, cwd / 'net_g_latest.pth')
    result = run(words(documented('docs/tutorials/deploy.md', 'from spandrel import ModelLoader')), cwd)
    assert result.stdout == 'WDSR 2\n'  # spandrel's architecture (WDSR-A and -B), and the scale


@pytest.mark.slow
def test_converting_official_checkpoints(tmp_path):
    (tmp_path / 'wdsr_x2').mkdir()
    torch.save(official_2019(8, 2, 32, 2), tmp_path / 'wdsr_x2' / 'epoch_30.pth')
    run(words(documented('docs/tutorials/deploy.md', 'wdsr_x2/epoch_30.pth')), tmp_path)
    torch.save(official_2018('B', 8, 2, 24, 2, low=3), tmp_path / 'model_best.pt')
    run(words(documented('docs/tutorials/deploy.md', 'model_best.pt')), tmp_path)
    assert (tmp_path / 'wdsr_x2.pth').is_file() and (tmp_path / 'wdsr_b_x2.pth').is_file()


# ----------------------------------------------------------------------------- results, benchmarks, reproduction


@pytest.mark.slow
def test_compare_two_test_runs(shared, tmp_path):
    """The comparison page's command, on the shipped EDSR and WDSR-B x2 test files run with weights where they look."""
    cwd = project(tmp_path, shared)
    for name in ('test_edsr_x2', 'test_wdsr_b_x2'):
        opt = load_options(REPO / 'options' / f'{name}.yml')
        checkpoint(cwd / opt['path']['pretrain_network_g'], opt['network_g'])
        run([sys.executable, str(REPO / 'wdsr_basicsr' / 'test.py'), '-opt', f'options/{name}.yml'], cwd)
    text = documented('docs/how-to/compare-results.md', '.venv/bin/wdsr-compare results/test_edsr_x2')
    for optional in (False, True):
        run(words(text, optional=optional), cwd)
    assert json.loads((cwd / 'compare' / 'index.html').read_text().split('type="application/json">')[1].split('<')[0])[
        'models'
    ] == ['EDSR', 'WDSR-B']
    assert (cwd / 'compare' / 'figure.pdf').is_file()


SMALL_BENCH = {'lr_size': ['32', '32'], 'rounds': ['1']}


@pytest.mark.slow
@pytest.mark.parametrize(
    'doc, snippet, changes',
    [
        ('docs/how-to/benchmark.md', 'benchmark.py --opt options/train_wdsr_b_x2.yml', {}),
        ('docs/benchmarks.md', 'docs/bench_cpu_fp32.json', {}),
        ('docs/benchmarks.md', '--device cuda', {'device': ['cpu']}),
        ('docs/benchmarks.md', '--backends torch onnxruntime openvino', {}),
        ('docs/benchmarks.md', 'profile_cpu.py', {}),
    ],
)
def test_benchmark_commands(shared, tmp_path, doc, snippet, changes):
    """At 32x32 LR and one round (the GPU command on the CPU: CI has no GPU)."""
    cwd = project(tmp_path, shared)
    (cwd / 'docs').mkdir()
    argv = with_values(words(documented(doc, snippet)), **SMALL_BENCH, **changes)
    result = run(argv, cwd)
    if '--json' in argv:  # a row per option file (and backend)
        rows = json.loads((cwd / argv[argv.index('--json') + 1]).read_text())
        assert len(rows) >= sum(w.endswith('.yml') for w in argv)
    else:
        assert result.stdout.count('\n|') >= 2, result.stdout


@pytest.mark.slow
def test_benchmark_with_weights_on_the_five_sets(shared, tmp_path):
    cwd = project(tmp_path, shared)
    argv = words(documented('docs/how-to/benchmark.md', '--weights B2.pth'))
    files = [w for w in argv if w.endswith('.yml')]
    for opt_file, name in zip(files, argv[argv.index('--weights') + 1 :]):
        checkpoint(cwd / name, load_options(opt_file)['network_g'])
    run(with_values(argv, **SMALL_BENCH), cwd)
    table = (cwd / 'table.md').read_text()
    assert all(name in table for name in SETS)


@pytest.mark.slow
def test_memory_measurement(tmp_path):
    argv = words(documented('docs/benchmarks.md', 'measure_inference_memory.py'))
    result = run(with_values(argv, size=['256'], tile=['64'], work=[str(tmp_path / 'work')]), tmp_path)
    assert '| 256x256 RGB, 8 bit | x2 -> 512x512 | --tile 64 |' in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    'doc, snippet',
    [
        ('docs/how-to/benchmark.md', '--iters 300000 --patch 96'),
        ('docs/how-to/benchmark.md', 'reproduce_table1.py --iters 300 --out'),
        ('docs/benchmarks.md', '--mode table1'),
        ('docs/benchmarks.md', '--mode norm'),
    ],
)
def test_reproduction_commands(shared, tmp_path, doc, snippet):
    """2 iterations of 24 px patches, WDSR-B's 1-block entry of Table 1 (and the norm ablation as shipped): the
    tables, the figure and the derived option files as written."""
    cwd = project(tmp_path, shared)
    argv = with_values(words(documented(doc, snippet)), iters=['2'], patch=['24'], batch=['2'], workers=['0'])
    if 'norm' not in argv:
        argv = with_values(argv, blocks=['1'], nets=['wdsr_b'])
    if '--data' not in argv:  # the small LMDBs (the demo set built when missing: test_runs.py)
        argv = with_values(argv, data=['datasets/DIV2K'])
    run(argv, cwd, timeout=900)
    out = cwd / (argv[argv.index('--out') + 1] if '--out' in argv else 'docs/reproduce')
    if 'norm' not in argv:  # WDSR-B 1 x 64 at x2: 0.08 M as the paper counts, 84,250 raw (parameters.md)
        row = next(line for line in (out / 'table1.md').read_text().splitlines() if line.startswith('| wdsr_b | 1 |'))
        assert '| 0.08 M | 0.084 M |' in row and np.isfinite(float(row.split('|')[-3]))
        written = yaml.safe_load((cwd / 'experiments' / 'repro_options' / 'repro_table1_wdsr_b_b1_x2.yml').read_text())
        assert written['train']['total_iter'] == 2 and written['datasets']['train']['gt_size'] == 24
    if '--mode' not in argv or 'norm' in argv:
        norm = (out / 'norm.md').read_text()
        assert all(f'| {run} |' in norm for run in ('weight_lr1e-3', 'batch_lr1e-3', 'none_lr1e-3', 'batch_lr1e-4'))
        assert (out / 'norm_curves.png').read_bytes()[:4] == b'\x89PNG'
