#!/usr/bin/env bash
# Runs every test: unit, CLI, lint, molecule scenarios of every role, and the end-to-end local fleet.
# Installs what is missing first (scripts/setup.sh), so it works on a fresh machine. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
FLEETDEPLOY_EXTRAS="${FLEETDEPLOY_EXTRAS:-test,gcp,azure}" bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest -ra --durations=25 "$@"
