"""Official WDSR checkpoints (2018 and 2019 code): converted networks give the original code's output.

The original forwards are re-implemented here from their formulas (F.conv2d with g * v / ||v||), not
taken from this package.
"""

import pytest
import torch
from basicsr.archs import build_network

from official import forward_2018, forward_2019, official_2018, official_2019
from wdsr_basicsr.convert import main as convert_main
from wdsr_basicsr.loading import network_from_checkpoint


def run_convert(tmp_path, official, *extra):
    src, dst = tmp_path / 'official.pt', tmp_path / 'ours.pth'
    torch.save(official, src)
    assert convert_main([str(src), str(dst), *extra]) == 0
    net, network_g = network_from_checkpoint(str(dst))
    return net, network_g


@pytest.mark.parametrize('kind, wide, low', [('A', 16, None), ('B', 24, 3)])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_2018_layout(tmp_path, kind, wide, low, scale):
    official = official_2018(kind, 4, 2, wide, scale, low, prefix='module.')
    net, network_g = run_convert(tmp_path, official, '--release', '2018-11', '--res_scale', '0.5')
    assert network_g['type'] == f'WDSR_{kind}' and network_g['num_block'] == 2 and network_g['upscale'] == scale
    assert network_g['expansion'] == wide // 4
    if kind == 'B':
        assert int(4 * network_g['low_rank_ratio']) == low
    x = torch.rand(1, 3, 11, 9)
    with torch.no_grad():
        expected = forward_2018(official, x, kind, 2, scale, 0.5, prefix='module.')
        assert (net(x) - expected).abs().max() < 1e-4


def test_2018_wdsr_b_paper_widths(tmp_path):
    official = official_2018('B', 64, 1, 384, 2, low=51)
    net, network_g = run_convert(tmp_path, official, '--release', '2018-11')
    assert network_g['low_rank_ratio'] == 0.8 and network_g['expansion'] == 6
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (net(x) - forward_2018(official, x, 'B', 1, 2, 1.0)).abs().max() < 1e-4


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_2019_layout(tmp_path, scale):
    official = official_2019(8, 3, 32, scale)
    net, network_g = run_convert(tmp_path, official)
    assert (
        network_g['type'],
        network_g['num_feat'],
        network_g['num_block'],
        network_g['expansion'],
        network_g['img_range'],
        network_g['rgb_mean'],
    ) == ('WDSR_A', 8, 3, 4, 1.0, [0.5, 0.5, 0.5])
    x = torch.rand(2, 3, 10, 7)
    with torch.no_grad():
        assert (net(x) - forward_2019(official, x, 3, scale)).abs().max() < 1e-4


def test_other_file_is_named_with_the_layouts(tmp_path, capsys):
    src = tmp_path / 'edsr.pt'
    torch.save({'conv_first.weight': torch.zeros(1)}, src)
    assert convert_main([str(src), str(tmp_path / 'out.pth')]) == 1
    err = capsys.readouterr().err
    assert str(src) in err and '2018' in err and '2019' in err
    assert not (tmp_path / 'out.pth').exists()


def test_converted_checkpoint_builds_through_basicsr(tmp_path):
    net, network_g = run_convert(tmp_path, official_2018('A', 4, 1, 8, 2), '--release', '2018-11')
    rebuilt = build_network(dict(network_g))
    rebuilt.load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True)['params'])


def test_rgb_mean_flag(tmp_path):
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    official = official_2018('A', 4, 1, 8, 2)
    net, network_g = run_convert(tmp_path, official, '--release', '2018-11', '--rgb_mean', '0.5', '0.4', '0.3')
    assert network_g['rgb_mean'] == pytest.approx([0.5, 0.4, 0.3])
    x = torch.rand(1, 3, 9, 8)
    with torch.no_grad():
        assert (net(x) - forward_2018(official, x, 'A', 1, 2, 1.0, mean=mean)).abs().max() < 1e-4
    official = official_2019(8, 2, 32, 3)
    net, _ = run_convert(tmp_path, official, '--rgb_mean', '0.3', '0.3', '0.3')
    with torch.no_grad():
        assert (net(x) - forward_2019(official, x, 2, 3, image_mean=0.3)).abs().max() < 1e-4


@pytest.mark.parametrize(
    'release, says',
    [
        (None, ['--release 2018-11', '--release 2018-08']),
        ('2018-08', ['August 2018', 'without padding', 'different function near every border']),
        ('2019', ['--release 2019 was given, but the file has the 2018 layout']),
    ],
)
def test_2018_release_must_be_said_and_august_is_refused(tmp_path, capsys, release, says):
    src = tmp_path / 'official.pt'
    torch.save(official_2018('B', 4, 1, 24, 2, low=3), src)
    extra = ['--release', release] if release else []
    assert convert_main([str(src), str(tmp_path / 'out.pth'), *extra]) == 1
    err = capsys.readouterr().err
    assert f'{src} is not converted' in err and all(s in err for s in says), err
    assert not (tmp_path / 'out.pth').exists()


def test_2019_file_with_a_2018_release_is_refused(tmp_path, capsys):
    src = tmp_path / 'official.pt'
    torch.save(official_2019(4, 1, 16, 2), src)
    assert convert_main([str(src), str(tmp_path / 'out.pth'), '--release', '2018-11']) == 1
    assert 'the file has the 2019 layout' in capsys.readouterr().err


@pytest.mark.parametrize(
    'name, content',
    [
        ('model.ckpt-30000.index', b'\x00' * 16),
        ('model.ckpt-30000.data-00000-of-00001', b'\x00' * 16),
        ('saved', None),  # a SavedModel folder
        ('weights.h5', b'\x89HDF\r\n\x1a\n' + b'\x00' * 8),
    ],
)
def test_tensorflow_and_keras_checkpoints_are_refused(tmp_path, capsys, name, content):
    src = tmp_path / name
    if content is None:
        src.mkdir()
        (src / 'saved_model.pb').write_bytes(b'\x08\x01')
    else:
        src.write_bytes(content)
    assert convert_main([str(src), str(tmp_path / 'out.pth')]) == 1
    err = capsys.readouterr().err
    assert f'{src} is not converted' in err and ('TensorFlow' in err or 'Keras' in err), err
    assert 'ychfan/wdsr' in err and not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_official_2019_release_fits_the_shipped_reloaded_files(tmp_path, scale):
    # the released small models (16 blocks, 32 features, x4 wide) load strictly into the networks of
    # options/authors/test_reloaded_wdsr_x{scale}.yml, whose settings are the ones the converter infers
    from helpers import OPTIONS
    from wdsr_basicsr.options import load_options

    net, network_g = run_convert(tmp_path, official_2019(32, 16, 128, scale))
    shipped = load_options(OPTIONS / 'authors' / f'test_reloaded_wdsr_x{scale}.yml')['network_g']
    for key in ('type', 'num_feat', 'num_block', 'expansion', 'upscale', 'res_scale', 'img_range', 'rgb_mean'):
        assert network_g[key] == shipped[key], key
    build_network(dict(shipped)).load_state_dict(torch.load(tmp_path / 'ours.pth', weights_only=True)['params'])


@pytest.mark.parametrize(
    'damage, says',
    [
        (lambda s: s.update({'tail.0.weight_v': s['tail.0.weight_v'][:5]}), 'do not have the shapes of a WDSR network'),
        (lambda s: s.update({'tail.0.weight_g': 'cut'}), "maps 'tail.0.weight_g' to a str"),
        (lambda s: s.update({7: s.pop('skip.0.bias')}), 'maps 7 to a Tensor'),
    ],
)
def test_damaged_2018_file_is_named(tmp_path, capsys, damage, says):
    official = official_2018('A', 8, 2, 16, 2)
    damage(official)
    torch.save(official, tmp_path / 'official.pt')
    assert convert_main([str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth'), '--release', '2018-11']) == 1
    err = capsys.readouterr().err
    assert says in err and 'Traceback' not in err and not (tmp_path / 'ours.pth').exists()


def test_2019_state_dict_that_is_a_list_is_named(tmp_path, capsys):
    torch.save({'model_state_dict': [1, 2]}, tmp_path / 'official.pt')
    assert convert_main([str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth')]) == 1
    assert 'its state dict is a list, not a mapping of names to tensors' in capsys.readouterr().err


def test_destination_that_is_the_source_or_a_folder_is_refused(tmp_path, capsys):
    official = tmp_path / 'official.pt'
    torch.save(official_2018('A', 8, 2, 16, 2), official)
    before = official.read_bytes()
    assert convert_main([str(official), str(official), '--release', '2018-11']) == 1
    assert 'is SRC itself; the official checkpoint is never written over' in capsys.readouterr().err
    assert official.read_bytes() == before
    assert convert_main([str(official), str(tmp_path), '--release', '2018-11']) == 1
    assert f'DST {tmp_path} is a folder' in capsys.readouterr().err


def test_garbage_is_not_called_a_pickle_that_runs_code(tmp_path, capsys):
    (tmp_path / 'garbage.pt').write_bytes(bytes(range(256)) * 3)
    assert convert_main([str(tmp_path / 'garbage.pt'), str(tmp_path / 'ours.pth')]) == 1
    err = capsys.readouterr().err
    assert 'is not a PyTorch checkpoint' in err and 'could run code' not in err and 'weights_only' not in err
