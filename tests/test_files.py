"""The one writer of files a user keeps: aside, synced, renamed; what a kill leaves is found and removed."""

import glob
import os
import signal
import subprocess
import sys

import pytest

from wdsr_basicsr.files import is_leftover, remove_leftovers, written_aside


def test_the_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / 'state.pth'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with written_aside(str(target)) as tmp:
            with open(tmp, 'w') as f:
                f.write('half')
            assert target.read_text() == 'old' and os.path.dirname(tmp) == str(tmp_path)
            raise RuntimeError('killed mid-save')
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['state.pth']
    with written_aside(str(target)) as tmp:
        with open(tmp, 'w') as f:
            f.write('new')
    assert target.read_text() == 'new' and os.listdir(tmp_path) == ['state.pth']
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not mkstemp's 0600


def test_a_folder_and_a_suffix_for_writers_that_go_by_the_extension(tmp_path):
    with written_aside(str(tmp_path / 'Set5'), folder=True) as tmp:
        os.makedirs(os.path.join(tmp, 'GTmod12'))
        assert os.path.basename(tmp).startswith('.Set5.') and is_leftover(os.path.basename(tmp), 'Set5')
    assert os.listdir(tmp_path / 'Set5') == ['GTmod12']
    with written_aside(str(tmp_path / 'model.onnx'), suffix='.onnx') as tmp:
        assert tmp.endswith('.partial.onnx')
        open(tmp, 'w').close()
    assert sorted(os.listdir(tmp_path)) == ['Set5', 'model.onnx']


KILLED = """import os, signal, sys
from wdsr_basicsr.files import written_aside
with written_aside(sys.argv[1]) as tmp:
    with open(tmp, 'w') as f:
        f.write('half')
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_what_a_killed_writer_leaves_is_found_and_removed(tmp_path):
    target = tmp_path / 'net_g_6.pth'
    target.write_text('old')
    (tmp_path / '.hidden_by_the_user').write_text('kept')
    result = subprocess.run([sys.executable, '-c', KILLED, str(target)], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if is_leftover(n)]
    assert len(left) == 1 and left[0].startswith('.net_g_6.pth.') and target.read_text() == 'old'
    assert remove_leftovers(str(tmp_path), 'other.pth') == []  # only the name asked for
    assert remove_leftovers(str(tmp_path)) == [str(tmp_path / left[0])]
    assert sorted(os.listdir(tmp_path)) == ['.hidden_by_the_user', 'net_g_6.pth']


def test_only_the_leftovers_of_the_names_asked_for_are_removed(tmp_path):
    """A user's own hidden files beside prepared data stay; a name with pattern characters is matched as written."""
    for entry in ('.Set5.k2.partial', '.mine.k2.partial', '.a[b].k2.partial', '.ab.k2.partial'):
        (tmp_path / entry).mkdir()
    assert remove_leftovers(str(tmp_path), 'Set5') == [str(tmp_path / '.Set5.k2.partial')]
    assert remove_leftovers(str(tmp_path), glob.escape('a[b]')) == [str(tmp_path / '.a[b].k2.partial')]
    assert sorted(os.listdir(tmp_path)) == ['.ab.k2.partial', '.mine.k2.partial']
