"""The bacalhau role's config.yaml, rendered by Ansible from the role's own defaults, vars and template.

Bacalhau silently ignores unknown keys (facts.md: Bacalhau node), so the generated keys are checked against its real key set.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROLE = REPO / "roles" / "bacalhau"
BIN = Path(sys.executable).parent

# facts.md: Bacalhau node: Bacalhau's v1.5+ top-level keys (unchanged through v1.9.3).
TOP_LEVEL_KEYS = {
    "API", "NameProvider", "DataDir", "StrictVersionMatch", "Orchestrator", "Compute", "Labels", "WebUI",
    "InputSources", "Publishers", "Engines", "ResultDownloaders", "JobDefaults", "JobAdmissionControl", "Logging",
    "UpdateConfig", "FeatureFlags", "DisableAnalytics",
}
# pkg/config/types/compute.go (v1.5–v1.9).
COMPUTE_KEYS = {"Enabled", "Orchestrators", "Auth", "Heartbeat", "AllocatedCapacity", "AllowListedLocalPaths", "TLS",
                "Env", "NATS"}
JOB_ADMISSION_KEYS = {"Locality", "RejectStatelessJobs", "AcceptNetworkedJobs", "RejectNetworkedJobs",
                      "ProbeHTTP", "ProbeExec"}

HOST_FACTS = {
    "fleet_name": "demo",
    "fleet_region": "eu-west-1",
    "fleet_zone": "eu-west-1a",
    "fleet_instance_id": "i-0abc123",
    "fleet_spot": True,
}


@dataclass(frozen=True)
class Rendered:
    configs: dict[str, dict[str, Any]]
    composes: dict[str, dict[str, Any]]
    raw: dict[str, str]
    output: str


def _run_playbook(workdir: Path, playbook: list[dict[str, Any]], extra: dict[str, Any],
                  *args: str) -> subprocess.CompletedProcess[str]:
    (workdir / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    # Extra vars from a 0600 file, not the command line: they carry the token file path only, but stay tidy.
    extra_file = workdir / "extra.json"
    extra_file.write_text(json.dumps(extra))
    extra_file.chmod(0o600)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_RETRY_FILES_ENABLED="0")
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", f"@{extra_file}", *args, "play.yml"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )


def _token_file(tmp_path: Path) -> tuple[Path, str]:
    token = "tok-" + secrets.token_hex(16)
    path = tmp_path / "orchestrator.token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path, token


def _render(tmp_path: Path, variants: dict[str, dict[str, Any]], common: dict[str, Any]) -> Rendered:
    """One ansible-playbook run renders the role's templates once per variant (task vars win over vars_files)."""
    tasks = [
        {
            "name": f"render {kind} {name}",
            "ansible.builtin.template": {"src": str(ROLE / "templates" / f"{kind}.yaml.j2"),
                                         "dest": str(tmp_path / f"{name}.{kind}.yaml"), "mode": "0600"},
            "vars": overrides,
            "no_log": True,
        }
        for name, overrides in variants.items()
        for kind in ("config", "compose")
    ]
    play = [{
        "name": "render", "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": tasks,
    }]
    result = _run_playbook(tmp_path, play, common, "--diff")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    raw = {name: (tmp_path / f"{name}.config.yaml").read_text() for name in variants}
    composes = {name: yaml.safe_load((tmp_path / f"{name}.compose.yaml").read_text()) for name in variants}
    return Rendered({name: yaml.safe_load(text) for name, text in raw.items()}, composes, raw,
                    result.stdout + result.stderr)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Rendered, str]:
    tmp_path = tmp_path_factory.mktemp("bacalhau-config")
    token_file, token = _token_file(tmp_path)
    # Extra vars beat task vars: only what no variant changes goes there.
    common = {"bacalhau_orchestrator_token_file": str(token_file)}
    endpoint = {"bacalhau_orchestrator_endpoint": "nats://orch.example.internal:4222"}
    variants: dict[str, dict[str, Any]] = {
        "full": {**HOST_FACTS, "bacalhau_labels": {"team": "edge", "region": "user-value"}},
        "no_facts": {},
        "null_zone": {**HOST_FACTS, "fleet_zone": None, "fleet_spot": False},
        "v164": {"bacalhau_version": "v1.6.4"},
        "v164_reject": {"bacalhau_version": "v1.6.4", "bacalhau_reject_networked_jobs": True},
        "v165": {"bacalhau_version": "v1.6.5"},
        "v165_reject": {"bacalhau_version": "1.6.5", "bacalhau_reject_networked_jobs": True},
        "v170": {"bacalhau_version": "v1.7.0"},
        "v170_reject": {"bacalhau_version": "v1.7.0", "bacalhau_reject_networked_jobs": True},
        "tls_capacity": {"bacalhau_orchestrator_endpoint": "tls://orch.example.internal:4222",
                         "bacalhau_allocated_capacity": {"CPU": "1", "Memory": "1Gi"},
                         "bacalhau_allowed_local_paths": ["/opt/sensor/data/", "/srv/extra"]},
        "dind_aws": {"bacalhau_docker_mode": "dind", "aws_credentials_enabled": True, "bacalhau_api_port": 1300},
    }
    return _render(tmp_path, {name: {**endpoint, **v} for name, v in variants.items()}, common), token


def test_only_bacalhau_keys(rendered: tuple[Rendered, str]) -> None:
    result, _ = rendered
    for name, cfg in result.configs.items():
        assert set(cfg) <= TOP_LEVEL_KEYS, (name, set(cfg) - TOP_LEVEL_KEYS)
        assert set(cfg["Compute"]) <= COMPUTE_KEYS, (name, set(cfg["Compute"]) - COMPUTE_KEYS)
        assert set(cfg["JobAdmissionControl"]) <= JOB_ADMISSION_KEYS, name
        assert set(cfg["Compute"]["Auth"]) == {"Token"}, name


def test_compute_node_shape(rendered: tuple[Rendered, str]) -> None:
    cfg = rendered[0].configs["full"]
    assert cfg["Compute"]["Enabled"] is True
    assert cfg["Orchestrator"] == {"Enabled": False}
    assert cfg["Compute"]["Orchestrators"] == ["nats://orch.example.internal:4222"]
    assert cfg["API"] == {"Host": "127.0.0.1", "Port": 1234}
    assert cfg["DataDir"] == "/var/lib/bacalhau"
    # `serve` always gets --name: a NameProvider would never be asked, so none is written.
    assert "NameProvider" not in cfg
    assert cfg["DisableAnalytics"] is True
    assert cfg["Compute"]["Heartbeat"] == {"Interval": "15s"}
    assert cfg["Logging"] == {"Level": "info"}
    assert cfg["Compute"]["AllowListedLocalPaths"] == ["/opt/sensor/data:ro", "/opt/sensor/data/**:ro"]
    assert "AllocatedCapacity" not in cfg["Compute"]


def test_endpoint_and_paths_are_normalised(rendered: tuple[Rendered, str]) -> None:
    cfg = rendered[0].configs["tls_capacity"]
    assert cfg["Compute"]["Orchestrators"] == ["tls://orch.example.internal:4222"]
    assert cfg["Compute"]["AllocatedCapacity"] == {"CPU": "1", "Memory": "1Gi"}
    assert cfg["Compute"]["AllowListedLocalPaths"] == [
        "/opt/sensor/data:ro", "/opt/sensor/data/**:ro", "/srv/extra:ro", "/srv/extra/**:ro"]


def test_labels(rendered: tuple[Rendered, str]) -> None:
    configs = rendered[0].configs
    # Host facts win over a user label with the same key; every value is a string.
    assert configs["full"]["Labels"] == {"team": "edge", "fleet": "demo", "region": "eu-west-1",
                                         "zone": "eu-west-1a", "instance-id": "i-0abc123", "spot": "true"}
    assert configs["no_facts"]["Labels"] == {"fleet": "default", "region": "unknown", "zone": "unknown",
                                             "instance-id": "localhost", "spot": "false"}
    assert configs["null_zone"]["Labels"]["zone"] == "unknown"
    assert configs["null_zone"]["Labels"]["spot"] == "false"
    for cfg in configs.values():
        assert all(isinstance(v, str) for v in cfg["Labels"].values())


# facts.md: Bacalhau node: v1.6.5 has both keys and rejects networked jobs when `RejectNetworkedJobs || !AcceptNetworkedJobs`,
# so up to and including v1.6.5 AcceptNetworkedJobs is written; from v1.7.0 only RejectNetworkedJobs exists.
@pytest.mark.parametrize(("variant", "expected"), [
    ("v164", {"AcceptNetworkedJobs": True}),
    ("v164_reject", {"AcceptNetworkedJobs": False}),
    ("v165", {"AcceptNetworkedJobs": True}),
    ("v165_reject", {"AcceptNetworkedJobs": False}),
    ("v170", {"RejectNetworkedJobs": False}),
    ("v170_reject", {"RejectNetworkedJobs": True}),
    ("full", {"RejectNetworkedJobs": False}),
])
def test_networked_jobs_key_follows_the_version(rendered: tuple[Rendered, str], variant: str,
                                                expected: dict[str, bool]) -> None:
    assert rendered[0].configs[variant]["JobAdmissionControl"] == expected


def test_token_is_in_the_file_only(rendered: tuple[Rendered, str]) -> None:
    result, token = rendered
    assert token not in result.output
    for name, cfg in result.configs.items():
        assert cfg["Compute"]["Auth"]["Token"] == token, name
        assert result.raw[name].count(token) == 1, name


def test_compose_service(rendered: tuple[Rendered, str]) -> None:
    result, token = rendered
    compose = result.composes["full"]
    assert compose["name"] == "bacalhau"
    service = compose["services"]["bacalhau"]
    assert service["image"] == "ghcr.io/bacalhau-project/bacalhau:v1.9.3"
    assert service["container_name"] == "bacalhau"
    assert service["network_mode"] == "host"
    assert "ports" not in service
    assert "privileged" not in service
    assert service["restart"] == "unless-stopped"
    assert service["command"] == ["serve", "--config", "/etc/bacalhau/config.yaml", "--name", "localhost"]
    assert service["volumes"] == ["/etc/bacalhau:/etc/bacalhau:ro", "/var/lib/bacalhau:/var/lib/bacalhau",
                                  "/var/run/docker.sock:/var/run/docker.sock", "/opt/sensor/data:/opt/sensor/data:ro"]
    assert service["healthcheck"]["test"] == ["CMD", "bacalhau", "agent", "alive", "--api-host", "127.0.0.1"]
    assert "environment" not in service
    for name, other in result.composes.items():
        assert token not in yaml.safe_dump(other), name


def test_compose_dind_with_aws_credentials(rendered: tuple[Rendered, str]) -> None:
    service = rendered[0].composes["dind_aws"]["services"]["bacalhau"]
    assert service["image"] == "ghcr.io/bacalhau-project/bacalhau:v1.9.3-dind"
    assert service["privileged"] is True
    assert "/var/run/docker.sock:/var/run/docker.sock" not in service["volumes"]
    assert "/etc/fleet/aws:/etc/fleet/aws:ro" in service["volumes"]
    assert service["environment"] == {"AWS_SHARED_CREDENTIALS_FILE": "/etc/fleet/aws/credentials",
                                      "AWS_CONFIG_FILE": "/etc/fleet/aws/config"}
    assert service["healthcheck"]["test"][-2:] == ["--api-port", "1300"]
    assert rendered[0].configs["dind_aws"]["API"]["Port"] == 1300


def test_role_rejects_bad_endpoints(tmp_path: Path) -> None:
    token_file, _ = _token_file(tmp_path)
    play = [{
        "name": "validate", "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"name": "validate", "ansible.builtin.include_role": {"name": "bacalhau",
                                                                          "tasks_from": "validate.yml"}}],
    }]
    good = _run_playbook(tmp_path, play, {"bacalhau_orchestrator_endpoint": "nats://orch:4222",
                                          "bacalhau_orchestrator_token_file": str(token_file)})
    assert good.returncode == 0, good.stdout[-3000:]
    for endpoint in ("orch:4222", "nats://orch", "http://orch:4222", "nats://user:tok@orch:4222"):
        bad = _run_playbook(tmp_path, play, {"bacalhau_orchestrator_endpoint": endpoint,
                                             "bacalhau_orchestrator_token_file": str(token_file)})
        assert bad.returncode != 0, endpoint
        assert "endpoint must look like nats://host:port" in bad.stdout, bad.stdout[-3000:]
    empty = tmp_path / "empty.token"
    empty.write_text("")
    bad = _run_playbook(tmp_path, play, {"bacalhau_orchestrator_endpoint": "nats://orch:4222",
                                         "bacalhau_orchestrator_token_file": str(empty)})
    assert bad.returncode != 0
    assert "must be a readable, non-empty file" in bad.stdout


@pytest.mark.parametrize(("settings", "phrase"), [
    ({"bacalhau_version": "v1.4.0"}, "bacalhau_version: must be vX.Y.Z, v1.5.2 or newer"),
    ({"bacalhau_version": "v1.5.0"}, "unredacted from their local API: use v1.5.2 or newer"),
    ({"bacalhau_version": "1.5.1"}, "unredacted from their local API: use v1.5.2 or newer"),
    ({"bacalhau_version": "v1.6.2", "bacalhau_docker_mode": "dind"}, "dind needs bacalhau_version v1.6.3 or newer"),
    ({"bacalhau_version": "v1.6.3", "bacalhau_docker_mode": "dind"}, None),
    ({"bacalhau_version": "v1.5.2"}, None),
])
def test_role_refuses_versions_it_cannot_serve(tmp_path: Path, settings: dict[str, Any], phrase: str | None) -> None:
    """The role's own checks, for standalone use (the fleet model refuses the same for the CLI)."""
    token_file, _ = _token_file(tmp_path)
    play = [{
        "name": "validate", "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"name": "validate", "ansible.builtin.include_role": {"name": "bacalhau",
                                                                          "tasks_from": "validate.yml"}}],
    }]
    result = _run_playbook(tmp_path, play, {"bacalhau_orchestrator_endpoint": "nats://orch:4222",
                                            "bacalhau_orchestrator_token_file": str(token_file), **settings})
    if phrase is None:
        assert result.returncode == 0, result.stdout[-3000:]
    else:
        assert result.returncode != 0
        assert phrase in result.stdout, result.stdout[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="the role writes root-owned files")
def test_role_task_never_prints_the_token(tmp_path: Path) -> None:
    """The role's own config task, run with --diff and -vvv, shows no token (no_log) yet writes it 0600."""
    token_file, token = _token_file(tmp_path)
    play = [{
        "name": "config", "hosts": "localhost", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [{"name": "config", "ansible.builtin.include_role": {"name": "bacalhau",
                                                                        "tasks_from": "config.yml"}}],
    }]
    extra = {
        "bacalhau_orchestrator_endpoint": "nats://orch:4222",
        "bacalhau_orchestrator_token_file": str(token_file),
        "bacalhau_config_dir": str(tmp_path / "etc"),
        "bacalhau_data_dir": str(tmp_path / "data"),
        "bacalhau_allowed_local_paths": [str(tmp_path / "sensor")],
        # The handlers are for a node with the compose service; there is none here (as on an engine-less node).
        "__bacalhau_compose_result": {"skipped": True},
    }
    for _ in range(2):  # the first run creates the file, the second must change nothing
        result = _run_playbook(tmp_path, play, extra, "--diff", "-vvv")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert token not in result.stdout + result.stderr
    assert "changed=0" in result.stdout
    config = tmp_path / "etc" / "config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert config.stat().st_uid == 0
    assert yaml.safe_load(config.read_text())["Compute"]["Auth"]["Token"] == token
