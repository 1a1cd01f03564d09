#!/usr/bin/env bash
# Brings up a 3-node local fleet (container nodes on this machine, a local orchestrator) and prints its health.
#   bash scripts/quickstart.sh            real service images from ghcr.io (needs a registry connection)
#   bash scripts/quickstart.sh --doubles  the locally built test doubles of the service images (works offline)
set -euo pipefail
cd "$(dirname "$0")/.."
fleet=examples/local-fleet.yaml
case "${1:-}" in
  --doubles) fleet=examples/local-fleet-doubles.yaml ;;
  "") ;;
  *) echo "usage: bash scripts/quickstart.sh [--doubles]" >&2; exit 2 ;;
esac
bash scripts/setup.sh
token=examples/local.token
if [ ! -s "$token" ]; then
  (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(32))' > "$token")
  echo "quickstart: wrote a new orchestrator token to $token (0600, git-ignored)"
fi
exec .venv/bin/python deploy.py -f "$fleet" up
