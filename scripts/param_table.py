"""Print the parameter table of the paper's Table 1 networks and the authors' variants, built from this package.

Counts two ways (see the README): ``effective`` folds weight norm away and
counts conv weights and biases, as the WDSR paper's Table 1 does; ``raw`` counts
the trainable tensors (weight norm's g and v, and biases), as both official
READMEs do. The authors' variants are built from their option files
(options/authors/) and shown beside the raw counts their READMEs publish.

Usage: python scripts/param_table.py
"""

import argparse
from os import path as osp

from basicsr.archs import build_network
from basicsr.archs.edsr_arch import EDSR

import wdsr_basicsr  # noqa: F401  (basicsr compat and registration)
from wdsr_basicsr.archs import RDN, WDSR_A, WDSR_B, count_parameters
from wdsr_basicsr.options import load_options
from wdsr_basicsr.reproduce import PAPER_PARAMS, PUBLISHED_RAW_PARAMS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def rows():
    """Yield (network, configuration, net, published figure as printed, or '')."""
    for blocks in (1, 3, 5, 8):
        yield (
            'EDSR',
            f'x2, 64 feat, {blocks} blocks',
            EDSR(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=blocks, upscale=2),
            f'{PAPER_PARAMS["edsr"][blocks]:.2f} M',
        )
        yield (
            'WDSR-A',
            f'x2, 32 feat, x4 wide, {blocks} blocks',
            WDSR_A(num_feat=32, expansion=4, num_block=blocks, upscale=2),
            f'{PAPER_PARAMS["wdsr_a"][blocks]:.2f} M',
        )
        yield (
            'WDSR-B',
            f'x2, 64 feat, x6 wide, 0.8 low rank, {blocks} blocks',
            WDSR_B(num_feat=64, expansion=6, low_rank_ratio=0.8, num_block=blocks, upscale=2),
            f'{PAPER_PARAMS["wdsr_b"][blocks]:.2f} M',
        )
    for name, published in PUBLISHED_RAW_PARAMS.items():
        net_opt = load_options(osp.join(REPO, 'options', 'authors', f'{name}.yml'))['network_g']
        yield (
            name,
            (
                f'x{net_opt["upscale"]}, {net_opt["num_feat"]} feat, x{net_opt["expansion"]} wide, '
                f'{net_opt["num_block"]} blocks'
            ),
            build_network(dict(net_opt)),
            f'{published:,} (raw)',
        )
    for scale in (2, 3, 4):
        yield (
            'RDN',
            f'x{scale}, D=16, C=8, G=64',
            RDN(num_feat=64, num_block=16, num_layer=8, growth=64, upscale=scale),
            '',
        )


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print('| network | configuration | effective params | raw params | published |')
    print('|---|---|---:|---:|---:|')
    for name, config, net, published in rows():
        effective, raw = count_parameters(net, 'effective'), count_parameters(net, 'raw')
        print(f'| {name} | {config} | {effective:,} ({effective / 1e6:.2f} M) | {raw:,} | {published} |')


if __name__ == '__main__':
    main()
