"""`deploy.py import-legacy` on config files in the legacy deployer's real formats (tests/legacy/README.md): the
fleet file it prints passes `plan`, the legacy split rule, the token never copied, every unmapped key named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.migrate.legacy import split_instances
from fleetdeploy.providers.skypilot.task import render_task

REPO = Path(__file__).resolve().parent.parent
LEGACY = REPO / "tests" / "legacy"
TOKEN = "legacy-token-never-printed-7f3a"


def _deploy(*args: str, cwd: Path = REPO, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, str(REPO / "deploy.py"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def _project(tmp_path: Path, config: str, files: str, endpoint: str = "nats://orch.example.com:4222") -> Path:
    """A legacy project directory: its config.yaml and the orchestrator files where that version keeps them."""
    project = tmp_path / "legacy-project"
    (project / files).mkdir(parents=True)
    shutil.copy(LEGACY / config, project / "config.yaml")
    (project / files / "orchestrator_endpoint").write_text(endpoint + "\n")
    token = project / files / "orchestrator_token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return project / "config.yaml"


def _import(config: Path, *extra: str, home: Path | None = None) -> tuple[dict[str, Any], str]:
    # A HOME of the test's own: the legacy configs name ~/.ssh keys, and this machine's must not decide.
    done = _deploy("import-legacy", str(config), *extra, home=home or config.parent)
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    return yaml.safe_load(done.stdout), done.stderr


@pytest.mark.parametrize(("total", "regions", "expected"), [
    (7, ["a", "b", "c"], {"a": 3, "b": 2, "c": 2}),
    (10, ["a", "b", "c", "d"], {"a": 3, "b": 3, "c": 2, "d": 2}),
    (2, ["a", "b", "c"], {"a": 1, "b": 1}),
    (3, ["a"], {"a": 3}),
])
def test_the_legacy_split_rule(total: int, regions: list[str], expected: dict[str, int]) -> None:
    assert split_instances(total, regions) == expected


def test_amauo_3_0_20_project_becomes_a_fleet_that_plan_accepts(tmp_path: Path) -> None:
    config = _project(tmp_path, "amauo-3.0.20-to-3.0.27.config.yaml", "instance-files/etc/bacalhau")
    fleet, notes = _import(config)
    assert fleet["name"] == "amauo" and fleet["provider"] == "skypilot"
    assert {region: spec["count"] for region, spec in fleet["regions"].items()} == {
        "us-west-2": 3, "us-east-1": 3, "eu-west-1": 2, "ap-southeast-2": 2}
    assert fleet["regions"]["eu-west-1"]["instance_type"] == "t3.large"
    assert fleet["regions"]["ap-southeast-2"]["image_id"] == "ami-0e8fd5cc56e4ad1e5"
    assert "image_id" not in fleet["regions"]["us-west-2"]
    assert fleet["defaults"] == {"instance_type": "t3.medium", "spot": True, "disk_size_gb": 50}
    token_file = config.parent / "instance-files/etc/bacalhau/orchestrator_token"
    assert fleet["orchestrator"] == {"endpoint": "nats://orch.example.com:4222", "token_file": str(token_file)}
    for key in ("username", "files_directory", "tags", "use_dedicated_vpc"):
        assert f"note: aws.{key}: no equivalent (" in notes, key
    # No such key pair in this HOME: left out, and said why.
    assert "note: aws.public_ssh_key_path and aws.private_ssh_key_path: not carried over (ssh.authorized_keys.0: " \
        in notes and "id_ed25519.pub: file not found); the nodes still take SkyPilot's key" in notes
    assert "ssh" not in fleet
    assert "us-west-2: image auto means the newest Ubuntu AMI" in notes

    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(_deploy("import-legacy", str(config)).stdout)
    planned = _deploy("-f", str(fleet_file), "plan", "-o", "json")
    assert planned.returncode == 0, planned.stderr
    rendered = render_task(load_fleet(fleet_file), "ap-southeast-2")
    assert rendered["resources"]["image_id"] == "ami-0e8fd5cc56e4ad1e5"  # type: ignore[index]
    assert "image_id" not in render_task(load_fleet(fleet_file), "us-east-1")["resources"]  # type: ignore[operator]


def test_the_legacy_key_pair_becomes_the_operators_own_key(tmp_path: Path) -> None:
    config = _project(tmp_path, "spot-deployer-v1.0.x.config.yaml", "files")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
                   check=True)
    fleet, notes = _import(config, home=home)
    # As written: `~` is whoever runs the fleet file, each operator their own key.
    assert fleet["ssh"] == {"authorized_keys": ["~/.ssh/id_ed25519.pub"], "identity_file": "~/.ssh/id_ed25519"}
    assert "aws.public_ssh_key_path -> ssh.authorized_keys, aws.private_ssh_key_path -> ssh.identity_file" in notes
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(_deploy("import-legacy", str(config), home=home).stdout)
    planned = _deploy("-f", str(fleet_file), "plan", "-o", "json", home=home)
    assert planned.returncode == 0, planned.stderr


def test_spot_deployer_v1_project_with_a_price_limit(tmp_path: Path) -> None:
    config = _project(tmp_path, "spot-deployer-v1.0.x.config.yaml", "files", endpoint="orch.example.com")
    fleet, notes = _import(config, "--name", "wind-farm")
    assert fleet["name"] == "wind-farm"
    assert {region: spec["count"] for region, spec in fleet["regions"].items()} == {
        "us-west-2": 2, "us-east-1": 2, "eu-west-1": 1}
    assert fleet["defaults"]["disk_size_gb"] == 30
    assert "aws.spot_price_limit: no equivalent (the legacy tool checked it but never sent it" in notes
    assert "aws.docker_compose_template: no equivalent" in notes
    assert load_fleet(_written(tmp_path, config)).orchestrator.endpoint == "nats://orch.example.com:4222"


def test_the_config_amauo_setup_writes_with_files_elsewhere(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    shutil.copy(LEGACY / "amauo-3.0.2-to-3.0.19.setup.yaml", project / "config.yaml")
    elsewhere = _project(tmp_path, "amauo-3.0.2-to-3.0.19.config.yaml", "secrets").parent / "secrets"
    fleet, _ = _import(project / "config.yaml", "--files", str(elsewhere))
    assert fleet["regions"] == {"us-west-2": {"count": 3}} and fleet["defaults"]["instance_type"] == "t3.medium"
    assert fleet["orchestrator"]["token_file"] == str(elsewhere / "orchestrator_token")


def test_json_output(tmp_path: Path) -> None:
    config = _project(tmp_path, "amauo-3.0.2-to-3.0.19.config.yaml", "files")
    done = _deploy("import-legacy", str(config), "-o", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["fleet"]["regions"]["eu-central-1"] == {"count": 2, "instance_type": "t3a.large",
                                                           "image_id": "ami-0084a47cc718c111a"}
    assert any(note.startswith("aws.spot_price_limit: no equivalent") for note in document["notes"])
    assert TOKEN not in done.stdout


def _written(tmp_path: Path, config: Path) -> Path:
    fleet_file = tmp_path / "imported.yaml"
    fleet_file.write_text(_deploy("import-legacy", str(config)).stdout)
    return fleet_file


@pytest.mark.parametrize(("change", "expected"), [
    (lambda c: c.unlink(), "config.yaml: file not found"),
    (lambda c: c.write_text("max_instances: 3\nbacalhau: {token: x}\n"), "the v0.0.x format"),
    (lambda c: c.write_text("name: x\nnum_nodes: 3\nresources: {}\n"), "a SkyPilot task (spot-deployer v2.x)"),
    (lambda c: c.write_text("aws: {total_instances: 0}\nregions: [{us-east-1: {}}]\n"),
     "aws.total_instances must be a whole number >= 1"),
    (lambda c: c.write_text("aws: {}\nregions: []\n"), "`regions:` is empty"),
    (lambda c: (c.parent / "files" / "orchestrator_token").chmod(0o644), "run: chmod 600"),
    (lambda c: (c.parent / "files" / "orchestrator_endpoint").unlink(), "no orchestrator_endpoint and "
     "orchestrator_token found"),
    (lambda c: (c.parent / "files" / "orchestrator_endpoint").write_text("http://x:1/\n"), "orchestrator.endpoint"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, change: Any, expected: str) -> None:
    config = _project(tmp_path, "amauo-3.0.2-to-3.0.19.config.yaml", "files")
    change(config)
    done = _deploy("import-legacy", str(config))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert TOKEN not in done.stderr
