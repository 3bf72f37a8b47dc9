"""Checkpoint files: atomic writes and safe, explained reads."""
import contextlib
import json
import os
import pickle
import re
import tempfile
from os import path as osp

import torch


def strip_module_prefix(state):
    """A state dict without the ``module.`` prefix that (Distributed)DataParallel adds to every key."""
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


@contextlib.contextmanager
def atomic_path(path, suffix='.tmp'):
    """A temporary file beside ``path`` to write; renamed over ``path`` only when the block ends without error.

    A kill or an error at any instant leaves either the previous file or the
    new one, never a partial file under ``path``; the temporary file is removed
    on error. The file gets the mode ``open`` would give (0644 under the usual
    umask), not the 0600 of a temporary file.

    Args:
        path (str): Destination.
        suffix (str): End of the temporary name (``'.tmp.onnx'`` for a reader
            that goes by the extension). Default: '.tmp'.

    Yields:
        str: The temporary path.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def save_atomic(obj, path):
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path`` (:func:`atomic_path`).

    Args:
        obj: What to save.
        path (str): Destination.
    """
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def load_checkpoint(path, what='checkpoint'):
    """Load a checkpoint with ``weights_only=True`` on the CPU, or a ``.safetensors`` file.

    A ``.safetensors`` file (:mod:`wdsr_basicsr.export`, spandrel, traiNNer-redux)
    is returned as ``{'params': tensors}``, plus ``network_g`` where its metadata
    holds one (as JSON).

    Args:
        path (str): The file.
        what (str): How to name the file in errors, e.g. the option key
            ``'path:pretrain_network_g'``. Default: 'checkpoint'.

    Returns:
        dict: The loaded object.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RuntimeError: If it is truncated or not a torch file, or if it holds
            objects other than tensors and plain containers (a pickle that could
            run code is refused, not executed).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist.')
    if path.endswith('.safetensors'):
        return _load_safetensors(path, what)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r'unsupported GLOBAL (\S+)', str(error))
        if found:  # torch's own advice (weights_only=False) is not passed on: that would run the file's code
            raise RuntimeError(f'{what} {path} holds {found.group(1)}, which is not a tensor or a plain container; '
                               'it is refused, not loaded, because loading it could run code.') from None
        raise RuntimeError(f'{what} {path} is not a PyTorch checkpoint (its contents do not read as one).') from None
    except Exception as error:  # noqa: BLE001  (truncated zip, not a torch file, ...)
        raise RuntimeError(f'{what} {path} cannot be loaded ({type(error).__name__}: {error}); is it truncated or '
                           'not a checkpoint?') from None


def _load_safetensors(path, what):
    try:
        from safetensors import safe_open
    except ImportError as error:
        raise RuntimeError(f'{what} {path}: reading .safetensors needs the safetensors package '
                           '(pip install "wdsr-basicsr[export]").') from error
    try:
        with safe_open(path, framework='pt') as f:
            checkpoint = {'params': {key: f.get_tensor(key) for key in f.keys()}}
            metadata = f.metadata() or {}
        if 'network_g' in metadata:
            checkpoint['network_g'] = json.loads(metadata['network_g'])
    except Exception as error:  # noqa: BLE001  (truncated header, bad JSON, ...)
        raise RuntimeError(f'{what} {path} cannot be loaded as safetensors ({error}).') from error
    return checkpoint


#: The networks a checkpoint's (or an option file's) ``network_g`` may build for inference: this package's and
#: basicsr's plain single-image SR networks. Others (video, face, GAN parts) may read or download files when
#: constructed, and are refused.
INFERENCE_NETWORKS = ('WDSR_A', 'WDSR_B', 'RDN', 'EDSR', 'RCAN', 'MSRResNet', 'RRDBNet', 'SRVGGNetCompact_basicsr', 'SwinIR',
                      'ECBSR')


def _state_of(checkpoint):
    """The state dict of a checkpoint: ``params_ema``, else ``params``, else the checkpoint itself when it is one."""
    if not isinstance(checkpoint, dict):
        return None
    for key in ('params_ema', 'params'):
        if key in checkpoint:
            return strip_module_prefix(checkpoint[key])
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return strip_module_prefix(checkpoint)
    return None


def _described(state):
    """The ``network_g`` of a state dict of this package's networks that holds its settings buffers, else None.

    Only a state dict with every setting the shapes do not show (``mean``,
    ``img_range``, and WDSR's ``res_scale``) is described: an older one would be
    run with guessed settings.
    """
    from ..archs.describe import describe

    network_opt = describe(state)
    needed = ('mean', 'img_range') + (('res_scale', ) if network_opt and network_opt['type'] != 'RDN' else ())
    return network_opt if network_opt and all(k in state for k in needed) else None


def network_from_checkpoint(path, opt_path=None, fold=True):
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
    from basicsr.archs import build_network

    from ..archs import fold_weight_norm
    from ..options import load_options

    checkpoint = load_checkpoint(path, '--model_path')
    state = _state_of(checkpoint)
    if opt_path is not None:
        network_opt, source = load_options(opt_path).get('network_g'), f'--opt {opt_path}'
        if not network_opt:
            raise ValueError(f'--opt {opt_path} has no network_g section.')
    else:
        network_opt, source = checkpoint.get('network_g') if isinstance(checkpoint, dict) else None, \
            f'--model_path {path}'
        if not network_opt and state is not None:
            network_opt = _described(state)
        if not network_opt:
            raise ValueError(f'--model_path {path} does not say which network it holds (no network_g entry, and '
                             'not a state dict of this package that holds its settings): pass the option file it '
                             'was trained with as --opt.')
    if not isinstance(network_opt, dict) or network_opt.get('type') not in INFERENCE_NETWORKS:
        kind = network_opt.get('type') if isinstance(network_opt, dict) else network_opt
        raise ValueError(f'{source}: network_g type {kind!r} is refused: only {", ".join(INFERENCE_NETWORKS)} are '
                         'built from a checkpoint or option file for inference.')
    if state is None:
        raise ValueError(f'--model_path {path} has neither params_ema nor params, and is not a state dict.')
    if not all(isinstance(key, str) for key in state):
        raise ValueError(f'--model_path {path}: its state dict has keys that are not names, e.g. '
                         f'{next(k for k in state if not isinstance(k, str))!r}.')
    bad = [key for key, value in state.items()
           if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise ValueError(f'--model_path {path}: {", ".join(bad[:5])} hold NaN or infinite values; the network would '
                         'write black or meaningless images.')
    try:
        net = build_network(dict(network_opt))
    except TypeError as error:  # a keyword the architecture does not take
        raise ValueError(f'{source}: network_g {network_opt} does not fit {network_opt["type"]}: {error}') from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        raise ValueError(f'--model_path {path} does not fit network_g {network_opt}: '
                         f'{" ".join(line.strip() for line in first[:3])}') from None
    net.eval()
    return (fold_weight_norm(net) if fold else net), dict(network_opt)
