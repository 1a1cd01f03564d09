"""The watcher's SSH exchange (fleetdeploy/runs/exchange.py) without SSH: the very script a node runs, run by this
machine's sh and python3 against a stamp recorded by the real fleet_convergence code, and a health check stand-in
that prints what the real one prints. The E2E healing module runs it over real SSH on the local fleet."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import (
    Exchanges,
    control_path,
    convergence_rule,
    exchange_argv,
    node_script,
    parse_answer,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "playbooks" / "module_utils"))
import fleet_state  # noqa: E402 - the node-side code, imported as the module does

NODE = Node("i-1", "c", "us-east-1", None, "127.0.0.1", 22, "ubuntu", "/k", True)


def _health_script(tmp_path: Path, rc: int, document: JSONObject | None) -> str:
    script = tmp_path / "fleet-health-check"
    body = f"echo '{json.dumps(document)}'" if document is not None else "echo 'settings.json: bad' >&2"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = --json ] || exit 9\nread -r unused && exit 8\n{body}\nexit {rc}\n")
    script.chmod(0o755)
    return str(script)


def _rule(tmp_path: Path) -> JSONObject:
    rule = convergence_rule()
    return {**rule, "fleet_stamp_file": str(tmp_path / "converged.json"), "fleet_site_roles": ["app"],
            "fleet_base_roles": []}


def _run_locally(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, timeout=60)


def test_the_rule_is_site_ymls() -> None:
    rule = convergence_rule()
    assert rule["fleet_stamp_file"] == "/var/lib/fleetdeploy/converged.json"
    assert rule["fleet_base_roles"] == ["docker"] and "health_check" in rule["fleet_site_roles"]  # type: ignore[operator]


def test_a_converged_healthy_node(tmp_path: Path) -> None:
    watched = tmp_path / "app.conf"
    watched.write_text("a\n")
    fleet_state.record(str(tmp_path / "converged.json"), "d1", {"app": fleet_state.clean_manifest(
        {"files": [str(watched)]})})
    status = {"healthy": True, "checks": [{"name": "container:sensor", "ok": True, "image": "s:1"}]}
    done = _run_locally(node_script("d1", _rule(tmp_path), _health_script(tmp_path, 0, status)))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert result.facts == {"fleet_report_converged": True, "fleet_report_drift": [],
                            "fleet_report_health_status": status}
    assert not result.unreachable

    watched.write_text("drifted\n")
    done = _run_locally(node_script("d1", _rule(tmp_path), _health_script(tmp_path, 1, {"healthy": False})))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert result.facts["fleet_report_converged"] is False
    assert result.facts["fleet_report_drift"] == [f"file {watched}: content changed"]
    assert result.facts["fleet_report_health_status"] == {"healthy": False}


def test_another_digest_no_stamp_and_a_failing_check(tmp_path: Path) -> None:
    done = _run_locally(node_script("d2", _rule(tmp_path), _health_script(tmp_path, 2, None)))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert result.facts["fleet_report_converged"] is False
    assert result.facts["fleet_report_drift"] == [
        "no convergence stamp (never configured, or the last run did not end)"]
    assert result.facts["fleet_report_health_error"] == "exit 2: settings.json: bad"


def test_a_node_never_configured(tmp_path: Path) -> None:
    done = _run_locally(node_script("d1", _rule(tmp_path), str(tmp_path / "not-installed")))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert result.facts["fleet_report_not_configured"] is True


def test_no_python_on_the_node_is_not_known_converged_but_health_is_read(tmp_path: Path) -> None:
    script = node_script("d1", _rule(tmp_path), _health_script(tmp_path, 0, {"healthy": True}))
    done = _run_locally(script.replace("/usr/bin/python3 - ", "/no/such/python3 - ", 1))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert "fleet_report_converged" not in result.facts
    assert result.facts["fleet_report_health_status"] == {"healthy": True}


def test_a_failing_check_is_reported_with_its_own_words_not_the_probes(tmp_path: Path) -> None:
    script = node_script("d1", _rule(tmp_path), _health_script(tmp_path, 2, None))
    done = _run_locally(script.replace("/usr/bin/python3 - ", "/no/such/python3 - ", 1))
    result = parse_answer(done.returncode, done.stdout, done.stderr)
    assert result.facts["fleet_report_health_error"] == "exit 2: settings.json: bad"


def test_ssh_failing_is_unreachable_with_its_last_line() -> None:
    result = parse_answer(255, "", "Warning: x\nssh: connect to host 127.0.0.1 port 2: Connection refused\n")
    assert result.unreachable and result.message == "ssh: connect to host 127.0.0.1 port 2: Connection refused"
    cut = parse_answer(1, "", "sudo: a password is required\n")
    assert not cut.unreachable and cut.facts == {"fleet_report_health_error": "exit 1: sudo: a password is required"}
    lost = parse_answer(255, '{"converged": true, "drift": []}\nFLEET-EXCHANGE-HEALTH-FOLLOWS\n{"heal',
                        "Connection to 127.0.0.1 closed by remote host.\n")
    assert lost.unreachable and lost.message == "Connection to 127.0.0.1 closed by remote host."
    odd = parse_answer(0, "{}\nFLEET-EXCHANGE-HEALTH-FOLLOWS\nFLEET-EXCHANGE-HEALTH-RC=x\n", "")
    assert odd.facts == {"fleet_report_health_error": "exit -1: FLEET-EXCHANGE-HEALTH-RC=x"}


def test_exchanges_run_in_parallel_and_a_cancel_kills_them(tmp_path: Path) -> None:
    nodes = {f"n{i}": NODE for i in range(4)}
    slow = Exchanges(lambda node: ["sh", "-c", "sleep 30"], "", timeout_s=60)
    started = time.monotonic()
    threading.Timer(1.0, slow.cancel).start()
    answers = slow.run(nodes)
    assert time.monotonic() - started < 10
    assert {a.message for a in answers.values()} == {"cancelled"}

    fast = Exchanges(lambda node: ["sh", "-s"], node_script("d1", _rule(tmp_path), str(tmp_path / "none")))
    answers = fast.run(nodes)
    assert sorted(answers) == sorted(nodes)
    assert all(a.facts["fleet_report_not_configured"] is True for a in answers.values())


def test_a_fleet_of_300_is_asked_in_one_round(tmp_path: Path) -> None:
    """Each exchange lasts as long as the node's health check (its readings interval): rounds would multiply it.
    Each stand-in answers only once all 300 have started, so any cap below 300 ends in timeouts."""
    nodes = {f"n{i}": NODE for i in range(300)}
    barrier = f"touch {tmp_path}/$$; until [ $(ls {tmp_path} | wc -l) -ge 300 ]; do sleep 0.5; done"
    answers = Exchanges(lambda node: ["sh", "-c", barrier], "", timeout_s=90).run(nodes)
    assert len(answers) == 300 and not any(a.unreachable for a in answers.values()), \
        {a.message for a in answers.values()}


def test_an_exchange_past_its_timeout_is_ended_and_one_nodes_trouble_stays_its_own() -> None:
    answers = Exchanges(lambda node: ["sleep", "30"], "", timeout_s=0.5).run({"n": NODE})
    assert answers["n"].unreachable and answers["n"].message == "no answer within 0.5 s"
    broken = Exchanges(lambda node: ["/no/such/program"], "").run({"a": NODE, "b": NODE})
    assert all(a.facts["fleet_report_health_error"].startswith("exchange failed: ") for a in broken.values())


@pytest.mark.parametrize("rc", [0, 1])
def test_the_health_check_gets_no_stdin(tmp_path: Path, rc: int) -> None:
    """The stand-in exits 8 if it can read a line: the rest of the script must not reach it."""
    done = _run_locally(node_script("d1", _rule(tmp_path), _health_script(tmp_path, rc, {"healthy": rc == 0})))
    assert parse_answer(done.returncode, done.stdout, done.stderr).facts["fleet_report_health_status"] == {
        "healthy": rc == 0}


def test_health_alone_runs_no_probe_and_reads_the_check(tmp_path: Path) -> None:
    """`deploy.py health` asks for health only: no convergence facts, even on a node with a stamp."""
    fleet_state.record(str(tmp_path / "converged.json"), "d1", {"app": fleet_state.clean_manifest({"files": []})})
    script = node_script("d1", None, _health_script(tmp_path, 1, {"healthy": False}))
    assert "FLEET_PROBE_END" not in script and "probe(" not in script
    done = _run_locally(script)
    assert parse_answer(done.returncode, done.stdout, done.stderr).facts == {
        "fleet_report_health_status": {"healthy": False}}


def test_each_answer_is_heard_as_it_arrives(tmp_path: Path) -> None:
    nodes = {name: dataclasses.replace(NODE, instance_id=name) for name in ("slow", "fast")}
    heard: list[str] = []
    delays = {"slow": "1", "fast": "0"}
    answer = "cat >/dev/null; echo; echo FLEET-EXCHANGE-HEALTH-FOLLOWS; echo FLEET-HEALTH-CHECK-NOT-INSTALLED"
    answers = Exchanges(lambda node: ["sh", "-c", f"sleep {delays[node.instance_id]}; {answer}"], "").run(
        nodes, lambda name, got: heard.append(name))
    assert heard == ["fast", "slow"] and list(answers) == ["slow", "fast"]
    assert all(a.facts == {"fleet_report_not_configured": True} for a in answers.values())


def test_the_masters_socket_path_fits_under_a_deep_home() -> None:
    """Found in tests/sky_real (HOME under pytest's tmp dir): ssh's %C (40 characters) plus the 17 ssh adds while
    creating the socket passed the 107 bytes a socket path may hold, and every node was unreachable."""
    deep = Path("/tmp/pytest-of-root/pytest-178/sky-real0/home/.ansible/cp")
    paths = {control_path(dataclasses.replace(NODE, instance_id=f"i-{n}", port=2200 + n), deep) for n in range(50)}
    assert len(paths) == 50  # one master per node
    assert all(len(p) + 17 <= 107 for p in paths), max(paths, key=len)
    argv = exchange_argv(NODE, Path("/k/known_hosts"), deep)
    assert f"ControlPath={control_path(NODE, deep)}" in argv
