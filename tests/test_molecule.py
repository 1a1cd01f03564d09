"""Each role's molecule scenario (create, prepare, converge, idempotence, verify, destroy) on a local node image,
and the engine-using roles in check mode on a node that has no engine yet."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent.parent.name for p in REPO.glob("roles/*/molecule/default/molecule.yml"))

pytestmark = pytest.mark.molecule
BARE_NODE_IMAGE = "localhost/fleet-node-base:trixie"
ARCHIVES = REPO / ".cache" / "images"


def _need_docker() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("a Docker engine is required for the molecule scenarios (run scripts/setup.sh)")


def test_every_role_has_a_molecule_scenario() -> None:
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_scenario(role: str) -> None:
    _need_docker()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               ANSIBLE_NOCOLOR="1", PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(["molecule", "test"], cwd=REPO / "roles" / role, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"molecule test failed for {role}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"


def test_check_mode_on_a_node_without_an_engine(tmp_path: Path) -> None:
    """`configure --check` on a fresh node: the docker role only simulates the install, so there is no engine (no
    /var/run/docker.sock, no docker CLI). The bacalhau, image_archive and sensor roles must report their files and
    skip what needs Docker, not fail."""
    _need_docker()
    for archive in ("bacalhau-double.tar", "sensor-double.tar"):
        if not (ARCHIVES / archive).is_file():
            pytest.fail(f"{ARCHIVES / archive} is missing (run scripts/build-images.sh)")
    token = tmp_path / "orchestrator.token"
    token.write_text("check-mode-token-0123456789\n")
    token.chmod(0o600)
    node_vars = {
        "fleet_instance_id": "i-0checkmode0000001",
        "bacalhau_orchestrator_endpoint": "nats://127.0.0.1:4222",
        "bacalhau_orchestrator_token_file": str(token),
        "bacalhau_image": "localhost/bacalhau-double:test",
        "bacalhau_image_source": "archive",
        "bacalhau_image_archive": str(ARCHIVES / "bacalhau-double.tar"),
        "sensor_image": "localhost/sensor-double:test",
        "sensor_image_source": "archive",
        "sensor_image_archive": str(ARCHIVES / "sensor-double.tar"),
        "sensor_identity_imds_enabled": False,
    }
    (tmp_path / "vars.json").write_text(json.dumps(node_vars))
    play = [{"name": "Configure a fresh node", "hosts": "all", "gather_facts": False,
             "roles": [{"role": "bacalhau"}, {"role": "sensor"}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    name = f"fleetmol-check-{uuid.uuid4().hex[:8]}"
    # No systemd and no engine: check mode only reads the node.
    started = subprocess.run(["docker", "run", "-d", "--name", name, BARE_NODE_IMAGE, "sleep", "infinity"],
                             capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   ANSIBLE_NOCOLOR="1", ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_LOCALHOST_WARNING="0")
        result = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "--check", "--diff",
             "-i", f"{name},", "-c", "community.docker.docker", "-e", "ansible_python_interpreter=/usr/bin/python3",
             "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "failed=0" in result.stdout and "unreachable=0" in result.stdout, output[-3000:]
    # Each role noticed the missing engine once and asked Docker nothing.
    assert output.count("Check mode with no Docker engine running") == 4, output[-6000:]
    for task in ("Look for the image on the node", "Start the Bacalhau compute node", "Start the sensor service"):
        assert f"skipping: [{name}]" in output.split(task, 1)[1].split("TASK [", 1)[0], task
    assert "check-mode-token" not in output
