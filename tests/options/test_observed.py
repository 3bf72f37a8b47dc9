"""Keys left to the run: watched where basicsr and any plugin read them, the unread named once after a start."""

import copy
import logging
import multiprocessing
import pickle
import sys

import pytest
import yaml

from helpers import OPTIONS, run, write_options
from wdsr_basicsr.options import load_options
from wdsr_basicsr.options.observed import UnreadReport, Watch, WatchedSection, watch
from wdsr_basicsr.runs import shrink_options


def watched_options():
    opt = WatchedSection({'name': 'x', 'train': {'lr': 1, 'unused': 2}, 'val': {'tile': 0}, 'top_unused': 3})
    record = watch(opt, [((), 'top_unused'), ((), 'name'), (('train',), 'lr'), (('train',), 'unused')])
    return opt, record


def unread_keys(record):
    return [line.split()[1] for line in record.unread()]


def test_reads_of_every_kind_are_marked_and_iteration_is_not_a_read():
    opt, record = watched_options()
    assert unread_keys(record) == ['top_unused', 'name', 'train:lr', 'train:unused']
    assert isinstance(opt['train'], WatchedSection) and type(dict.get(opt, 'val')) is dict  # only what holds keys
    list(opt.items()), list(opt['train'].items()), str(opt)  # dict2str's way: iterating reads nothing
    assert unread_keys(record) == ['top_unused', 'name', 'train:lr', 'train:unused']
    assert 'name' in opt and opt['train'].get('lr') == 1
    assert unread_keys(record) == ['top_unused', 'train:unused']
    opt['top_unused'] = 4  # a store is no read
    assert unread_keys(record) == ['top_unused', 'train:unused']
    assert record.unread()[0] == (
        'option top_unused has no effect: nothing read it (by the first iteration and validation).'
    )


def test_a_deep_copy_is_still_watched_and_dumps_and_pickles_are_plain():
    """basicsr's build_dataset deep-copies its section before the dataset reads it."""
    opt, record = watched_options()
    twin = copy.deepcopy(opt['train'])
    assert twin == {'lr': 1, 'unused': 2} and twin is not opt['train']
    twin['unused']
    assert unread_keys(record) == ['top_unused', 'name', 'train:lr']
    assert yaml.safe_load(yaml.safe_dump(opt)) == yaml.safe_load(yaml.dump(opt)) == dict(opt, train=dict(opt['train']))
    assert type(pickle.loads(pickle.dumps(opt['train']))) is dict


def _read_lr(section):
    section['lr']


def test_a_read_in_a_forked_worker_counts():
    """DataLoader workers read their dataset's section in another process (forked, as on Linux by default)."""
    opt, record = watched_options()
    worker = multiprocessing.get_context('fork').Process(target=_read_lr, args=(opt['train'],))
    worker.start()
    worker.join()
    assert worker.exitcode == 0 and unread_keys(record) == ['top_unused', 'name', 'train:unused']


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_the_report_waits_for_an_iteration_and_a_validation():
    record = Watch([((), 'x')])
    report = UnreadReport(record, ('iteration', 'validation'))
    step, validate = report.after(lambda i: i + 1, 'iteration'), report.after(lambda: 'done', 'validation')
    lines = Lines()
    logging.getLogger('basicsr').addHandler(lines)  # basicsr's root logger does not propagate
    try:
        assert step(1) == 2 and not lines.lines
        assert validate() == 'done' and lines.lines == [record.unread()[0]]
        step(2), validate()
        assert len(lines.lines) == 1  # once
    finally:
        logging.getLogger('basicsr').removeHandler(lines)


SIBLING_TRAIN = """import os.path as osp
from basicsr.models.sr_model import SRModel
from basicsr.train import train_pipeline
from basicsr.utils.registry import MODEL_REGISTRY


@MODEL_REGISTRY.register()
class UndeclaredSiblingModel(SRModel):  # a sibling plugin's model that declares nothing
    def init_training_settings(self):
        self.strength = self.opt['sibling_strength']
        super().init_training_settings()


if __name__ == '__main__':
    train_pipeline(osp.abspath(osp.join(__file__, osp.pardir)))
"""


@pytest.mark.slow
def test_a_sibling_run_names_what_nothing_read(lmdb_root, tmp_path):
    """Through basicsr's own parse_options as a sibling's train.py calls it: the shipped x2 recipe, shrunk."""
    opt = shrink_options(
        load_options(OPTIONS / 'train_wdsr_b_x2.yml'),
        data=str(lmdb_root),
        iters=2,
        gt_size=24,
        batch=2,
        workers=1,  # a worker process reads the training samples' keys
        network={'num_feat': 8, 'num_block': 1},
        validations=1,
    )
    opt.update(num_gpu=0, model_type='UndeclaredSiblingModel', sibling_strength=0.5, sibling_strenght=0.7)
    opt['train']['sibling_warmup'] = 3
    (tmp_path / 'sibling_train.py').write_text(SIBLING_TRAIN)
    options = write_options(tmp_path / 's.yml', opt)
    result = run([sys.executable, str(tmp_path / 'sibling_train.py'), '-opt', options], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / opt['name']).glob('train_*.log')).read_text()
    unread = sorted(
        line.split('option ')[1].split(' has no')[0] for line in log.splitlines() if 'nothing read it' in line
    )
    # what neither UndeclaredSiblingModel nor basicsr reads: the sibling's typo and unread key, and WDSRModel's own
    # switches that the shipped file holds (lines 14-17 and its val: tile, tile_pad), which another model ignores
    assert unread == [
        'amp_bf16',
        'sibling_strenght',
        'train:sibling_warmup',
        'use_amp',
        'use_channels_last',
        'use_compile',
        'val:tile',
        'val:tile_pad',
    ]
    assert log.count('sibling_strenght has no effect') == 1
