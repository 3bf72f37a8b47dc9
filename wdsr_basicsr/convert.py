"""Convert the checkpoints the WDSR authors released into this package's format.

Usage: python scripts/convert_checkpoint.py SRC DST [--release 2018-11|2019] [--res_scale R] [--rgb_mean R G B]
(or ``wdsr-convert``).

Understood layouts (found from the keys; ``module.`` and ``model.`` prefixes are stripped):

* ``2018``: the NTIRE 2018 code (``wdsr_a.py``/``wdsr_b.py`` inside EDSR-PyTorch), a state dict with
  ``head.0``, ``body.{i}.body.{0,2}`` (WDSR-A) or ``body.{i}.body.{0,2,3}`` (WDSR-B), ``tail.0``, ``skip.0``,
  each conv as ``weight_g``/``weight_v``/``bias``. Inputs in [0, 255] are normalised as
  ``(x - 255 * mean) / 127.5`` with the DIV2K mean: ``img_range=2.0``, ``rgb_mean=DIV2K`` here.
* ``2019``: the reloaded trainer, ``{'model_state_dict': ...}`` with ``body.0`` (head conv),
  ``body.{1..N}.body.{0,2}`` (blocks), ``body.{N+1}`` (tail conv) and ``skip.0``. Inputs in [0, 1] minus a
  scalar 0.5: ``img_range=1.0``, ``rgb_mean=(0.5, 0.5, 0.5)`` here.

The two revisions of the 2018 code store tensors of the same names and shapes, so a 2018 checkpoint needs
``--release``: ``2018-11`` (the repository since 25 Nov 2018: every conv zero-padded, as here) is converted;
``2018-08`` (the first release: head, tail and skip convs unpadded on a replication-padded input) is refused,
because these weights in this network would compute a different function near every border. TensorFlow and
Keras checkpoints (ychfan/tf_estimator_barebone, krasserm/wdsr) are refused with the reason too.

DST is ``{'params': ..., 'network_g': {...}}`` with the hyper-parameters inferred from the tensor shapes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from os import path as osp

import torch

from .archs.arch_util import DIV2K_RGB_MEAN
from .archs.describe import describe_wdsr
from .archs.wdsr_arch import WDSR_IMG_RANGE
from .loading import build_described
from .utils.checkpoint import load_checkpoint, save_atomic, strip_prefixes
from .utils.messages import show_messages

#: What ``--release`` may say, and what each is.
RELEASES = {
    '2018-11': 'JiahuiYu/wdsr_ntire2018 since commits 7bd0011/07cf0ce (25 Nov 2018): every conv zero-padded',
    '2018-08': 'JiahuiYu/wdsr_ntire2018 of August 2018: head, tail and skip convs unpadded, input replication-padded',
    '2019': 'ychfan/wdsr (WDSR reloaded, 2020 release)',
}
AUGUST_2018 = (
    'the August 2018 code runs its head, tail and skip convs without padding on an input padded by 2 px '
    'of replicated border (at test time only), while this package zero-pads every conv, as the code has '
    'since 25 Nov 2018. The tensors have the same shapes, but in this network they would compute a '
    'different function near every border, so the checkpoint is not converted. Fine-tune it in the '
    'later code (or with this package) and convert that.'
)
TENSORFLOW = (
    "a {kind}: this tool reads the PyTorch checkpoints of the authors' PyTorch code only. The TensorFlow "
    'and Keras WDSR (ychfan/tf_estimator_barebone, krasserm/wdsr) store their variables under their own '
    "names, in HWIO kernel layout, and need TensorFlow to read; use the 2019 PyTorch release's weights "
    '(ychfan/wdsr), which this tool converts.'
)

LAYOUTS = (
    '2018 NTIRE code (head.0 / body.i.body.j / tail.0 / skip.0, weight_g and weight_v)',
    "2019 reloaded trainer ({'model_state_dict': ...} with body.0 ... body.N+1 and skip.0)",
)
WN_SUFFIXES = {
    'weight_g': 'parametrizations.weight.original0',
    'weight_v': 'parametrizations.weight.original1',
    'bias': 'bias',
}


class ConversionError(ValueError):
    """SRC is not a checkpoint in a layout this module understands."""


class RefusedError(ValueError):
    """SRC is a WDSR checkpoint whose conversion would give a different network; the message says why."""


def refuse_tensorflow(path: str) -> None:
    """Raise :class:`RefusedError` if ``path`` is a TensorFlow or Keras checkpoint (by name, or HDF5 magic)."""
    names = os.listdir(path) if osp.isdir(path) else [osp.basename(path)]
    if any(
        n == 'saved_model.pb'
        or n == 'checkpoint'
        or n.endswith(('.index', '.meta'))
        or re.search(r'\.data-\d+-of-\d+$', n)
        for n in names
    ):
        raise RefusedError(TENSORFLOW.format(kind='TensorFlow checkpoint'))
    if osp.isfile(path):
        with open(path, 'rb') as f:
            if f.read(8) == b'\x89HDF\r\n\x1a\n':
                raise RefusedError(TENSORFLOW.format(kind='Keras/HDF5 file'))


def _strip_prefixes(state):
    if not isinstance(state, dict):
        raise ConversionError(f'its state dict is a {type(state).__name__}, not a mapping of names to tensors')
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ConversionError(
                f'its state dict maps {key!r} to a {type(value).__name__}; a state dict maps names to tensors'
            )
    return strip_prefixes(state, ('module.', 'model.'))


def _conv_groups(state):
    """Map 'conv name' -> {'weight_g': t, 'weight_v': t, 'bias': t} for weight-normalised convs."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        name, _, leaf = key.rpartition('.')
        if leaf not in WN_SUFFIXES:
            raise ConversionError(f'unexpected tensor {key!r}')
        groups.setdefault(name, {})[leaf] = value
    for name, tensors in groups.items():
        if set(tensors) != set(WN_SUFFIXES):
            raise ConversionError(f'conv {name!r} lacks {sorted(set(WN_SUFFIXES) - set(tensors))}')
    return groups


def _map_2018(groups):
    """Our conv names for the 2018 layout."""
    blocks = sorted({int(m.group(1)) for n in groups for m in [re.fullmatch(r'body\.(\d+)\.body\.\d+', n)] if m})
    inner = {n.rsplit('.', 1)[1] for n in groups if n.startswith('body.')}
    kind = 'B' if '3' in inner else 'A'
    mapping = {'head.0': 'head', 'tail.0': 'tail', 'skip.0': 'skip'}
    for i in blocks:
        for j in ('0', '2', '3') if kind == 'B' else ('0', '2'):
            mapping[f'body.{i}.body.{j}'] = f'body.{i}.body.{j}'
    return mapping


def _map_2019(groups):
    """Our conv names for the 2019 layout (WDSR-A style blocks)."""
    top = sorted(int(n.split('.')[1]) for n in groups if re.fullmatch(r'body\.\d+', n))
    if len(top) != 2 or top[0] != 0:
        raise ConversionError('expected body.0 (head) and body.N+1 (tail) convs')
    num_block = top[1] - 1
    mapping = {'body.0': 'head', f'body.{num_block + 1}': 'tail', 'skip.0': 'skip'}
    for i in range(num_block):
        for j in ('0', '2'):
            mapping[f'body.{i + 1}.body.{j}'] = f'body.{i}.body.{j}'
    return mapping


def detect(checkpoint: object) -> tuple[str, dict]:
    """Find the layout of a loaded checkpoint.

    Returns:
        tuple[str, dict]: '2018' or '2019', and the state dict with prefixes stripped.

    Raises:
        ConversionError: If it is neither.
    """
    if not isinstance(checkpoint, dict):
        raise ConversionError('not a dict')
    if 'model_state_dict' in checkpoint:
        return '2019', _strip_prefixes(checkpoint['model_state_dict'])
    if any(isinstance(key, str) and key.endswith('head.0.weight_v') for key in checkpoint):
        state = _strip_prefixes(checkpoint)
        if 'tail.0.weight_v' in state:
            return '2018', state
    raise ConversionError('no model_state_dict entry and no head.0/tail.0 weight-normalised convs')


def check_release(layout: str, release: str | None) -> None:
    """Raise unless ``release`` (``--release``, or None) may be converted as ``layout``."""
    if release is not None and release not in RELEASES:
        raise ValueError(f'release={release!r} is not one of {sorted(RELEASES)}.')
    if layout == '2019':
        if release not in (None, '2019'):
            raise RefusedError(f'--release {release} was given, but the file has the 2019 layout ({RELEASES["2019"]}).')
        return
    if release is None:
        raise RefusedError(
            '2018 layout: its two code revisions store the same tensors, so say which trained it: '
            f'--release 2018-11 ({RELEASES["2018-11"]}) or --release 2018-08 ({RELEASES["2018-08"]}).'
        )
    if release == '2019':
        raise RefusedError(
            '--release 2019 was given, but the file has the 2018 layout (head.0, body.i.body.j, tail.0).'
        )
    if release == '2018-08':
        raise RefusedError(AUGUST_2018)


def convert(
    checkpoint: dict, res_scale: float = 1.0, rgb_mean: list[float] | None = None, release: str | None = None
) -> dict:
    """Convert a loaded official checkpoint.

    Args:
        checkpoint (dict): What ``torch.load`` returned for the official file.
        res_scale (float): Residual scale of the 2018 code's blocks. Default: 1.0.
        rgb_mean (list[float] | None): Per-channel mean in [0, 1] the code
            was run with (2018: ``--r_mean --g_mean --b_mean``; 2019: its
            scalar ``image_mean``, repeated). Default: None, the code's
            default (2018: the DIV2K mean; 2019: 0.5).
        release (str | None): Which code trained it, one of :data:`RELEASES`;
            required for the 2018 layout. Default: None.

    Returns:
        dict: ``{'params': state dict, 'network_g': options}`` for this package.

    Raises:
        ConversionError: Not a layout this module understands.
        RefusedError: A layout whose conversion would change the network, or
            a ``release`` that does not fit the layout.
    """
    layout, state = detect(checkpoint)
    check_release(layout, release)
    groups = _conv_groups(state)
    mapping = _map_2018(groups) if layout == '2018' else _map_2019(groups)
    if set(mapping) != set(groups):
        raise ConversionError(
            f'unexpected convs {sorted(set(groups) - set(mapping))[:5]} or missing '
            f'{sorted(set(mapping) - set(groups))[:5]}'
        )
    params = {
        f'{ours}.{WN_SUFFIXES[leaf]}': tensor
        for theirs, ours in mapping.items()
        for leaf, tensor in groups[theirs].items()
    }
    network = describe_wdsr(params)
    if network is None:
        raise ConversionError('its convs do not have the shapes of a WDSR network (a damaged or cut file?)')
    network.update(
        res_scale=res_scale if layout == '2018' else 1.0,
        img_range=WDSR_IMG_RANGE if layout == '2018' else 1.0,
        rgb_mean=[float(m) for m in rgb_mean]
        if rgb_mean is not None
        else list(DIV2K_RGB_MEAN)
        if layout == '2018'
        else [0.5] * network['num_in_ch'],
    )
    net = build_described(network)
    try:
        net.load_state_dict(params, strict=True)  # shapes and names must fit the inferred network
    except RuntimeError as error:
        raise ConversionError(
            f'its tensors do not fit the {network["type"]} their shapes describe ({" ".join(str(error).split())[:300]})'
        ) from None
    return {'params': net.state_dict(), 'network_g': network}


def check_destination(src: str, dst: str) -> None:
    """Refuse a DST that is a folder or SRC itself (the official file must never be written over).

    Raises:
        ValueError: Naming DST.
    """
    if osp.isdir(dst):
        raise ValueError(f'DST {dst} is a folder; it names the file to write.')
    if osp.exists(dst) and osp.exists(src) and osp.samefile(src, dst):
        raise ValueError(f'DST {dst} is SRC itself; the official checkpoint is never written over: choose another DST.')


def main(argv=None):
    show_messages()
    parser = argparse.ArgumentParser(description='Convert an official WDSR checkpoint (2018 or 2019) to ours.')
    parser.add_argument('src', help='Official checkpoint.')
    parser.add_argument('dst', help='Output checkpoint.')
    parser.add_argument(
        '--release',
        choices=sorted(RELEASES),
        default=None,
        help='Which code trained SRC; required for the 2018 layout (2018-08 is refused). '
        + '; '.join(f'{k}: {v}' for k, v in RELEASES.items()),
    )
    parser.add_argument('--res_scale', type=float, default=1.0, help='Residual scale of the 2018 code. Default: 1.')
    parser.add_argument(
        '--rgb_mean',
        type=float,
        nargs='+',
        default=None,
        metavar='MEAN',
        help='Per-channel mean in [0, 1] the code ran with (2018: --r_mean --g_mean --b_mean; '
        '2019: image_mean, once per channel). Default: DIV2K mean (2018), 0.5 (2019).',
    )
    args = parser.parse_args(argv)
    try:
        check_destination(args.src, args.dst)
        refuse_tensorflow(args.src)
        converted = convert(load_checkpoint(args.src, 'SRC'), args.res_scale, args.rgb_mean, args.release)
    except RefusedError as error:
        print(f'error: {args.src} is not converted: {error}', file=sys.stderr)
        return 1
    except ConversionError as error:
        print(
            f'error: {args.src} is not a WDSR checkpoint this tool understands ({error}). Understood layouts: '
            f'{"; ".join(LAYOUTS)}.',
            file=sys.stderr,
        )
        return 1
    except (OSError, RuntimeError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    save_atomic(converted, args.dst)
    print(f'wrote {args.dst}: {converted["network_g"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
