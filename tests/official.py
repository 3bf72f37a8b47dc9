"""The authors' WDSR checkpoints (2018 and 2019 code) and their forwards, for the conversion and spandrel tests.

The layouts are the official code's state dicts with random weights; the forwards are re-implemented here from
their formulas (F.conv2d with g * v / ||v||), not taken from this package.
"""

import torch
import torch.nn.functional as F

DIV2K_MEAN = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)


def wn_conv(cin, cout, k, gen):
    return {
        'weight_g': torch.rand(cout, 1, 1, 1, generator=gen) + 0.5,
        'weight_v': torch.randn(cout, cin, k, k, generator=gen),
        'bias': torch.randn(cout, generator=gen) * 0.1,
    }


def official_2018(kind, num_feat, num_block, wide, scale, low=None, prefix=''):
    gen = torch.Generator().manual_seed(1)
    convs = {
        'head.0': wn_conv(3, num_feat, 3, gen),
        'tail.0': wn_conv(num_feat, 3 * scale**2, 3, gen),
        'skip.0': wn_conv(3, 3 * scale**2, 5, gen),
    }
    for i in range(num_block):
        if kind == 'A':
            convs[f'body.{i}.body.0'] = wn_conv(num_feat, wide, 3, gen)
            convs[f'body.{i}.body.2'] = wn_conv(wide, num_feat, 3, gen)
        else:
            convs[f'body.{i}.body.0'] = wn_conv(num_feat, wide, 1, gen)
            convs[f'body.{i}.body.2'] = wn_conv(wide, low, 1, gen)
            convs[f'body.{i}.body.3'] = wn_conv(low, num_feat, 3, gen)
    return {f'{prefix}{name}.{leaf}': t for name, c in convs.items() for leaf, t in c.items()}


def official_2019(num_feat, num_block, wide, scale):
    gen = torch.Generator().manual_seed(2)
    convs = {
        'body.0': wn_conv(3, num_feat, 3, gen),
        f'body.{num_block + 1}': wn_conv(num_feat, 3 * scale**2, 3, gen),
        'skip.0': wn_conv(3, 3 * scale**2, 5, gen),
    }
    for i in range(1, num_block + 1):
        convs[f'body.{i}.body.0'] = wn_conv(num_feat, wide, 3, gen)
        convs[f'body.{i}.body.2'] = wn_conv(wide, num_feat, 3, gen)
    state = {f'model.{name}.{leaf}': t for name, c in convs.items() for leaf, t in c.items()}
    return {'model_state_dict': state, 'optimizer_state_dict': {'state': {}, 'param_groups': []}, 'epoch': 30}


def conv(state, name, x, prefix=''):
    g, v, b = (state[f'{prefix}{name}.{leaf}'] for leaf in ('weight_g', 'weight_v', 'bias'))
    w = g * v / v.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def forward_2018(state, x01, kind, num_block, scale, res_scale, prefix='', mean=DIV2K_MEAN):
    """wdsr_a.py / wdsr_b.py of 2018 (padded convs, since Nov 2018) on inputs in [0, 255], mapped back to [0, 1]."""
    x = (x01 * 255 - mean * 255) / 127.5
    s = conv(state, 'head.0', x, prefix)
    for i in range(num_block):
        p = f'body.{i}.body'
        r = torch.relu(conv(state, f'{p}.0', s, prefix))
        r = conv(state, f'{p}.2', r, prefix)
        if kind == 'B':
            r = conv(state, f'{p}.3', r, prefix)
        s = r * res_scale + s
    y = F.pixel_shuffle(conv(state, 'tail.0', s, prefix), scale) + F.pixel_shuffle(
        conv(state, 'skip.0', x, prefix), scale
    )
    return (y * 127.5 + mean * 255) / 255


def forward_2019(checkpoint, x, num_block, scale, image_mean=0.5):
    state = checkpoint['model_state_dict']
    t = x - image_mean
    s = conv(state, 'body.0', t, 'model.')
    for i in range(1, num_block + 1):
        s = s + conv(state, f'body.{i}.body.2', torch.relu(conv(state, f'body.{i}.body.0', s, 'model.')), 'model.')
    y = conv(state, f'body.{num_block + 1}', s, 'model.') + conv(state, 'skip.0', t, 'model.')
    return F.pixel_shuffle(y, scale) + image_mean
