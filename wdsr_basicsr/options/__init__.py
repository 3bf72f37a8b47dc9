"""The option loader of every training and test entry: ours, basicsr's own, a sibling plugin's.

It replaces basicsr's ``parse_options`` (:mod:`wdsr_basicsr.compat` points
basicsr's pipelines and ``basicsr.utils.options`` at :func:`parse_options`)
and keeps the rest of basicsr's parsing, with these differences:

* YAML is read with a safe loader: mappings and ``!!float`` as in basicsr, but
  a ``!!python/...`` tag is refused with the file, line and tag, never run.
* ``--force_yml key:sub=value`` walks the keys as plain dictionary keys and
  reads the value as a YAML scalar or list; nothing is evaluated.
* ``--local-rank`` (what ``python -m torch.distributed.launch`` passes) and
  ``--local_rank`` are both accepted.
* The distributed start takes ``dist_params`` (``backend``, ``port``,
  ``timeout_min``) for every launcher, after :func:`~wdsr_basicsr.utils.dist.check_launch`
  has refused launcher and device combinations that cannot work.
* Before any work, :func:`check_options` judges every key in its section by what is known to read it there
  (basicsr's committed table, the ``option_keys`` that classes declare: :mod:`wdsr_basicsr.declare`) and
  every value by its one rule, and refuses only what it knows cannot work (so another plugin's files keep
  meaning what they meant); :func:`check_data` then checks each dataset against its data. Keys that a class
  which declares nothing may read are left to the run, which names those nothing read (:mod:`.observed`).
* A run rooted at an installed site directory (``python -m basicsr.train``)
  writes under the current directory instead (:func:`derive_options`).

Modules: :mod:`.errors` (:class:`OptionError`), :mod:`.reading` (safe YAML, ``--force_yml``),
:mod:`.vocabulary` (what the registered classes read, by section, and take), :mod:`.rules` (what values must
be), :mod:`.values` (values by their rules), :mod:`.meanings` (what basicsr's keys mean), :mod:`.reference`
(the option reference and JSON schema, made from all of these), :mod:`.observed` (the keys left to the run),
:mod:`.source_reads` (development only: the table from basicsr's source), :mod:`.check`
(:func:`check_options`, :func:`check_name`), :mod:`.parse` (:func:`parse_options`, :func:`derive_options`,
:func:`check_data`, :func:`run_pipeline`).
"""

from .check import check_name, check_options
from .errors import OptionError
from .parse import derive_options, in_process_options, parse_options, run_pipeline
from .reading import apply_force_yml, load_options

__all__ = [
    'OptionError',
    'apply_force_yml',
    'check_name',
    'check_options',
    'derive_options',
    'in_process_options',
    'load_options',
    'parse_options',
    'run_pipeline',
]
