"""What the values of an option file must be: one table for what basicsr's pipeline and this package read.

Keywords of registered factories (networks, losses, metrics, optimizers, schedulers) are judged by their
signatures instead (:mod:`.check`); a rule here for a keyword adds a range the signature cannot say
(``crop_border`` >= 0). A rule's section may hold ``'*'`` (any dataset, any metric) and its key a shell
pattern (``strict_load_*``).
"""

from __future__ import annotations

from typing import NamedTuple

#: The largest iteration count: basicsr's loggers and torch's schedulers keep iterations in 32-bit fields.
MAX_ITER = 2**31 - 1
#: The largest seed: NumPy's seed is 32 bits (basicsr seeds it with manual_seed + rank).
MAX_SEED = 2**32 - 1


class Rule(NamedTuple):
    """What one option must be.

    Attributes:
        kind (str): ``'int'``, ``'number'``, ``'count'`` (a number; an integral one made an int), ``'bool'``,
            ``'str'``, ``'list'`` (of ``item``), ``'section'`` (a mapping) or ``'typed'`` (a mapping with a
            ``type``, built by a registry or a model).
        low, high (float | None): The range, both ends included (``high_open``: ``high`` excluded).
        null (bool): Whether null means something (a random seed, no loss, torch's default timeout).
        words (tuple[str, ...]): Strings accepted beside the kind (``num_gpu: auto``).
        item (Rule | None): The rule of each element of a list.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    null: bool = False
    words: tuple[str, ...] = ()
    item: Rule | None = None
    high_open: bool = False


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
    **_bools((), 'use_amp', 'amp_bf16', 'use_channels_last', 'use_compile', 'find_unused_parameters'),
    (('datasets',), '*'): Rule('section'),
    (DATASET, 'name'): Rule('str'),
    (DATASET, 'type'): Rule('str'),
    (DATASET, 'io_backend'): Rule('typed'),
    (DATASET, 'gt_size'): Rule('int', 1, 1 << 16),
    **_counts(DATASET, 0, 'num_worker_per_gpu'),
    **_counts(DATASET, 1, 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'num_prefetch_queue'),
    **_bools(DATASET, 'use_hflip', 'use_rot', 'use_shuffle', 'pin_memory', 'persistent_workers', 'cache_data'),
    **_counts(('train',), 1, 'total_iter'),
    **_counts(('train',), -1, 'warmup_iter'),
    (('train',), 'ema_decay'): Rule('number', 0, 1, high_open=True),
    (('train',), 'optim_*'): Rule('typed'),
    (('train',), 'scheduler'): Rule('typed'),
    (('train',), '*_opt'): Rule('typed', null=True),  # basicsr builds a loss only when its section is given
    (('train', 'scheduler'), 'milestones'): Rule('list', item=Rule('int', 0, MAX_ITER)),
    (('train', 'scheduler'), 'periods'): Rule('list', item=Rule('int', 1, MAX_ITER)),
    (('train', 'scheduler'), 'restarts'): Rule('list', item=Rule('int', 0, MAX_ITER)),
    (('train', 'scheduler'), 'restart_weights'): Rule('list', item=Rule('number', 0)),
    **_frequencies(('val',), 'val_freq'),
    **_counts(('val',), 0, 'tile', 'tile_pad'),
    **_bools(('val',), 'save_img', 'pbar', 'self_ensemble'),
    (('val',), 'metrics'): Rule('section', null=True),
    (('val', 'metrics'), '*'): Rule('typed'),
    (('val', 'metrics', '*'), 'crop_border'): Rule('int', 0, 1 << 16),
    **_frequencies(('logger',), 'print_freq', 'save_checkpoint_freq'),
    **_bools(('logger',), 'use_tb_logger'),
    (('logger',), 'wandb'): Rule('section', null=True),
    **_bools(('path',), 'strict_load_*'),
    (('dist_params',), 'port'): Rule('int', 1, 65535),
    (('dist_params',), 'timeout_min'): Rule('number', 0, None, null=True),
}
#: The sections whose keys are judged by what the file's classes read (the rest by signatures; dist_params by
#: :data:`wdsr_basicsr.utils.dist.DIST_PARAMS`).
KEYED_SECTIONS = ((), DATASET, ('train',), ('val',), ('logger',), ('logger', 'wandb'), ('path',))
