"""Forward passes for evaluation: tiles for large images, x8 self-ensemble, autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch


def tile_boxes(h: int, w: int, tile: int, tile_pad: int) -> Iterator:
    """The tiles of an ``h`` x ``w`` image, each with its context.

    Args:
        h (int): Image height.
        w (int): Image width.
        tile (int): Tile size; 0 or None gives one tile, the whole image.
        tile_pad (int): Context on every side of a tile (less at the border).

    Yields:
        tuple[tuple[int], tuple[int]]: ``(top, bottom, left, right)``, the area
        the tile owns, and ``(y0, y1, x0, x1)``, that area with its context.
    """
    tile = tile or max(h, w)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            yield (
                (top, bottom, left, right),
                (max(top - tile_pad, 0), min(bottom + tile_pad, h), max(left - tile_pad, 0), min(right + tile_pad, w)),
            )


def tile_outputs(
    run: Callable, read: Callable, h: int, w: int, scale: int, tile: int, tile_pad: int
) -> Iterator[tuple[tuple[int, int, int, int], torch.Tensor]]:
    """Run ``run`` on each tile with its context; yield the output of each tile's own area and where it goes.

    Args:
        run (callable): Maps an input (N, C, h, w) to (N, C', h * scale, w * scale).
        read (callable): ``read(y0, y1, x0, x1)``: the input of that area, as ``run`` takes it.
        h, w (int): The input's size.
        scale (int): Upscaling factor of ``run``.
        tile (int): Tile size in input pixels; 0 or None: the whole image as one tile.
        tile_pad (int): Context around each tile, in input pixels.

    Yields:
        tuple: ``(top, bottom, left, right)`` in output pixels, and the output of that area (N, C', ...).
    """
    for (top, bottom, left, right), (y0, y1, x0, x1) in tile_boxes(h, w, tile, tile_pad if tile else 0):
        result = run(read(y0, y1, x0, x1))
        own = result[..., (top - y0) * scale : (bottom - y0) * scale, (left - x0) * scale : (right - x0) * scale]
        yield (top * scale, bottom * scale, left * scale, right * scale), own


def tiled_forward(net: Callable, x: torch.Tensor, scale: int, tile: int, tile_pad: int) -> torch.Tensor:
    """Run ``net`` on overlapping tiles of ``x`` and stitch the outputs (:func:`tile_outputs`).

    Each tile of ``tile`` x ``tile`` input pixels is run with ``tile_pad``
    pixels of context on every side (less at the image border), and only the
    output of its own area is kept. When ``tile_pad`` covers the network's
    receptive-field radius, the result equals the whole-image forward up to
    floating-point rounding.

    Args:
        net (callable): Maps (N, C, h, w) to (N, C', h * scale, w * scale).
        x (Tensor): Input, (N, C, H, W).
        scale (int): Upscaling factor of ``net``.
        tile (int): Tile size in input pixels; 0 or None runs the whole image.
        tile_pad (int): Context around each tile, in input pixels.

    Returns:
        Tensor: (N, C', H * scale, W * scale).
    """
    if not tile:
        return net(x)
    n, _, h, w = x.shape
    out = None
    for (top, bottom, left, right), own in tile_outputs(
        net, lambda y0, y1, x0, x1: x[:, :, y0:y1, x0:x1], h, w, scale, tile, tile_pad
    ):
        if out is None:
            out = own.new_zeros(n, own.shape[1], h * scale, w * scale)
        out[:, :, top:bottom, left:right] = own
    assert out is not None  # an image has at least one tile
    return out


def ensemble_forward(forward: Callable, x: torch.Tensor) -> torch.Tensor:
    """x8 self-ensemble: average ``forward`` over the 8 flips/transpositions of ``x``, each undone.

    Args:
        forward (callable): Maps an input batch to its output batch.
        x (Tensor): Input, (N, C, H, W).

    Returns:
        Tensor: The mean of the 8 aligned outputs.
    """
    total: torch.Tensor | None = None
    for transpose in (False, True):
        for flip_dims in ((), (-1,), (-2,), (-2, -1)):
            t = x.transpose(-2, -1) if transpose else x
            t = t.flip(flip_dims) if flip_dims else t
            y = forward(t)
            y = y.flip(flip_dims) if flip_dims else y
            y = y.transpose(-2, -1) if transpose else y
            total = y.float() if total is None else total + y.float()
    assert total is not None
    return total / 8


def sr_forward(
    net: Callable,
    x: torch.Tensor,
    scale: int,
    *,
    tile: int = 0,
    tile_pad: int = 10,
    ensemble: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Evaluation forward with optional tiles, self-ensemble and autocast.

    Args:
        net (nn.Module): The network, already in eval mode.
        x (Tensor): Input, (N, C, H, W), in [0, 1].
        scale (int): Upscaling factor.
        tile (int): Tile size in input pixels; 0 for the whole image. Default: 0.
        tile_pad (int): Context around each tile. Default: 10.
        ensemble (bool): x8 self-ensemble. Default: False.
        amp_dtype (torch.dtype | None): Autocast dtype (torch.bfloat16 or
            torch.float16), or None for full precision. Default: None.

    Returns:
        Tensor: Float32 output, (N, C', H * scale, W * scale).
    """

    def forward(t):
        autocast = torch.autocast(t.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with autocast:
            return tiled_forward(net, t, scale, tile, tile_pad).float()

    with torch.no_grad():
        return ensemble_forward(forward, x) if ensemble else forward(x)
