"""The results writer on its own: no model, only a run's options."""

import inspect
import json

from basicsr.models.sr_model import SRModel

from wdsr_basicsr.models.results import VALIDATIONS_FILE, ResultsWriter


def options(tmp_path, is_train, **val):
    path = {'visualization': str(tmp_path / 'vis'), 'experiments_root': str(tmp_path), 'results_root': str(tmp_path)}
    return {'is_train': is_train, 'name': 'run', 'scale': 2, 'path': path, 'val': val}


def test_a_training_run_records_one_row_per_iteration_and_set(tmp_path):
    writer = ResultsWriter(options(tmp_path, True))
    for it in (5, 10):
        writer.write([(0, 'a', {'psnr': 30.0 + it}, None)], 'Set5', it, {'psnr': 30.0 + it}, False)
    rows = [json.loads(line) for line in (tmp_path / VALIDATIONS_FILE).read_text().splitlines()]
    assert rows == [{'iter': it, 'dataset': 'Set5', 'mean': {'psnr': 30.0 + it}} for it in (5, 10)]
    assert writer.recorded(10) == {'Set5'} and writer.recorded(7) == set()
    writer.forget_after(5)  # a run resumed at 5 trains 6..10 again
    assert writer.recorded(10) == set() and writer.recorded(5) == {'Set5'}
    assert not (tmp_path / 'metrics_Set5.json').exists()


def test_a_test_run_writes_per_image_metrics(tmp_path):
    writer = ResultsWriter(options(tmp_path, False))
    writer.write(
        [(0, 'a', {'psnr': 31.0}, None), (1, 'b', {'psnr': 33.0})[:3] + (None,)], 'Set5', 'run', {'psnr': 32.0}, False
    )
    assert json.loads((tmp_path / 'metrics_Set5.json').read_text()) == {
        'dataset': 'Set5',
        'mean': {'psnr': 32.0},
        'images': {'a': {'psnr': 31.0}, 'b': {'psnr': 33.0}},
    }
    assert writer.record is None and not (tmp_path / VALIDATIONS_FILE).exists()


def test_images_go_where_basicsr_s_sr_model_puts_them(tmp_path):
    """basicsr 1.4.2's nondist_validation: <visualization>/<img>/<img>_<iter>.png in training, else
    <visualization>/<set>/<img>_<suffix or name>.png."""
    source = ' '.join(inspect.getsource(SRModel.nondist_validation).split())
    assert "['visualization'], img_name, f'{img_name}_{current_iter}.png')" in source
    assert 'f\'{img_name}_{self.opt["val"]["suffix"]}.png\'' in source
    vis = tmp_path / 'vis'
    assert ResultsWriter(options(tmp_path, True)).image_path('Set5', 'a', 7) == str(vis / 'a' / 'a_7.png')
    assert ResultsWriter(options(tmp_path, False)).image_path('Set5', 'a', 'run') == str(vis / 'Set5' / 'a_run.png')
    writer = ResultsWriter(options(tmp_path, False, suffix='x2'))
    assert writer.image_path('Set5', 'a', 'run') == str(vis / 'Set5' / 'a_x2.png')
