"""Print the parameter table of the paper's Table 1 networks, built from this package.

Counts two ways (see the README): ``effective`` folds weight norm away and
counts conv weights and biases, as the WDSR paper's Table 1 does; ``raw`` counts
the trainable tensors (weight norm's g and v, and biases), as the 2019
reloaded WDSR code does.

Usage: python scripts/param_table.py
"""
import wdsr_basicsr  # noqa: F401  (basicsr compat and registration)
from basicsr.archs.edsr_arch import EDSR
from wdsr_basicsr.archs import RDN, WDSR_A, WDSR_B, count_parameters
from wdsr_basicsr.reproduce import PAPER_PARAMS

def rows():
    """Yield (network, configuration, net, paper value in M or None)."""
    for blocks in (1, 3, 5, 8):
        yield 'EDSR', f'x2, 64 feat, {blocks} blocks', EDSR(
            num_in_ch=3, num_out_ch=3, num_feat=64, num_block=blocks, upscale=2), PAPER_PARAMS['edsr'][blocks]
        yield 'WDSR-A', f'x2, 32 feat, x4 wide, {blocks} blocks', WDSR_A(
            num_feat=32, expansion=4, num_block=blocks, upscale=2), PAPER_PARAMS['wdsr_a'][blocks]
        yield 'WDSR-B', f'x2, 64 feat, x6 wide, 0.8 low rank, {blocks} blocks', WDSR_B(
            num_feat=64, expansion=6, low_rank_ratio=0.8, num_block=blocks,
            upscale=2), PAPER_PARAMS['wdsr_b'][blocks]
    for scale in (2, 3, 4):
        yield 'WDSR-A (2019 reloaded)', f'x{scale}, 32 feat, x4 wide, 16 blocks', WDSR_A(
            num_feat=32, expansion=4, num_block=16, upscale=scale), None
    for scale in (2, 3, 4):
        yield 'RDN', f'x{scale}, D=16, C=8, G=64', RDN(
            num_feat=64, num_block=16, num_layer=8, growth=64, upscale=scale), None


def main():
    print('| network | configuration | effective params | raw params | paper (M) |')
    print('|---|---|---:|---:|---:|')
    for name, config, net, paper in rows():
        effective, raw = count_parameters(net, 'effective'), count_parameters(net, 'raw')
        paper_str = '' if paper is None else f'{paper:.2f}'
        print(f'| {name} | {config} | {effective:,} ({effective / 1e6:.2f} M) | {raw:,} | {paper_str} |')


if __name__ == '__main__':
    main()
