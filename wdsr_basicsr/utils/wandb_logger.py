"""basicsr's wandb logger (``logger: wandb: project, resume_id``) against the wandb that pip installs today.

basicsr 1.4.2 starts a run with ``wandb.util.generate_id()``, which wandb has since removed; and it imports wandb
only after ``experiments/`` and ``tb_logger/`` exist, so a missing wandb fails a run that has already made them.
"""

from __future__ import annotations

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only


def wandb_wanted(opt: dict) -> bool:
    """Whether basicsr's training pipeline starts wandb for ``opt``: a ``project`` and no ``debug`` in the name.

    Args:
        opt (dict): The options, with the final ``name`` (``--debug`` prefixes it).
    """
    wandb_opt = (opt.get('logger') or {}).get('wandb')
    return isinstance(wandb_opt, dict) and wandb_opt.get('project') is not None and 'debug' not in opt['name']


def wandb_fault(opt: dict) -> str | None:
    """What stops basicsr's wandb start for ``opt``, in one line, or None (also when wandb is not wanted).

    Args:
        opt (dict): Training options, with the final ``name``.
    """
    if not wandb_wanted(opt):
        return None
    if opt['logger'].get('use_tb_logger') is not True:
        return (
            'logger:wandb:project is set, which needs logger:use_tb_logger: true (basicsr sends wandb what it '
            'writes to tensorboard); turn it on, or set logger:wandb:project: ~.'
        )
    try:  # the import basicsr's start makes: absent or broken, it fails here, before any folder
        import wandb  # noqa: F401
    except ImportError:
        return (
            f'logger:wandb:project={opt["logger"]["wandb"]["project"]!r} needs wandb, which is not installed: '
            'pip install wandb (WANDB_MODE=offline needs no account), or set logger:wandb:project: ~.'
        )
    return None


@master_only
def init_wandb_logger(opt: dict) -> None:
    """Start the wandb run of basicsr's ``init_tb_loggers``: a new one, or ``logger:wandb:resume_id``'s again.

    wandb names a new run itself (its id is logged, to be given as ``resume_id`` when resuming); the run follows
    the tensorboard logs, as basicsr's does. ``WANDB_MODE`` and ``WANDB_DIR`` apply as wandb documents them.

    Args:
        opt (dict): Training options (``name``, ``logger:wandb``); the whole is the run's config.
    """
    import wandb

    logger = get_root_logger()
    wandb_opt = opt['logger']['wandb']
    resume_id = wandb_opt.get('resume_id')
    if resume_id:
        logger.warning(f'Resume wandb logger with id={resume_id}.')
    run = wandb.init(
        id=resume_id or None,
        resume='allow' if resume_id else None,
        name=opt['name'],
        config=dict(opt),
        project=wandb_opt['project'],
        sync_tensorboard=True,
    )
    logger.info(f'Use wandb logger with id={run.id}; project={wandb_opt["project"]}.')
