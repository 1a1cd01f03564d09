"""The one local fleet the E2E modules share (session-scoped): test_local_fleet.py brings it up and works it,
test_local_fleet_ops.py (run after it) exercises the operations on it and takes it down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_fleet import ARCHIVES, CommandLineWatcher, Fleet, write_aws_credentials


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for archive in ("doubles.tar",):
        if not (ARCHIVES / archive).is_file():
            pytest.fail(f"{ARCHIVES / archive} is missing: run scripts/build-images.sh (scripts/setup.sh does)")
    work = tmp_path_factory.mktemp("fleet")
    name = f"e2e{uuid.uuid4().hex[:6]}"
    token = f"tok-E2E-{uuid.uuid4().hex}"
    token_file = work / "orchestrator.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    # The orchestrator's API requires a key (API.Auth.Users): the controller's reads are authenticated for real.
    api_key = f"key-E2E-{uuid.uuid4().hex}"
    (work / "api.key").write_text(api_key + "\n")
    (work / "api.key").chmod(0o600)
    # S3 keys (fake: nothing here talks to AWS) so rotation can be proven batch by batch.
    aws_key_id, aws_secret = f"AKIAE2E{uuid.uuid4().hex[:13].upper()}", f"e2eSecret{uuid.uuid4().hex}"
    write_aws_credentials(work / "aws-credentials", aws_key_id, aws_secret)
    # An operator's own key, offered before the local provider's: the nodes accept it once ssh_access ran.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@e2e", "-f", str(work / "operator")],
                   check=True, capture_output=True)
    fleet_file = work / "fleet.yaml"
    fleet_file.write_text(
        f"""
name: {name}
provider: local
regions:
  us-east-1: {{count: 2}}
  eu-west-1: {{count: 1}}
orchestrator:
  endpoint: local
  token_file: orchestrator.token
  api: local
  api_token_file: api.key
bacalhau:
  version: v1.9.3
  image: localhost/bacalhau-double:test
sensor:
  version: test
  image: localhost/sensor-double:test
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'doubles.tar'}
  sensor_archive: {ARCHIVES / 'doubles.tar'}
aws_credentials:
  file: aws-credentials
canary:
  image: localhost/fleet-python:trixie   # python3 with sqlite3; in doubles.tar beside the doubles it is built under
  archive: {ARCHIVES / 'doubles.tar'}
labels:
  team: e2e
ssh:
  authorized_keys: [operator.pub]
  identity_file: operator
role_vars:
  # The readings check samples twice this far apart: 3 s (not 10) keeps every health run and watcher tick short.
  health_check_readings_interval_seconds: 3
  # The compute double runs the canary's docker-loaded image, which has no repository digest: a real node would
  # ask the registry for its manifest first (tests/doubles/README.md, Jobs). A deviation of the double, opted in.
  bacalhau_environment: {{BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES: "1"}}
"""
    )
    # A temp dir of its own: what the CLI leaves behind there is this fleet's, whatever else runs on the machine.
    (work / "tmp").mkdir()
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(work / "state"), COLUMNS="250", NO_COLOR="1",
               TMPDIR=str(work / "tmp"), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    handle = Fleet(name=name, fleet_file=fleet_file, token=token, env=env,
                   watcher=CommandLineWatcher(token, api_key, aws_secret), api_key=api_key,
                   aws_keys=[aws_key_id, aws_secret])
    with handle.watcher:
        yield handle
        handle.deploy("down", "--yes")
    for leftover in handle.containers().values():
        subprocess.run(["docker", "rm", "-f", "-v", leftover], capture_output=True)
    handle.inventory.unlink(missing_ok=True)  # a failed down must not leave dead hosts in inventory/
    # Variants the tests built on the host (build_variant tags them "<fleet name>-...").
    listed = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True).stdout.split()
    variants = [image for image in listed if image.rsplit(":", 1)[-1].startswith(f"{name}-")]
    if variants:
        subprocess.run(["docker", "rmi", *variants], capture_output=True)
