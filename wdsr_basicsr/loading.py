"""Checkpoints and descriptions to runnable networks: the one place inference, export, conversion, spandrel and
the benchmark build a network from what a file says.
"""

from __future__ import annotations

import torch
from basicsr.archs import build_network
from torch import nn

from .archs import fold_weight_norm
from .archs.describe import describe
from .options import load_options
from .utils.checkpoint import load_checkpoint, strip_prefixes


def build_described(network_opt: dict, source: str = 'network_g') -> nn.Module:
    """Build the network a ``network_g`` description names, through basicsr's registry.

    Args:
        network_opt (dict): ``{'type': ..., **keywords}``; not modified.
        source (str): How to name the description in errors. Default: 'network_g'.

    Returns:
        nn.Module: The network, freshly initialised.

    Raises:
        ValueError: If a keyword does not fit the architecture (naming it).
    """
    try:
        return build_network(dict(network_opt))
    except TypeError as error:  # a keyword the architecture does not take
        raise ValueError(f'{source}: network_g {network_opt} does not fit {network_opt["type"]}: {error}') from None


#: The networks a checkpoint's (or an option file's) ``network_g`` may build for inference: this package's and
#: basicsr's plain single-image SR networks. Others (video, face, GAN parts) may read or download files when
#: constructed, and are refused.
INFERENCE_NETWORKS = (
    'WDSR_A',
    'WDSR_B',
    'RDN',
    'EDSR',
    'RCAN',
    'MSRResNet',
    'RRDBNet',
    'SRVGGNetCompact_basicsr',
    'SwinIR',
    'ECBSR',
)


def _state_of(checkpoint):
    """The state dict of a checkpoint: ``params_ema``, else ``params``, else the checkpoint itself when it is one."""
    if not isinstance(checkpoint, dict):
        return None
    for key in ('params_ema', 'params'):
        if key in checkpoint:
            return strip_prefixes(checkpoint[key])
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return strip_prefixes(checkpoint)
    return None


def _described(state):
    """The ``network_g`` of a state dict of this package's networks that holds its settings buffers, else None.

    Only a state dict with every setting the shapes do not show (``mean``,
    ``img_range``, and WDSR's ``res_scale``) is described: an older one would be
    run with guessed settings.
    """
    network_opt = describe(state)
    needed = ('mean', 'img_range') + (('res_scale',) if network_opt and network_opt['type'] != 'RDN' else ())
    return network_opt if network_opt and all(k in state for k in needed) else None


def network_from_checkpoint(path: str, opt_path: str | None = None, fold: bool = True) -> tuple[nn.Module, dict]:
    """Build the network a checkpoint holds, ready for inference.

    The architecture comes from the checkpoint's ``network_g`` entry (written by
    :class:`~wdsr_basicsr.models.WDSRModel`), or from the ``network_g`` section
    of the option file ``opt_path`` for checkpoints without one; ``opt_path``
    wins when both are there. A bare state dict of WDSR or RDN that holds its
    settings buffers (a spandrel-style file) is described from its tensors.
    ``params_ema`` is preferred over ``params``; a checkpoint that is a bare
    state dict is one too.

    Args:
        path (str): Checkpoint file.
        opt_path (str | None): BasicSR option file. Default: None.
        fold (bool): Fold weight norm into plain convs. Default: True.

    Returns:
        tuple[nn.Module, dict]: The network in eval mode on the CPU, and its
        ``network_g`` options.

    Raises:
        ValueError: If neither the checkpoint nor ``opt_path`` says what the
            network is, if that is not one of :data:`INFERENCE_NETWORKS`, or if
            the checkpoint holds no parameters.
    """
    checkpoint = load_checkpoint(path, '--model_path')
    state = _state_of(checkpoint)
    network_opt, source = _network_options(checkpoint, state, path, opt_path)
    _check_state(state, path)
    net = build_described(network_opt, source)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ValueError(
            f'--model_path {path} does not fit network_g {network_opt}: {" ".join(line.strip() for line in first[:3])}'
        ) from None
    net.eval()
    return (fold_weight_norm(net) if fold else net), dict(network_opt)


def _network_options(checkpoint, state, path, opt_path):
    """The ``network_g`` options to build (the option file's, the checkpoint's, or read off the state) and where
    they come from; only :data:`INFERENCE_NETWORKS` are built."""
    if opt_path is not None:
        network_opt, source = load_options(opt_path).get('network_g'), f'--opt {opt_path}'
        if not network_opt:
            raise ValueError(f'--opt {opt_path} has no network_g section.')
    else:
        network_opt, source = (
            checkpoint.get('network_g') if isinstance(checkpoint, dict) else None,
            f'--model_path {path}',
        )
        if not network_opt and state is not None:
            network_opt = _described(state)
        if not network_opt:
            raise ValueError(
                f'--model_path {path} does not say which network it holds (no network_g entry, and '
                'not a state dict of this package that holds its settings): pass the option file it '
                'was trained with as --opt.'
            )
    if not isinstance(network_opt, dict) or network_opt.get('type') not in INFERENCE_NETWORKS:
        kind = network_opt.get('type') if isinstance(network_opt, dict) else network_opt
        raise ValueError(
            f'{source}: network_g type {kind!r} is refused: only {", ".join(INFERENCE_NETWORKS)} are '
            'built from a checkpoint or option file for inference.'
        )
    return network_opt, source


def _check_state(state, path):
    """Refuse a checkpoint without parameters, with keys that are not names, or with NaN / infinite values."""
    if state is None:
        raise ValueError(f'--model_path {path} has neither params_ema nor params, and is not a state dict.')
    if not all(isinstance(key, str) for key in state):
        raise ValueError(
            f'--model_path {path}: its state dict has keys that are not names, e.g. '
            f'{next(k for k in state if not isinstance(k, str))!r}.'
        )
    bad = [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise ValueError(
            f'--model_path {path}: {", ".join(bad[:5])} hold NaN or infinite values; the network would '
            'write black or meaningless images.'
        )
