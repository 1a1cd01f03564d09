"""Inventory builder: architecture.md shape, stable names, no secret values, 0600 file real Ansible can read."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fleetdeploy.errors import FleetError
from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.inventory import build_inventory, inventory_path, write_inventory

TOKEN = "orchestrator-token-7c1d2e"
AWS_SECRET = "aws-secret-key-0f9e8d"


@pytest.fixture()
def fleet(tmp_path: Path) -> Fleet:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    (tmp_path / "creds").write_text(f"[edge]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = {AWS_SECRET}\n")
    (tmp_path / "b.tar").write_bytes(b"b")
    (tmp_path / "s.tar").write_bytes(b"s")
    data = {
        "name": "edge-demo",
        "regions": {"us-east-1": {"count": 2}, "eu-west-1": {"count": 1}},
        "orchestrator": {"endpoint": "orch.example.com", "token_file": "token"},
        "aws_credentials": {"file": "creds", "profile": "edge"},
        "sensor": {"version": "1.0.0"},
        "images": {"source": "archive", "bacalhau_archive": "b.tar", "sensor_archive": "s.tar"},
        "labels": {"team": "edge", "env": "test"},
    }
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    return load_fleet(tmp_path / "fleet.yaml")


def node(instance_id: str, region: str, host: str, zone: str | None = None) -> Node:
    return Node(
        instance_id=instance_id,
        cluster=f"edge-demo-{region}",
        region=region,
        zone=zone,
        host=host,
        port=22,
        user="ubuntu",
        key_file="/root/.sky/clients/abcd/ssh/sky-key",
        spot=True,
    )


NODES = [
    node("i-0bbb", "us-east-1", "198.51.100.2", "us-east-1a"),
    node("i-0aaa", "us-east-1", "198.51.100.1", "us-east-1a"),
    node("i-0ccc", "eu-west-1", "198.51.100.3"),
]


def test_shape_and_vars(fleet: Fleet, tmp_path: Path) -> None:
    inv = build_inventory(fleet, NODES, {})
    group = inv["all"]["children"]["fleet_edge_demo"]
    assert list(group["children"]) == ["edge_demo_eu_west_1", "edge_demo_us_east_1"]
    east = group["children"]["edge_demo_us_east_1"]["hosts"]
    assert list(east) == ["edge-demo-i-0aaa", "edge-demo-i-0bbb"]
    assert east["edge-demo-i-0aaa"] == {
        "ansible_host": "198.51.100.1",
        "ansible_port": 22,
        "ansible_user": "ubuntu",
        "ansible_ssh_private_key_file": "/root/.sky/clients/abcd/ssh/sky-key",
        "fleet_node_key_file": "/root/.sky/clients/abcd/ssh/sky-key",
        "fleet_login_user": "ubuntu",
        "fleet_cluster": "edge-demo-us-east-1",
        "fleet_region": "us-east-1",
        "fleet_cloud": "aws",
        "fleet_zone": "us-east-1a",
        "fleet_instance_id": "i-0aaa",
        "fleet_spot": True,
    }
    digest = group["vars"].pop("fleet_config_digest")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert group["vars"] == {
        "fleet_name": "edge-demo",
        "fleet_provider": "skypilot",
        "bacalhau_version": "v1.9.3",
        "bacalhau_image": "ghcr.io/bacalhau-project/bacalhau:v1.9.3",
        "bacalhau_image_source": "archive",
        "bacalhau_orchestrator_endpoint": "nats://orch.example.com:4222",
        "bacalhau_orchestrator_token_file": str(tmp_path / "token"),
        "bacalhau_labels": {"env": "test", "team": "edge"},
        "sensor_image": "ghcr.io/bacalhau-project/sensor-log-generator:1.0.0",
        "sensor_image_source": "archive",
        "aws_credentials_enabled": True,
        "ssh_access_authorized_keys": [],
        "bacalhau_image_archive": str(tmp_path / "b.tar"),
        "sensor_image_archive": str(tmp_path / "s.tar"),
        "aws_credentials_source_file": str(tmp_path / "creds"),
        "aws_credentials_profile": "edge",
    }


def test_stable_across_reordering(fleet: Fleet) -> None:
    first = build_inventory(fleet, NODES, {})
    again = build_inventory(fleet, list(reversed(NODES)), {})
    assert yaml.safe_dump(first, sort_keys=False) == yaml.safe_dump(again, sort_keys=False)
    # A replaced worker takes the old IP order slot: names still follow instance ids.
    swapped = [replace(NODES[0], host="198.51.100.1"), replace(NODES[1], host="198.51.100.9"), NODES[2]]
    hosts = build_inventory(fleet, swapped, {})["all"]["children"]["fleet_edge_demo"]["children"][
        "edge_demo_us_east_1"
    ]["hosts"]
    assert hosts["edge-demo-i-0bbb"]["ansible_host"] == "198.51.100.1"


def _digest(fleet: Fleet, roles: str = "roles-v1") -> str:
    return str(build_inventory(fleet, NODES, {}, roles_digest=roles)["all"]["children"]["fleet_edge_demo"]["vars"][
        "fleet_config_digest"])


def test_config_digest_follows_roles_inputs_and_secret_contents(fleet: Fleet, tmp_path: Path) -> None:
    base = _digest(fleet)
    assert _digest(fleet) == base  # pure: same inputs, same digest
    assert build_inventory(fleet, NODES[:1], {}, roles_digest="roles-v1")["all"]["children"]["fleet_edge_demo"][
        "vars"]["fleet_config_digest"] == base  # the node set is not an input: nodes converge one by one
    assert _digest(fleet, roles="roles-v2") != base
    assert _digest(fleet.model_copy(update={"labels": {"team": "other"}})) != base
    token = tmp_path / "token"
    token.write_text("a-rotated-token\n")
    rotated = _digest(fleet)
    assert rotated != base
    assert "a-rotated-token" not in yaml.safe_dump(build_inventory(fleet, NODES, {}, roles_digest="roles-v1"))


def test_registry_fleet_has_no_archive_or_aws_vars(fleet: Fleet, tmp_path: Path) -> None:
    data = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    del data["images"], data["aws_credentials"]
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    group_vars = build_inventory(load_fleet(tmp_path / "fleet.yaml"), [], {})["all"]["children"]["fleet_edge_demo"][
        "vars"
    ]
    assert group_vars["aws_credentials_enabled"] is False
    assert not {"bacalhau_image_archive", "sensor_image_archive", "aws_credentials_source_file"} & set(group_vars)


def test_extra_vars_and_sanitised_names(fleet: Fleet) -> None:
    odd = node("Container_ABC.1", "us-east-1", "127.0.0.1")
    extra = {
        "docker_daemon_environment": {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"},
        "sensor_identity_imds_enabled": False,
    }
    inv = build_inventory(fleet, [odd], extra)
    group = inv["all"]["children"]["fleet_edge_demo"]
    assert list(group["children"]["edge_demo_us_east_1"]["hosts"]) == ["edge-demo-container-abc-1"]
    assert group["children"]["edge_demo_eu_west_1"] == {"hosts": {}}
    assert group["vars"]["sensor_identity_imds_enabled"] is False
    assert group["vars"]["docker_daemon_environment"] == {"DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE": "1"}


def test_duplicate_host_names_are_refused(fleet: Fleet) -> None:
    with pytest.raises(FleetError, match="same inventory host name"):
        build_inventory(fleet, [NODES[0], replace(NODES[0], region="eu-west-1")], {})


def test_written_file_is_0600_has_no_secret_and_parses_with_ansible(fleet: Fleet, tmp_path: Path) -> None:
    path = inventory_path(tmp_path / "repo", fleet)
    assert path == tmp_path / "repo" / "inventory" / "edge-demo.yml"
    old_umask = os.umask(0)  # even a permissive umask must not widen the file
    try:
        write_inventory(path, build_inventory(fleet, NODES, {}))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert TOKEN not in text and AWS_SECRET not in text and "AKIAEXAMPLE" not in text
    assert [p.name for p in path.parent.iterdir()] == ["edge-demo.yml"]  # no temp file left behind

    ansible_inventory = shutil.which("ansible-inventory") or str(Path(sys.executable).parent / "ansible-inventory")
    result = subprocess.run(
        [ansible_inventory, "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],  # the project ansible.cfg, as the runner uses it
        env={**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert sorted(listed["edge_demo_us_east_1"]["hosts"]) == ["edge-demo-i-0aaa", "edge-demo-i-0bbb"]
    assert listed["fleet_edge_demo"]["children"] == ["edge_demo_eu_west_1", "edge_demo_us_east_1"]
    hostvars = listed["_meta"]["hostvars"]["edge-demo-i-0ccc"]
    assert (
        hostvars["fleet_zone"] is None and hostvars["bacalhau_orchestrator_endpoint"] == "nats://orch.example.com:4222"
    )
    assert TOKEN not in result.stdout


def test_rewrite_replaces_atomically(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    write_inventory(path, build_inventory(fleet, NODES, {}))
    inode = path.stat().st_ino
    write_inventory(path, build_inventory(fleet, NODES[:1], {}))
    assert path.stat().st_ino != inode
    assert "i-0ccc" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _with_role_vars(tmp_path: Path, role_vars: dict[str, object]) -> Path:
    data = yaml.safe_load((tmp_path / "fleet.yaml").read_text())
    data["role_vars"] = role_vars
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "fleet.yaml"


def test_role_vars_override_provider_extras_and_change_the_digest(fleet: Fleet, tmp_path: Path) -> None:
    before = _digest(fleet)
    tuned = load_fleet(_with_role_vars(tmp_path, {"bacalhau_heartbeat_interval": "30s",
                                                  "sensor_identity_imds_enabled": False}))
    group_vars = build_inventory(tuned, NODES, {"sensor_identity_imds_enabled": True}, roles_digest="roles-v1")[
        "all"]["children"]["fleet_edge_demo"]["vars"]
    assert group_vars["bacalhau_heartbeat_interval"] == "30s"
    assert group_vars["sensor_identity_imds_enabled"] is False  # the fleet file wins
    assert group_vars["fleet_config_digest"] != before


@pytest.mark.parametrize(
    ("role_vars", "phrase"),
    [
        ({"bacalhau_heartbeat_intreval": "30s"}, "role_vars.bacalhau_heartbeat_intreval: not a variable of any "
                                                 "role (did you mean 'bacalhau_heartbeat_interval'?)"),
        ({"bacalhau_orchestrator_token_file": "/tmp/x"}, "role_vars.bacalhau_orchestrator_token_file: set by the tool"),
        ({"no_such_thing": 1}, "role_vars.no_such_thing: not a variable of any role"),
    ],
)
def test_role_vars_typos_and_tool_set_keys_are_refused(fleet: Fleet, tmp_path: Path, role_vars: dict[str, object],
                                                        phrase: str) -> None:
    path = _with_role_vars(tmp_path, role_vars)
    result = subprocess.run([sys.executable, "deploy.py", "-f", str(path), "plan"], cwd=Path(__file__).parents[1],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and phrase in result.stderr, result.stderr


def test_orchestrator_api_is_controller_only(fleet: Fleet, tmp_path: Path) -> None:
    """health.yml reads the API from the inventory; where it lives changes nothing on a node (no re-run)."""
    key = tmp_path / "api.key"
    key.write_text("api-key-9f2e\n")
    key.chmod(0o600)
    base = _digest(fleet)
    with_api = fleet.model_copy(update={"orchestrator": fleet.orchestrator.model_copy(
        update={"api": "http://orch.example.com:1234", "api_token_file": key})})
    inventory = build_inventory(with_api, NODES, {"fleet_orchestrator_api": "http://127.0.0.1:41234"},
                                roles_digest="roles-v1")
    group_vars = inventory["all"]["children"]["fleet_edge_demo"]["vars"]
    assert group_vars["fleet_orchestrator_api"] == "http://127.0.0.1:41234"  # the provider's resolved URL wins
    assert group_vars["fleet_orchestrator_api_token_file"] == str(key)
    assert group_vars["fleet_config_digest"] == base
    assert "api-key-9f2e" not in yaml.safe_dump(inventory)


def test_site_yml_stops_before_any_node_work_on_an_inventory_without_the_fleet_settings(tmp_path: Path) -> None:
    """Play 1 checks every host's fleet_name and fleet_config_digest once, on the controller, and names the bad ones."""
    repo = Path(__file__).resolve().parents[1]
    inventory = tmp_path / "hand-written.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {
        "good": {"fleet_name": "f", "fleet_config_digest": "d"},
        "no-digest": {"fleet_name": "f"},
        "empty-name": {"fleet_name": "", "fleet_config_digest": "d"},
    }}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    said = " ".join(proc.stdout.split())  # the callback wraps long messages
    assert "Inventory of empty-name, no-digest: fleet_name and fleet_config_digest must be set" in said, said
    assert "convergence stamp" not in proc.stdout  # no task of play 2 started: no node was contacted


def test_a_canary_archive_is_loaded_for_jobs_and_a_nodes_cloud_is_plain_text(fleet: Fleet, tmp_path: Path) -> None:
    from fleetdeploy.fleet.canary_spec import CanarySpec
    from fleetdeploy.fleet.clouds import CloudName

    canary = CanarySpec(image="localhost/fleet-python:trixie", archive=tmp_path / "b.tar")
    with_canary = fleet.model_copy(update={"canary": canary})
    gcp = dataclasses.replace(node("i-1", "us-east-1", "10.0.0.1"), cloud=CloudName.GCP)
    inventory = build_inventory(with_canary, [gcp])
    values = inventory["all"]["children"]["fleet_edge_demo"]["vars"]
    assert values["bacalhau_job_image"] == "localhost/fleet-python:trixie"
    assert values["bacalhau_job_image_archive"] == str(tmp_path / "b.tar")
    assert "bacalhau_job_image" not in build_inventory(fleet, [gcp])["all"]["children"]["fleet_edge_demo"]["vars"]
    hosts = inventory["all"]["children"]["fleet_edge_demo"]["children"]["edge_demo_us_east_1"]["hosts"]
    (host,) = hosts.values()
    assert host["fleet_cloud"] == "gcp" and type(host["fleet_cloud"]) is str  # YAML can't write an enum
    written = tmp_path / "inv.yml"
    write_inventory(written, inventory)
    from fleetdeploy.operations.fleet_inventory import nodes_in

    assert [n.cloud for n in nodes_in(written)] == ["gcp"]  # read back as written (--limit, exec, ssh)
