"""The suite's entry server (``entry_server.py``): a command it runs, and one that command starts, run as fresh
interpreters would."""

import sys

from helpers import run

STARTS = """
import sys
import basicsr.utils.logger
from wdsr_basicsr import runs

basicsr.utils.logger.initialized_logger['basicsr'] = None  # what a run's own logging leaves in its process
print('parent', flush=True)
result = runs.subprocess.run([sys.executable, '-u', sys.argv[1]], capture_output=True, text=True)
print(result.returncode, repr(result.stdout), repr(result.stderr))
"""

STARTED = """
import sys
import basicsr.utils.logger

print('basicsr' in basicsr.utils.logger.initialized_logger, sys.stdout.write_through, sys.argv[0])
sys.exit('one line')
"""


def test_a_command_a_run_starts_is_forked_from_the_pristine_server(tmp_path):
    """Not from the run: basicsr's logger state of the run is not in it; ``python -u``: unbuffered; the exit
    status, stdout and stderr as ``subprocess.run`` gives them; the run's own output untouched by its child."""
    (tmp_path / 'starts.py').write_text(STARTS)
    (tmp_path / 'started.py').write_text(STARTED)
    result = run([sys.executable, 'starts.py', str(tmp_path / 'started.py')], tmp_path)
    assert result.returncode == 0, result.stderr
    started = f'False True {tmp_path / "started.py"}\n'
    assert result.stdout == f'parent\n1 {started!r} {"one line" + chr(10)!r}\n'
