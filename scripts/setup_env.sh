#!/usr/bin/env bash
# Set up the project's virtual environment in .venv: create it if missing and
# install the project (editable) with its test extras. Re-running is quick: it
# reinstalls only when setup.py has changed since the last successful install.
#
# Usage: bash scripts/setup_env.sh        (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
stamp=.venv/.wdsr-basicsr-installed
wanted=$(sha256sum setup.py | cut -d' ' -f1)

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$wanted" > "$stamp"
fi
