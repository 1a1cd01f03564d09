"""`ansible-playbook playbooks/health.yml` on its own: the real ansible-playbook, no Docker.

The play's hosts are this machine (local connection, become through su as root) with a stand-in health script
each, plus one host whose SSH port is closed. The orchestrator is the orchestrator double (tests/doubles: real
nats-server, a real compute process heartbeating for one host) behind an API key. The test reads the play's JSON
(the json stdout callback): the rows fleetdeploy's verdict produced, the table it printed, the failed assertion.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "doubles"))  # the doubles' own process harness
from bacalhau_harness import start_compute, start_orchestrator, wait_for  # noqa: E402

from fleetdeploy.health.verdict import NodeReport, judge  # noqa: E402
from fleetdeploy.orchestrator.api import OrchestratorApi  # noqa: E402
from fleetdeploy.output.results import to_json  # noqa: E402
from tests.runplay import run_playbook  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
API_KEY = "fleetdeploy-health-play-" + "4" * 12


def _status(healthy: bool, failing: list[str]) -> dict[str, Any]:
    checks = [{"name": "docker", "ok": True, "detail": "27.5.1"}]
    checks += [{"name": name, "ok": False, "detail": "seen by the stand-in"} for name in failing]
    return {"healthy": healthy, "failing": failing, "checks": checks, "host": "stand-in"}


def _script(path: Path, stdout: str, rc: int, stderr: str = "") -> Path:
    """A stand-in for the node's fleet-health-check: it checks it was asked for --json, then answers."""
    path.write_text("#!/bin/sh\n"
                    "[ \"$1\" = --json ] || { echo 'called without --json' >&2; exit 9; }\n"
                    f"printf '%s\\n' '{stdout}'\n"
                    + (f"echo '{stderr}' >&2\n" if stderr else "")
                    + f"exit {rc}\n")
    path.chmod(0o755)
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def orchestrator(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    key_file = tmp_path / "api.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    auth = {"Users": [{"Alias": "fleetdeploy", "APIKey": API_KEY, "Capabilities": [{"Actions": ["read:node"]}]}]}
    node, nats_port = start_orchestrator(tmp_path / "orch", api_auth=auth)
    compute = start_compute(tmp_path / "compute", "hp-healthy", nats_port, interval="1s")
    url = f"http://127.0.0.1:{node.api_port}"
    wait_for(lambda: "hp-healthy" in OrchestratorApi(url, key_file).nodes(), 15, "the compute node listed")
    yield url, key_file
    compute.stop()
    node.stop()


def _inventory(tmp_path: Path, api: str, key_file: Path) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "ansible_become_method": "su"}
    hosts = {
        "hp-healthy": {**local, "fleet_health_script": str(_script(
            tmp_path / "healthy.sh", json.dumps(_status(True, [])), 0))},
        "hp-sick": {**local, "fleet_health_script": str(_script(
            tmp_path / "sick.sh", json.dumps(_status(False, ["sensor:readings"])), 1))},
        "hp-new": {**local, "fleet_health_script": str(tmp_path / "not-installed")},
        "hp-broken": {**local, "fleet_health_script": str(_script(
            tmp_path / "broken.sh", "", 2, "fleet-health-check: settings.json: unknown settings typo"))},
        "hp-gone": {"ansible_host": "127.0.0.1", "ansible_port": _closed_port(), "ansible_user": "nobody",
                    "ansible_python_interpreter": "/usr/bin/python3"},
    }
    inventory = {"all": {"children": {"fleet_hp": {
        "vars": {"fleet_orchestrator_api": api, "fleet_orchestrator_api_token_file": str(key_file)},
        "hosts": hosts}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_the_playbook_prints_fleetdeploys_verdict_for_every_kind_of_node(
    tmp_path: Path, orchestrator: tuple[str, Path]
) -> None:
    api, key_file = orchestrator
    play = run_playbook(REPO / "playbooks" / "health.yml", _inventory(tmp_path, api, key_file))
    assert play.rc != 0, play.stderr  # some nodes are not healthy: the play fails

    rows = {row["node"]: row for row in play.result("Judge every node")["rows"]}
    assert sorted(rows) == ["hp-broken", "hp-gone", "hp-healthy", "hp-new", "hp-sick"]
    assert rows["hp-healthy"]["health"] == "healthy"
    assert rows["hp-healthy"]["orchestrator"]["connection"] == "CONNECTED"
    assert rows["hp-healthy"]["orchestrator"]["ready"] is True
    assert rows["hp-sick"]["health"] == "unhealthy"
    assert rows["hp-sick"]["failing"][0] == "sensor:readings (seen by the stand-in)"
    assert rows["hp-sick"]["failing"][1].startswith("orchestrator: not listed")
    assert rows["hp-new"]["health"] == "not configured yet"
    assert rows["hp-broken"]["health"] == "unhealthy"
    assert rows["hp-broken"]["failing"][0] == (
        "health check did not run: exit 2: fleet-health-check: settings.json: unknown settings typo")
    assert rows["hp-gone"]["health"] == "unreachable"

    # The same verdict deploy.py computes from the same facts (one owner of the rule).
    facts = {host: play.facts(host, "Run the health check now and collect its status") for host in rows}
    expected = judge([NodeReport.from_facts(h, f, unreachable=h == "hp-gone", message=rows[h]["failing"][0]
                                            if h == "hp-gone" else "") for h, f in facts.items()],
                     OrchestratorApi(api, key_file).read())
    assert [(r["node"], r["health"]) for r in to_json(expected.nodes)] == [
        (r["node"], r["health"]) for r in sorted(rows.values(), key=lambda r: r["node"])]

    table = play.result("Print the fleet health table")["msg"]
    assert table[0].split() == ["HOST", "OVERALL", "ORCHESTRATOR", "FAILING", "CHECKS"]
    assert any(line.split()[:4] == ["hp-healthy", "healthy", "CONNECTED", "APPROVED"] for line in table), table
    failed = play.result("Fail when a node is unhealthy or unreachable")
    assert failed["failed"] and failed["msg"] == "Not healthy: hp-broken, hp-gone, hp-new, hp-sick"


def test_deploy_py_gathers_only_and_a_healthy_fleet_passes(tmp_path: Path, orchestrator: tuple[str, Path]) -> None:
    api, key_file = orchestrator
    inventory = _inventory(tmp_path, api, key_file)
    play = run_playbook(REPO / "playbooks" / "health.yml", inventory, "-l", "hp-healthy,hp-sick",
                        "-e", "fleet_health_report=false")
    assert play.rc == 0, play.stderr  # gathering only: the verdict is the caller's
    assert play.facts("hp-sick", "Run the health check now and collect its status")[
        "fleet_report_health_status"]["failing"] == ["sensor:readings"]
    assert play.skipped("Ask the orchestrator which nodes it sees") and play.skipped("Judge every node")

    healthy = run_playbook(REPO / "playbooks" / "health.yml", inventory, "-l", "hp-healthy", "--check")
    assert healthy.rc == 0, healthy.stderr
    assert healthy.result("Fail when a node is unhealthy or unreachable")["msg"] == "All 1 nodes are healthy."


def test_an_unreadable_orchestrator_is_one_line_and_the_node_checks_decide(tmp_path: Path) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    inventory = _inventory(tmp_path, f"http://127.0.0.1:{_closed_port()}", key_file)
    play = run_playbook(REPO / "playbooks" / "health.yml", inventory, "-l", "hp-healthy")
    assert play.rc == 0, play.stderr
    table = play.result("Print the fleet health table")["msg"]
    assert table[1].split()[:3] == ["hp-healthy", "healthy", "unknown"]
    assert "unreachable" in table[-1] and table[-1].endswith("(node checks above are unaffected)")
    assert API_KEY not in play.stdout + play.stderr
    assert os.environ.get("ANSIBLE_STDOUT_CALLBACK") is None  # run_playbook set it for its own child only
