#!/usr/bin/env bash
# The project's one test command (README: "Run the tests"): installs tox if needed and
# runs every tox environment (tests on the oldest and newest TensorFlow, lint, type, docs, pkg).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "tox>=4.20" 2>/dev/null || python3 -m pip install --user --quiet "tox>=4.20"
exec python3 -m tox "$@"
