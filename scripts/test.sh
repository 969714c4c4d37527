#!/usr/bin/env bash
# The whole test suite as CI runs it: lint and mypy --strict over device/ and tests/, the state machine check, then
# every test (slow ones too).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ruff check device tests
ruff format --check device tests
mypy
spine fsm --check
pytest -q --durations=25  # the slowest tests at the end of the log: what to trim when CI nears its budget
