"""`up` on a local fleet whose service images can't be pulled stops at once with one line, creating nothing.

The registry named here is 127.0.0.1:9 (discard port, nothing listens): the pull is refused on loopback, which is
what an unreachable registry looks like without sending traffic anywhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_unpullable_images_stop_up_early_with_one_line(tmp_path: Path) -> None:
    token = tmp_path / "orchestrator.token"
    token.write_text("pull-test-token\n")
    token.chmod(0o600)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        """
name: pulltest
provider: local
regions: {us-east-1: {count: 1}}
orchestrator: {endpoint: local, token_file: orchestrator.token}
bacalhau: {version: v1.9.3, image: "127.0.0.1:9/bacalhau-project/bacalhau:v1.9.3"}
sensor: {version: "1.0.0", image: "127.0.0.1:9/bacalhau-project/sensor-log-generator:1.0.0"}
"""
    )
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(tmp_path / "state"))
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet), "up"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, lines
    assert "127.0.0.1:9/bacalhau-project/bacalhau:v1.9.3" in lines[0]
    assert "127.0.0.1:9/bacalhau-project/sensor-log-generator:1.0.0" in lines[0]
    assert "images.source: archive" in lines[0]
    assert elapsed < 120  # one bounded try per image, never a retry loop
    leftovers = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=fleetdeploy.fleet=pulltest"],
                               capture_output=True, text=True, check=True).stdout.strip()
    networks = subprocess.run(["docker", "network", "ls", "-q", "--filter", "name=fleet-pulltest"],
                              capture_output=True, text=True, check=True).stdout.strip()
    assert leftovers == "" and networks == ""
