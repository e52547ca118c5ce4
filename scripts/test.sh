#!/usr/bin/env bash
# The project's one test command (README: "Run the tests"): installs tox if needed and
# runs every tox environment (the suite on Python 3.11-3.13, the oldest TensorFlow on the
# oldest Python; lint, type, docs, pkg).
set -euo pipefail
cd "$(dirname "$0")/.."
# The Python that runs tox, fixed before PATH changes below.
PY="$(command -v python3)"
# tox finds each claimed Python as python3.X on PATH. pyenv's shims for versions that are
# not active fail ("pyenv: python3.10: command not found"), so the interpreters' own bin
# directories go first. Without pyenv this changes nothing.
pyenv_root="$(pyenv root 2>/dev/null || true)"
pyenv_root="${pyenv_root:-${PYENV_ROOT:-}}"
if [ -n "$pyenv_root" ]; then
    for bin in "$pyenv_root"/versions/*/bin; do
        if [ -d "$bin" ]; then PATH="$bin:$PATH"; fi
    done
    export PATH
fi
"$PY" -m pip install --quiet "tox>=4.20" 2>/dev/null || "$PY" -m pip install --user --quiet "tox>=4.20"
exec "$PY" -m tox "$@"
