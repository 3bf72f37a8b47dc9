"""Which checkpoints a run keeps: the last N iterations, the newest training state, nothing else of the user's."""

from wdsr_basicsr.utils.retention import checkpoints_to_remove


def make(folder, names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b'x')


def test_the_last_n_iterations_stay(tmp_path):
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    make(models, ['net_g_5.pth', 'net_g_10.pth', 'net_g_15.pth', 'net_g_20.pth', 'net_g_25.pth'])
    make(models, ['net_g_latest.pth', 'net_g_best.pth', 'net_g_10.pth.bak', 'net_d_10.pth', 'mine.pth'])
    make(states, ['5.state', '10.state', '15.state', '20.state', '25.state', 'notes.state'])
    removed = checkpoints_to_remove(str(models), str(states), 2, 20)  # 25: left by a run resumed from 20
    assert removed == [
        str(states / '10.state'),
        str(models / 'net_d_10.pth'),
        str(models / 'net_g_10.pth'),
        str(states / '5.state'),
        str(models / 'net_g_5.pth'),
    ]


def test_the_newest_training_state_stays_beyond_n(tmp_path):
    """Network files saved after the newest training state (which a resume needs) do not push it out."""
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    make(models, ['net_g_4.pth', 'net_g_8.pth', 'net_g_12.pth'])
    make(states, ['4.state', '8.state'])
    assert checkpoints_to_remove(str(models), str(states), 1, 12) == [
        str(states / '4.state'),
        str(models / 'net_g_4.pth'),
    ]
