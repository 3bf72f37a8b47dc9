"""Write every option file under options/ from one description of the recipes.

The option files are committed; this script is how they stay consistent. Run it
after changing a recipe here: python scripts/make_options.py
"""

import argparse
import os
from os import path as osp

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), os.pardir, 'options')
DIV2K_MEAN = '[0.4488, 0.4371, 0.4040]'

#: LR patch size of the published recipes: 48 px for WDSR (ychfan/wdsr datasets/_isr.py
#: ``--lr_patch_size 48``; JiahuiYu/wdsr_ntire2018, EDSR-PyTorch's ``--patch_size`` = 48 x scale)
#: and EDSR (BasicSR options/train/EDSR, gt_size 96/144/192); 32 px for RDN (Zhang et al., CVPR 2018,
#: Sec. 5.1: 16 LR patches of 32x32).
LR_PATCH = {'WDSR_A': 48, 'WDSR_B': 48, 'EDSR': 48, 'RDN': 32}


def paper_comment(scale, start='from scratch (options/finetune/ starts x3/x4 from the x2 weights instead)'):
    return (
        '# Recipe: Yu et al., "Wide Activation for Efficient and Accurate Image Super-Resolution"\n'
        '# (arXiv 1808.08718), Sec. 4: DIV2K 800 training images, batch 16, random flips and\n'
        '# rotations, Adam (0.9, 0.999, 1e-8), lr 1e-3 with weight norm, halved every 2e5 iterations.\n'
        f'# LR patches of 48 px (HR {48 * scale}), as the official code trains at every scale (ychfan/wdsr\n'
        '# datasets/_isr.py --lr_patch_size 48; JiahuiYu/wdsr_ntire2018 --patch_size 48 x scale).\n'
        '# Our choices: 6e5 iterations in all (the paper gives no length: three lr stages), training\n'
        f'# {start}.\n'
    )


def baseline_comment(kind, scale):
    patch = LR_PATCH[kind]
    source = (
        'the RDN paper\n# (Zhang et al., CVPR 2018, Sec. 5.1: 16 LR patches of 32x32, Adam, lr 1e-4)'
        if kind == 'RDN'
        else 'the EDSR paper\n# and BasicSR options/train/EDSR (48 px LR, lr 1e-4)'
    )
    return (
        f'# {kind} baseline: LR patches of {patch} px (HR {patch * scale}) and lr 1e-4 as in {source};\n'
        '# data, batch 16, Adam betas and the schedule (halved every 2e5, 6e5 in all) are the WDSR recipe\n'
        '# here (our choice), so that the comparison differs only in the network.\n'
    )


def network(kind, scale, num_block=16, num_feat=None, norm='weight', expansion=None, reloaded=False):
    if kind == 'WDSR_A':
        lines = [f'num_feat: {num_feat or 32}', f'num_block: {num_block}', f'expansion: {expansion or 4}']
    elif kind == 'WDSR_B':
        lines = [
            f'num_feat: {num_feat or 32}',
            f'num_block: {num_block}',
            f'expansion: {expansion or 6}',
            'low_rank_ratio: 0.8',
        ]
    elif kind == 'EDSR':
        lines = [
            'num_in_ch: 3',
            'num_out_ch: 3',
            f'num_feat: {num_feat or 64}',
            f'num_block: {num_block}',
            'res_scale: 1',
            'img_range: 255.',
            f'rgb_mean: {DIV2K_MEAN}',
        ]
    else:  # RDN
        lines = ['num_feat: 64', 'num_block: 16', 'num_layer: 8', 'growth: 64']
    if reloaded:  # ychfan/wdsr models/wdsr.py: inputs in [0, 1] minus a scalar 0.5, its weight-norm init
        lines += ['res_scale: 1.0', 'norm: weight', 'img_range: 1.0', 'rgb_mean: [0.5, 0.5, 0.5]', 'init: reloaded']
    elif kind.startswith('WDSR'):
        lines += ['res_scale: 1.0', f'norm: {norm}', f'rgb_mean: {DIV2K_MEAN}']
    lines.append(f'upscale: {scale}')
    return f'network_g:\n  type: {kind}\n' + ''.join(f'  {line}\n' for line in lines)


#: How each shipped training file samples (its ``datasets: train`` section says which, in a comment). Both are
#: the authors' sampling; they differ in what is read: DIV2K's whole images, or the LMDB's sub-images put back.
SAMPLING_COMMENTS = {
    'images': (
        "    # Sampling: the authors' (ychfan/wdsr, EDSR-PyTorch): whole images decoded once (cache_data),\n"
        '    # each image equally often at a uniform position (sampling: image); needs the decoded set in\n'
        '    # memory (DIV2K train x{scale}: HR and LR folders as unpacked by prepare_div2k.py).\n'
    ),
    'sub-images': (
        "    # Sampling: the authors' (ychfan/wdsr, EDSR-PyTorch): each image equally often at a uniform\n"
        "    # position over the whole image (sampling: image), the LMDB's sub-images put back into their\n"
        '    # images (sub_images.json, written by prepare_div2k.py) and decoded once (cache_data): about\n'
        "    # {gb} GB of memory for DIV2K train x{scale}. Without it, cache_data: false gives basicsr's\n"
        '    # sampling (each sub-image equally often, images weighted by area, a PNG decoded per sample).\n'
    ),
}
#: Decoded DIV2K train (800 images, HR cropped to a multiple of 12): about 6.6 GB of HR, 6.6 / s^2 GB of LR.
DIV2K_TRAIN_GB = 6.6


def datasets(scale, root='datasets/DIV2K', gt_size=96, batch=16, workers=6, enlarge=1000, sampling='sub-images'):
    """The datasets section: 800 DIV2K training images x ``enlarge`` samples an epoch, DIV2K validation."""
    if sampling == 'images':
        source = f"""    dataroot_gt: {root}/DIV2K_train_HR
    dataroot_lq: {root}/DIV2K_train_LR_bicubic/X{scale}
    filename_tmpl: '{{}}x{scale}'
    io_backend:
      type: disk
"""
    else:
        source = f"""    dataroot_gt: {root}/DIV2K_train_HR_sub.lmdb
    dataroot_lq: {root}/DIV2K_train_LR_bicubic_X{scale}_sub.lmdb
    io_backend:
      type: lmdb
"""
    comment = SAMPLING_COMMENTS[sampling].format(scale=scale, gb=f'{DIV2K_TRAIN_GB * (1 + 1 / scale**2):.1f}')
    return f"""datasets:
  train:
{comment}    name: DIV2K
    type: CheckedPairedImageDataset
{source}    cache_data: true
    sampling: image
    gt_size: {gt_size}
    use_hflip: true
    use_rot: true
    num_worker_per_gpu: {workers}
    batch_size_per_gpu: {batch}
    dataset_enlarge_ratio: {enlarge}
    prefetch_mode: ~
  val:
{div2k_valid(root, scale)}"""


def div2k_valid(root, scale):
    """The DIV2K validation set's lines (under its phase), read from prepare_div2k's LMDBs."""
    return f"""    name: DIV2K_valid
    type: CheckedPairedImageDataset
    dataroot_gt: {root}/DIV2K_valid_HR.lmdb
    dataroot_lq: {root}/DIV2K_valid_LR_bicubic_X{scale}.lmdb
    io_backend:
      type: lmdb
"""


def metrics(scale, rgb=True, official=False):
    """PSNR/SSIM on Y with border = scale (as papers report), RGB PSNR for validation during training, and
    (``official``) the official WDSR code's RGB PSNR with a border of scale + 6."""
    rgb_psnr = (
        f"""    psnr:
      type: calculate_psnr
      crop_border: {scale}
      test_y_channel: false
"""
        if rgb
        else ''
    )
    if official:
        rgb_psnr += f"""    psnr_official:  # the official WDSR code's PSNR: RGB, border scale + 6
      type: calculate_psnr
      crop_border: {scale + 6}
      test_y_channel: false
"""
    return f"""  metrics:
{rgb_psnr}    psnr_y:
      type: calculate_psnr
      crop_border: {scale}
      test_y_channel: true
    ssim_y:
      type: calculate_ssim
      crop_border: {scale}
      test_y_channel: true
"""


EMA_OFF = (
    'no EMA: the paper trains without one, and so does this recipe (BasicSR-lineage recipes use\n'
    '  # 0.999: validation then runs the EMA copy; the test files read params_ema, else params)'
)


def train_file(
    name,
    scale,
    net,
    comment,
    lr=1e-3,
    total_iter=600000,
    milestones=(200000, 400000),
    gamma=0.5,
    num_gpu='auto',
    dist='',
    data=None,
    val_freq=5000,
    save_freq=5000,
    print_freq=100,
    ema=0,
    save_img=False,
    pretrain=None,
    official_metric=False,
    compile_step='auto',
):
    data = data or datasets(scale)
    stones = ', '.join(str(m) for m in milestones)
    return f"""{comment}
name: {name}
model_type: WDSRModel
scale: {scale}
num_gpu: {num_gpu}{'  # auto: every visible GPU, 0 on a CPU-only machine' if num_gpu == 'auto' else ''}
manual_seed: 0
use_amp: false  # true: autocast in training and validation (the paper trains in fp32)
amp_bf16: true  # with use_amp: bf16 (GPUs and CPUs); false: fp16 with a GradScaler (GPUs only)
use_channels_last: false  # true: NHWC memory format, faster convs on tensor-core GPUs
use_compile: {compile_step}  # auto: the whole step in one graph (CUDA graphs) on a GPU with Triton, eager elsewhere; true: also on the CPU

{data}
{net}
path:
  pretrain_network_g: {pretrain or '~'}
  strict_load_g: {'false' if pretrain else 'true'}
  resume_state: ~

train:
  ema_decay: {ema}  # {EMA_OFF if not ema else 'EMA of the weights'}
  optim_g:
    type: Adam
    lr: !!float {lr:g}
    weight_decay: 0
    betas: [0.9, 0.999]
    eps: !!float 1e-8
  scheduler:
    type: MultiStepLR
    milestones: [{stones}]
    gamma: {gamma}
  total_iter: {total_iter}
  warmup_iter: -1
  pixel_opt:
    type: L1Loss
    loss_weight: 1.0
    reduction: mean

val:
  val_freq: !!float {val_freq:g}
  save_img: {str(save_img).lower()}
  tile: 0  # input pixels per tile for large images (0: whole image); tile_pad covers the receptive field
  tile_pad: 16
{metrics(scale, official=official_metric)}
logger:
  print_freq: {print_freq}
  save_checkpoint_freq: !!float {save_freq:g}
  use_tb_logger: true
  wandb:
    project: ~
    resume_id: ~
{dist}
dist_params:  # read under --launcher pytorch (torchrun) and --launcher slurm
  backend: auto  # nccl when the run uses GPUs, gloo on the CPU; or name one
  port: 29500  # slurm's rendezvous port (torchrun takes --master_port)
  timeout_min: 30  # a rank waiting longer for the others ends the run on every rank
"""


BENCHMARK_SETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')


def test_file(name, scale, net, train_name, official_metric=False, demo=False):
    """A test file of ``train_name``'s latest weights: on the five benchmarks and DIV2K validation, or (``demo``)
    on the demo set's two held-out photographs with the demo's own metrics (RGB and Y)."""
    sets = ''.join(
        f"""  test_{i}:
    name: {bench}
    type: CheckedPairedImageDataset
    dataroot_gt: datasets/{bench}/GTmod12
    dataroot_lq: datasets/{bench}/LRbicx{scale}
    io_backend:
      type: disk
"""
        for i, bench in enumerate(BENCHMARK_SETS, 1)
    )
    official_note = (
        "# psnr_official is the official WDSR code's figure (RGB, border scale + 6), to compare with its\n"
        '# README; converted official weights (scripts/convert_checkpoint.py) go in pretrain_network_g.\n'
        if official_metric
        else '# The official WDSR code reports RGB PSNR with a border of scale + 6; to compare with its numbers add\n'
        f'#     psnr_official: {{type: calculate_psnr, crop_border: {scale + 6}, test_y_channel: false}}\n'
        '# under val:metrics.\n'
    )
    root, where = (
        'datasets/DIV2K',
        (
            'on the five SR benchmarks\n# (scripts/prepare_benchmarks.py writes datasets/<Set>/GTmod12 and '
            f'LRbicx{scale}) and on DIV2K validation.\n'
        ),
    )
    if demo:
        sets, official_note, root = '', '', 'datasets/demo'
        where = (
            "on the demo set's two\n# held-out photographs (scripts/run_demo.py trains it). Another checkpoint:\n"
            '#   wdsr-test -opt THIS_FILE --force_yml name=demo_500_iter \\\n'
            f'#             path:pretrain_network_g=experiments/{train_name}/models/net_g_500.pth\n'
        )
    also = '\n# and PSNR on RGB, as the demo validates it' if demo else ''
    return f"""# Evaluate {train_name} (net_g_latest.pth, EMA weights when present) {where}# PSNR and SSIM on Y (ITU-R BT.601), border {scale} px (= scale) cropped, as SR papers report them{also}.
{official_note}name: {name}
model_type: WDSRModel
scale: {scale}
num_gpu: {0 if demo else 'auto'}
manual_seed: 0

datasets:
{sets}  test_{1 if demo else 6}:
{div2k_valid(root, scale)}
{net}
path:
  pretrain_network_g: experiments/{train_name}/models/net_g_latest.pth
  param_key_g: params_ema
  strict_load_g: true

val:
  save_img: true
  suffix: ~
  tile: 0
  tile_pad: 16
  self_ensemble: false  # true: x8 flips/rotations (the paper's "+" results)
{metrics(scale, rgb=demo, official=official_metric)}"""


def dist_block(gpus):
    return f"""
# {gpus} GPUs, {16 // gpus} patches each: the global batch stays 16.
# One node:  torchrun --nproc_per_node={gpus} wdsr_basicsr/train.py -opt THIS_FILE --launcher pytorch
# Two nodes of {gpus // 2} GPUs (run on each, NODE_RANK 0 and 1, MASTER = first node's address):
#   torchrun --nnodes=2 --node_rank=$NODE_RANK --nproc_per_node={gpus // 2} --master_addr=$MASTER \\
#            --master_port=29500 wdsr_basicsr/train.py -opt THIS_FILE --launcher pytorch
# num_gpu counts every process of the run, on all nodes."""


def schema_line(rel):
    """The first line of an option file: where YAML-aware editors find its schema (relative to the file)."""
    schema = osp.join(ROOT, os.pardir, 'wdsr_basicsr', 'options', 'options.schema.json')
    return f'# yaml-language-server: $schema={osp.relpath(schema, osp.dirname(osp.join(ROOT, rel)))}\n'


def files():
    out = {}
    for kind, short in (('WDSR_A', 'a'), ('WDSR_B', 'b')):
        for s in (2, 3, 4):
            name = f'train_wdsr_{short}_x{s}'
            out[f'{name}.yml'] = train_file(
                name, s, network(kind, s), paper_comment(s), data=datasets(s, gt_size=LR_PATCH[kind] * s)
            )
            out[f'test_wdsr_{short}_x{s}.yml'] = test_file(f'test_wdsr_{short}_x{s}', s, network(kind, s), name)
        for gpus in (4, 8):
            name = f'train_wdsr_{short}_x2_{gpus}gpu'
            out[f'dist/{name}.yml'] = train_file(
                name,
                2,
                network(kind, 2),
                paper_comment(2),
                num_gpu=gpus,
                dist=dist_block(gpus),
                data=datasets(2, batch=16 // gpus, workers=4),
            )
    for s in (2, 3, 4):
        for kind, short in (('EDSR', 'edsr'), ('RDN', 'rdn')):
            out[f'train_{short}_x{s}.yml'] = train_file(
                f'train_{short}_x{s}',
                s,
                network(kind, s),
                baseline_comment(kind, s),
                lr=1e-4,
                data=datasets(s, gt_size=LR_PATCH[kind] * s),
            )
            out[f'test_{short}_x{s}.yml'] = test_file(f'test_{short}_x{s}', s, network(kind, s), f'train_{short}_x{s}')
    finetune = (
        "# Variant (EDSR's practice): x{s} {kind} started from the x2 weights of {x2} (train that first).\n"
        '# The body and head load; the tail and skip (or upsampler), whose shapes depend on the scale, start\n'
        '# afresh (strict_load_g: false). Everything else as {base}.\n'
    )
    for kind, short, lr in (('WDSR_A', 'wdsr_a', 1e-3), ('WDSR_B', 'wdsr_b', 1e-3), ('EDSR', 'edsr', 1e-4)):
        for s in (3, 4):
            x2, base = f'train_{short}_x2', f'train_{short}_x{s}.yml'
            comment = finetune.format(s=s, kind=kind, x2=x2, base=base) + (
                paper_comment(s, start='from the x2 weights (above)')
                if kind.startswith('WDSR')
                else baseline_comment(kind, s)
            )
            name = f'finetune_{short}_x{s}_from_x2'
            out[f'finetune/{name}.yml'] = train_file(
                name,
                s,
                network(kind, s),
                comment,
                lr=lr,
                data=datasets(s, gt_size=LR_PATCH[kind] * s),
                pretrain=f'experiments/{x2}/models/net_g_latest.pth',
            )
    table1 = (
        "# Paper Table 1 sweep (x2): {what} with {b} block(s), the paper's widths; same data and\n"
        '# schedule for every row. 3e5 iterations (the paper gives no length for this table).\n'
    )
    for b in (1, 3, 5, 8):
        for kind, short, feat, lr in (
            ('EDSR', 'edsr', 64, 1e-4),
            ('WDSR_A', 'wdsr_a', 32, 1e-3),
            ('WDSR_B', 'wdsr_b', 64, 1e-3),
        ):
            name = f'table1_{short}_b{b}_x2'
            out[f'paper/{name}.yml'] = train_file(
                name,
                2,
                network(kind, 2, num_block=b, num_feat=feat),
                table1.format(what=kind, b=b),
                lr=lr,
                total_iter=300000,
                milestones=(200000,),
                data=datasets(2, enlarge=100, sampling='images'),
            )
    ablation = (
        '# Normalisation ablation (paper Sec. 3.3, Fig. 3 and 4): WDSR-A, 16 blocks, 32 features, x2,\n'
        '# norm={norm} at lr {lr:g}; everything else as train_wdsr_a_x2.yml. Fig. 4 compares batch norm\n'
        '# at lower learning rates; weight norm trains at 1e-3.\n'
    )
    for norm, lr in (('weight', 1e-3), ('batch', 1e-3), ('none', 1e-3), ('batch', 1e-4), ('batch', 1e-5)):
        name = f'norm_{norm}_lr{lr:.0e}_x2'.replace('-0', '-')
        out[f'paper/{name}.yml'] = train_file(
            name,
            2,
            network('WDSR_A', 2, norm=norm),
            ablation.format(norm=norm, lr=lr),
            lr=lr,
            total_iter=300000,
            milestones=(200000,),
            val_freq=2000,
            data=datasets(2, enlarge=100, sampling='images'),
        )
    ntire = (
        "# The authors' NTIRE 2018 code (JiahuiYu/wdsr_ntire2018, wdsr_a.py inside EDSR-PyTorch @95f0571): the\n"
        '# "WDSR baseline" of its README, WDSR-A with 16 blocks, n_feats 32, block_feats 128 (x4 wide), x2, published\n'
        "# at 1,190,100 parameters (raw: weight norm's g and v and the biases) and 34.77 dB (DIV2K 801-900, RGB).\n"
        '# "Identical settings to the EDSR baseline" (EDSR-PyTorch src/demo.sh and option.py at that commit):\n'
        '# HR patches 96 (LR 48), batch 16, Adam lr 1e-4 halved every 200 epochs of 1000 iterations, 300 epochs.\n'
        "# The paper's own recipe (lr 1e-3 with weight norm) is options/train_wdsr_a_x2.yml.\n"
    )
    name = 'train_ntire2018_wdsr_baseline_x2'
    out[f'authors/{name}.yml'] = train_file(
        name,
        2,
        network('WDSR_A', 2),
        ntire,
        lr=1e-4,
        total_iter=300000,
        milestones=(200000,),
        data=datasets(2, gt_size=96, enlarge=20, sampling='images'),
    )
    out['authors/test_ntire2018_wdsr_baseline_x2.yml'] = test_file(
        'test_ntire2018_wdsr_baseline_x2', 2, network('WDSR_A', 2), name, official_metric=True
    )
    reloaded = (
        '# The authors\' 2019 "WDSR reloaded" (ychfan/wdsr, BMVC 2019), {size} model: WDSR-A blocks, {blocks} blocks\n'
        '# of {feat} features, x4 wide; published at {params} parameters (raw: g, v and biases) for x{s}.\n'
        '# Recipe of its trainer.py, models/wdsr.py and datasets/div2k.py, _isr.py: DIV2K 800 images, 1000\n'
        '# random 48 px LR patches (HR {hr}) per image and epoch = 50,000 iterations of batch 16; 30 epochs\n'
        '# (1.5e6 iterations); Adam lr 1e-3, x0.2 after epochs 20 and 25; L1; flips and transposes; inputs\n'
        '# minus 0.5; its weight-norm initialisation (init: reloaded). Validation adds its RGB PSNR (border\n'
        '# scale + 6). Our choice: validation and checkpoints every 5e4 iterations (one of its epochs).\n'
    )
    published = {
        (16, 2): '1,190,100',
        (16, 3): '1,195,605',
        (16, 4): '1,203,312',
        (32, 2): '37,808,180',
        (32, 3): '37,826,645',
        (32, 4): '37,852,496',
    }
    for size, blocks, feat, stem in (('small', 16, 32, 'reloaded_wdsr'), ('large', 32, 128, 'reloaded_wdsr_large')):
        for s in (2, 3, 4):
            name = f'train_{stem}_x{s}'
            net = network('WDSR_A', s, num_block=blocks, num_feat=feat, reloaded=True)
            comment = reloaded.format(size=size, blocks=blocks, feat=feat, params=published[blocks, s], s=s, hr=48 * s)
            out[f'authors/{name}.yml'] = train_file(
                name,
                s,
                net,
                comment,
                total_iter=1500000,
                milestones=(1000000, 1250000),
                gamma=0.2,
                data=datasets(s, gt_size=48 * s, enlarge=1000, sampling='images'),
                val_freq=50000,
                save_freq=50000,
                official_metric=True,
            )
            out[f'authors/test_{stem}_x{s}.yml'] = test_file(f'test_{stem}_x{s}', s, net, name, official_metric=True)
    demo = (
        "# The README's main job: a small WDSR-B (16 features, 4 blocks, x6 wide) trained on the demo set\n"
        '# (scikit-image photographs prepared like DIV2K by scripts/make_demo_data.py) for 2000\n'
        '# iterations on CPU, validated on the two held-out photographs. 64 px HR patches, batch 16,\n'
        "# Adam lr 1e-3 halved at 1500, as the paper's recipe at a smaller budget. The step is compiled\n"
        '# (use_compile): on 2 CPU cores the whole run, compile time counted, ends sooner than eager.\n'
    )
    out['demo_wdsr_b_x2.yml'] = train_file(
        'demo_wdsr_b_x2',
        2,
        network('WDSR_B', 2, num_block=4, num_feat=16),
        demo,
        total_iter=2000,
        milestones=(1500,),
        num_gpu=0,
        data=datasets(2, root='datasets/demo', gt_size=64, workers=1, enlarge=400, sampling='images'),
        val_freq=500,
        save_freq=500,
        print_freq=100,
        save_img=True,
        compile_step='true',
    )
    out['test_demo_wdsr_b_x2.yml'] = test_file(
        'test_demo_wdsr_b_x2', 2, network('WDSR_B', 2, num_block=4, num_feat=16), 'demo_wdsr_b_x2', demo=True
    )
    return {rel: schema_line(rel) + text for rel, text in out.items()}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    for rel, text in files().items():
        path = osp.join(ROOT, rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    print(f'wrote {len(files())} option files under {osp.normpath(ROOT)}')


if __name__ == '__main__':
    main()
