"""What the values of an option file must be: one table for what basicsr's pipeline and classes read.

Keys that a class of this package (or a sibling's) reads are judged by its declaration instead
(:mod:`wdsr_basicsr.declare`), ``dist_params`` by :data:`wdsr_basicsr.utils.dist.DIST_PARAMS`: one home per key.
Keywords of registered factories (networks, losses, metrics, optimizers, schedulers) are judged by their
signatures and declarations (:mod:`.check`); a rule here for a keyword adds a range the signature cannot say
(``crop_border`` >= 0, ``betas`` a pair). A rule's section may hold ``'*'`` (any dataset, any metric) or a
shell pattern (``optim_*``), and its key a shell pattern (``strict_load_*``).
"""

from __future__ import annotations

from ..declare import MAX_ITER, Rule, Section
from ..utils.dist import DIST_PARAMS

#: The largest seed: NumPy's seed is 32 bits (basicsr seeds it with manual_seed + rank).
MAX_SEED = 2**32 - 1


def _bools(section, *keys):
    return {(section, key): Rule('bool', null=True) for key in keys}


def _counts(section, low, *keys):
    return {(section, key): Rule('int', low, MAX_ITER) for key in keys}


def _frequencies(section, *keys):
    # basicsr only tests `current_iter % freq == 0`: any number from 1 up, a huge one (`!!float 5e10`) meaning never
    return {(section, key): Rule('count', 1) for key in keys}


DATASET = ('datasets', '*')
#: The rules, by (section, key).
RULES: dict[tuple[tuple[str, ...], str], Rule] = {
    ((), 'name'): Rule('str'),
    ((), 'model_type'): Rule('str'),
    ((), 'scale'): Rule('int', 1, 64),
    ((), 'num_gpu'): Rule('int', 0, 1024, words=('auto',)),
    ((), 'manual_seed'): Rule('int', 0, MAX_SEED, null=True),
    ((), 'datasets'): Rule('section'),
    ((), 'path'): Rule('section'),
    ((), 'train'): Rule('section'),
    ((), 'val'): Rule('section', null=True),
    ((), 'logger'): Rule('section'),
    ((), 'dist_params'): Rule('section', null=True),
    ((), 'network_*'): Rule('typed'),
    **_bools((), 'find_unused_parameters'),
    (('datasets',), '*'): Rule('section'),
    (DATASET, 'name'): Rule('str'),
    (DATASET, 'type'): Rule('str'),
    (DATASET, 'io_backend'): Rule('typed'),
    (DATASET, 'gt_size'): Rule('int', 1, 1 << 16),
    **_counts(DATASET, 0, 'num_worker_per_gpu'),
    **_counts(DATASET, 1, 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'num_prefetch_queue'),
    **_bools(DATASET, 'use_hflip', 'use_rot', 'use_shuffle', 'pin_memory', 'persistent_workers'),
    (DATASET, 'color'): Rule('str', null=True, words=('y',)),  # basicsr compares with 'y': `Y` would train RGB
    **_counts(('train',), 1, 'total_iter'),
    **_counts(('train',), -1, 'warmup_iter'),
    (('train',), 'ema_decay'): Rule('number', 0, 1, high_open=True),
    (('train',), 'optim_*'): Rule('typed'),
    (('train',), 'scheduler'): Rule('typed'),
    (('train',), '*_opt'): Rule('typed', null=True),  # basicsr builds a loss only when its section is given
    (('train', '*_opt'), 'loss_weight'): Rule('number', 0),  # a negative weight maximises the loss
    (('train', 'optim_*'), 'betas'): Rule('list', item=Rule('number', 0, 1, high_open=True), length=2),
    (('train', 'scheduler'), 'milestones'): Rule('list', item=Rule('int', 0, MAX_ITER)),
    (('train', 'scheduler'), 'periods'): Rule('list', item=Rule('int', 1, MAX_ITER)),
    (('train', 'scheduler'), 'restarts'): Rule('list', item=Rule('int', 0, MAX_ITER)),
    (('train', 'scheduler'), 'restart_weights'): Rule('list', item=Rule('number', 0)),
    **_frequencies(('val',), 'val_freq'),
    **_bools(('val',), 'save_img', 'pbar'),
    (('val',), 'metrics'): Rule('section', null=True),
    (('val', 'metrics'), '*'): Rule('typed'),
    (('val', 'metrics', '*'), 'crop_border'): Rule('int', 0, 1 << 16),
    **_frequencies(('logger',), 'print_freq', 'save_checkpoint_freq'),
    **_bools(('logger',), 'use_tb_logger'),
    (('logger',), 'wandb'): Rule('section', null=True),
    **_bools(('path',), 'strict_load_*'),
    **{(('dist_params',), key): rule for key, rule in DIST_PARAMS.items()},
}
#: What this package's own pipeline reads beside basicsr's (:func:`.parse.derive_options`), by section.
#: (:func:`.parse.parse_options` stands in for basicsr's own, and gives ``scale`` to each dataset.)
PIPELINE_KEYS: dict[Section, tuple[str, ...]] = {
    (): ('scale', 'dist_params'),
    ('path',): ('experiments_root', 'results_root'),
}
#: The sections whose keys are judged by what the file's classes read (the rest by signatures; dist_params by
#: :data:`wdsr_basicsr.utils.dist.DIST_PARAMS`).
KEYED_SECTIONS = ((), DATASET, ('train',), ('val',), ('logger',), ('logger', 'wandb'), ('path',))
