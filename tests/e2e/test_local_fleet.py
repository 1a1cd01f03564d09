"""End to end on a real 3-node local fleet: real containers with systemd, sshd and a Docker engine each, real SSH,
real Ansible through the CLI. Only the service images are test doubles (tests/doubles), loaded from archives.

The tests run in order on one fleet (session-scoped, conftest.py): up → no-op re-run → Ctrl-C → operator
commands → drift → preemption → partial failure → resize; test_local_fleet_ops.py continues on the same fleet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from local_fleet import REPO, STAMP, Fleet, by_key, docker_out

from fleetdeploy.fleet.configure_spec import ConfigureMode, ConfigureSpec
from fleetdeploy.nodelocal.session import STOP_GRACE_S
from tests.runplay import run_playbook

pytestmark = pytest.mark.e2e


def test_1_up_brings_every_node_up_healthy(fleet: Fleet) -> None:
    _, up = fleet.json("up")
    nodes = fleet.containers()
    assert len(nodes) == 3
    health = by_key(up["health"]["nodes"], "node")
    assert sorted(health) == sorted(fleet.host(i) for i in nodes)
    assert all(row["health"] == "healthy" for row in health.values()), health
    assert up["ok"] is True and {c["action"] for c in up["clusters"]} == {"launched"}
    # Joined for real: the orchestrator (asked with the API key) lists every node as CONNECTED and APPROVED.
    assert up["joined"]["ok"] is True and len(up["joined"]["nodes"]) == 3, up["joined"]
    for row in health.values():
        seen = row["orchestrator"]
        assert (seen["connection"], seen["approval"], seen["ready"]) == ("CONNECTED", "APPROVED", True), row
        assert seen["last_heartbeat"] and seen["connected_since"], row

    # The health playbook works on its own with the repo's ansible.cfg and inventory/.
    direct = run_playbook(REPO / "playbooks" / "health.yml", None, "-l", f"fleet_{fleet.name}", env=fleet.env)
    fleet.outputs.append(direct.stdout + direct.stderr)
    assert direct.rc == 0, direct.stdout[-4000:]
    rows = by_key(direct.result("Judge every node")["rows"], "node")
    assert sorted(rows) == sorted(fleet.host(i) for i in nodes)
    for row in rows.values():
        assert row["health"] == "healthy" and row["orchestrator"]["connection"] == "CONNECTED", row
    table = direct.result("Print the fleet health table")["msg"]
    assert table[0].split()[:3] == ["HOST", "OVERALL", "ORCHESTRATOR"] and len(table) == 1 + len(nodes), table

    # Each node has its JSON status and the cron entry.
    for instance_id, container in nodes.items():
        status = json.loads(docker_out("exec", container, "cat", "/var/lib/fleet-health/status.json"))
        assert status["healthy"] is True, status
        cron_entry = docker_out("exec", container, "cat", "/etc/cron.d/fleet-health-check")
        assert "*/5 * * * * root /usr/local/bin/fleet-health-check" in cron_entry


def test_2_second_configure_changes_nothing(fleet: Fleet) -> None:
    # Every node's stamp holds: each ends after the convergence check.
    _, configured = fleet.json("configure")
    assert len(configured["nodes"]) == 3
    assert all(n["state"] == "converged" and n["changed"] == 0 and n["drift"] == [] and n["ok"] <= 2
               for n in configured["nodes"]), configured["nodes"]


def test_2a_up_on_a_converged_fleet_configures_nothing(fleet: Fleet) -> None:
    _, up = fleet.json("up", "--skip-health")
    rows = up["configure"]["nodes"]
    assert len(rows) == 3 and all(n["state"] == "converged" and n["changed"] == 0 for n in rows), rows
    assert up["health"] is None


def _remove_stamp(container: str) -> None:
    docker_out("exec", container, "rm", "-f", STAMP)


def _has_stamp(container: str) -> bool:
    return subprocess.run(["docker", "exec", container, "test", "-f", STAMP], capture_output=True).returncode == 0


def _interrupt_during_configure(fleet: Fleet, whole_group: bool) -> subprocess.CompletedProcess[str]:
    """Start `up`, wait until Ansible works on the nodes, then Ctrl-C: to the process, or to its process group."""
    argv = [sys.executable, str(REPO / "deploy.py"), "-f", str(fleet.fleet_file), "up"]
    proc = subprocess.Popen(argv, cwd=REPO, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Configuring nodes"):  # either mode's title
            break
    for line in proc.stdout:
        seen.append(line)
        if ": running" in line:
            break
    # Past the convergence check and into the roles (a run over unstamped nodes takes half a minute or more).
    time.sleep(8)
    if whole_group:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    result = subprocess.CompletedProcess(argv, proc.returncode, "".join(seen) + out, err)
    fleet.outputs.append(result.stdout + result.stderr)
    return result


def _node_runs_left(containers: list[str], what: str = "") -> list[str]:
    return [c for c in containers
            if docker_out("exec", c, "sh", "-c", f"ls -d /var/lib/fleetdeploy/run-*{what} 2>/dev/null || true").strip()]


def _node_playbooks_left() -> str:
    # The nodes' processes show in this machine's process table (containers share its kernel).
    return subprocess.run(["pgrep", "-af", "/var/lib/fleetdeploy/run-"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("whole_group", [False, True], ids=["process", "process-group"])
def test_2c_ctrl_c_during_configure_is_never_a_success_and_the_next_up_heals(fleet: Fleet, whole_group: bool) -> None:
    containers = sorted(fleet.containers().values())
    for container in containers:
        _remove_stamp(container)  # as if adopted from an earlier run: up must configure them
    result = _interrupt_during_configure(fleet, whole_group)
    assert result.returncode == 130, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == "interrupted", result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "Fleet health" not in result.stdout and "Configure summary" not in result.stdout
    assert not any(_has_stamp(c) for c in containers)  # an interrupted run leaves nothing claiming convergence
    assert list(Path(fleet.env["TMPDIR"]).iterdir()) == []
    # Nothing of the cancelled run is left running: ansible-core's workers start sessions of their own, out of
    # reach of ansible-runner's process-group kill, and would wait forever for their dead parent.
    left = subprocess.run(["pgrep", "-f", f"inventory/{fleet.name}.yml"], capture_output=True, text=True).stdout
    assert left.split() == [], subprocess.run(["ps", "-o", "pid,ppid,sid,stat,cmd", "-p", ",".join(left.split())],
                                              capture_output=True, text=True).stdout
    # Nor on the nodes (configure.mode: node): a closed session stops the node's playbook and removes the secrets
    # within seconds; a module that was running may finish (up to the grace), then the run directory goes whole.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_node_runs_left(containers, "/secrets") or _node_playbooks_left()):
        time.sleep(1)
    assert _node_runs_left(containers, "/secrets") == [] and _node_playbooks_left() == ""
    deadline = time.monotonic() + STOP_GRACE_S + 30
    while time.monotonic() < deadline and _node_runs_left(containers):
        time.sleep(1)
    assert _node_runs_left(containers) == []

    _, again = fleet.json("up")
    configured = again["configure"]["nodes"]
    assert all(n["state"] in ("ok", "changed") for n in configured), configured  # really configured
    health = again["health"]["nodes"]
    assert len(health) == 3 and all(n["health"] == "healthy" for n in health), health
    assert all(_has_stamp(c) for c in containers)


def test_2b_operator_commands_reach_the_nodes(fleet: Fleet) -> None:
    nodes = sorted(fleet.containers().items())
    instance_id, container = nodes[0]

    _, status = fleet.json("status")
    assert sorted(n["node"] for n in status["nodes"]) == sorted(fleet.host(i) for i, _ in nodes)
    assert all(c["up"] == c["wanted"] for c in status["clusters"]) and status["ok"] is True
    cost = status["cost"]  # local nodes cost nothing, but their clusters and launch times are known
    assert cost["basis"] == "local nodes cost nothing" and cost["total"] == 0 and cost["error"] == "", cost
    assert {c["region"]: c["nodes"] for c in cost["clusters"]} == {c["region"]: c["wanted"] for c in status["clusters"]}
    assert all(c["cost"] == 0 and c["up_seconds"] > 0 and c["launched_at"] > 0 for c in cost["clusters"]), cost

    ssh = fleet.deploy("ssh", instance_id, "cat", "/etc/hostname")
    assert ssh.returncode == 0 and ssh.stdout.strip() == fleet.host(instance_id), ssh.stdout + ssh.stderr

    logs = fleet.deploy("logs", fleet.host(instance_id), "bacalhau", "--tail", "50")
    assert logs.returncode == 0, logs.stderr
    assert "connected to orchestrator" in (logs.stdout + logs.stderr).lower()

    # -o before the command: everything after exec's target is the remote command line.
    ran = fleet.deploy("-o", "json", "exec", "--sudo", "all", "cat", "/opt/sensor/config/node-identity.json")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    exec_all = json.loads(ran.stdout)
    assert exec_all["ok"] is True and len(exec_all["nodes"]) == 3, exec_all
    identities = {row["node"]: json.loads(row["outputs"][0]) for row in exec_all["nodes"]}
    assert sorted(identities) == sorted(fleet.host(i) for i in fleet.containers())
    assert len({identity["sensor_id"] for identity in identities.values()}) == 3

    printed = fleet.deploy("inventory", "--print")
    assert printed.returncode == 0 and f"fleet_{fleet.name}" in yaml.safe_load(printed.stdout)["all"]["children"]

    inventory_before = fleet.inventory.stat().st_mtime_ns
    unknown = fleet.deploy("ssh", "no-such-node")
    assert unknown.returncode == 2 and "is not a node of this fleet" in unknown.stderr
    assert fleet.inventory.stat().st_mtime_ns == inventory_before  # a bad name rewrites nothing


def test_3_drift_is_reported_on_that_node_only_then_fixed(fleet: Fleet) -> None:
    drifted_id, container = sorted(fleet.containers().items())[0]
    docker_out("exec", container, "sed", "-i", "s/DisableAnalytics: true/DisableAnalytics: false/",
            "/etc/bacalhau/config.yaml")
    docker_out("exec", container, "docker", "stop", "sensor")

    check = fleet.deploy("configure", "--check")
    assert check.returncode == 3, check.stdout[-6000:]  # drift found, like terraform's -detailed-exitcode
    assert f"drift on: {fleet.host(drifted_id)}\n" in check.stdout  # what a person reads
    _, drift = fleet.json("configure", "--check", expect=3)
    assert drift["drifted"] == [fleet.host(drifted_id)]
    assert {n["node"] for n in drift["nodes"] if n["changed"]} == {fleet.host(drifted_id)}
    assert sorted(d.split(":")[0] for d in by_key(drift["nodes"], "node")[fleet.host(drifted_id)]["drift"]) == \
        ["container sensor", "file /etc/bacalhau/config.yaml"]

    fix = fleet.deploy("configure")
    assert fix.returncode == 0, fix.stdout[-6000:]
    health = fleet.deploy("health")
    assert health.returncode == 0, health.stdout[-4000:]
    assert "DisableAnalytics: true" in docker_out("exec", container, "cat", "/etc/bacalhau/config.yaml")


def test_3a_both_configure_modes_and_site_yml_leave_nodes_the_same(fleet: Fleet) -> None:
    """Each node running the roles itself (ansible-core 2.17 from the bundle, on the node's Python 3.13) and the
    controller running them (ansible-core 2.19) write the same files: a full run of the other mode changes
    nothing. The node mode's drift check and fix work as the controller's, and nothing of a run stays on a node."""
    default = ConfigureSpec().configure_mode
    other = ConfigureMode.CONTROLLER if default is ConfigureMode.NODE else ConfigureMode.NODE
    _, full = fleet.json("configure", "--full", "--configure-mode", other)
    assert len(full["nodes"]) == 3, full
    assert all(n["state"] == "ok" and n["changed"] == 0 and n["ok"] > 50 for n in full["nodes"]), full["nodes"]

    # The design card's path: ansible-playbook with the generated inventory, from the controller.
    direct = run_playbook(REPO / "playbooks" / "site.yml", None, "-l", f"fleet_{fleet.name}", env=fleet.env)
    fleet.outputs.append(direct.stdout + direct.stderr)
    assert direct.rc == 0, direct.stdout[-4000:]
    stats = direct.document["stats"]
    assert sorted(stats) == sorted(fleet.host(i) for i in fleet.containers())
    assert all(row["changed"] == 0 and row["failures"] == 0 for row in stats.values()), stats

    drifted_id, container = sorted(fleet.containers().items())[-1]
    docker_out("exec", container, "sed", "-i", "s/DisableAnalytics: true/DisableAnalytics: false/",
               "/etc/bacalhau/config.yaml")
    _, drift = fleet.json("configure", "--check", "--configure-mode", "node", expect=3)
    assert drift["drifted"] == [fleet.host(drifted_id)]
    assert [d.split(":")[0] for d in by_key(drift["nodes"], "node")[fleet.host(drifted_id)]["drift"]] == \
        ["file /etc/bacalhau/config.yaml"]
    _, fixed = fleet.json("configure", "--configure-mode", "node")
    states = {n["node"]: n["state"] for n in fixed["nodes"]}
    assert states.pop(fleet.host(drifted_id)) == "changed" and set(states.values()) == {"converged"}, fixed
    assert "DisableAnalytics: true" in docker_out("exec", container, "cat", "/etc/bacalhau/config.yaml")
    assert _node_runs_left(sorted(fleet.containers().values())) == []  # no run directory, no secret copy


def test_4_preempted_node_is_replaced_and_only_it_is_configured(fleet: Fleet) -> None:
    before = fleet.containers()
    victim_id, victim = sorted(before.items())[-1]
    docker_out("rm", "-f", "-v", victim)

    _, up = fleet.json("up")
    after = fleet.containers()
    assert len(after) == 3 and victim_id not in after
    (new_id,) = set(after) - set(before)
    configured = by_key(up["configure"]["nodes"], "node")
    # Only the new node is configured; the survivors end after the convergence check.
    assert {name for name, n in configured.items() if n["state"] != "converged"} == {fleet.host(new_id)}
    assert configured[fleet.host(new_id)]["state"] == "changed"
    health = up["health"]["nodes"]
    assert len(health) == 3 and all(n["health"] == "healthy" for n in health), health


def test_5_one_unreachable_node_does_not_stop_the_others(fleet: Fleet) -> None:
    nodes = sorted(fleet.containers().items())
    down_id, down_container = nodes[0]
    # Stop the listener and end open sessions too: ansible's ControlPersist masters would otherwise still work.
    docker_out("exec", down_container, "systemctl", "stop", "ssh.socket", "ssh.service")
    docker_out("exec", down_container, "sh", "-c",
            "for p in /proc/[0-9]*; do grep -qs '^sshd' $p/comm && kill ${p#/proc/}; done; true")
    try:
        _, result = fleet.json("configure", expect=1)
        rows = by_key(result["nodes"], "node")
        assert rows[fleet.host(down_id)]["state"] == "unreachable"
        assert all(rows[fleet.host(i)]["state"] == "converged" for i, _ in nodes[1:]), rows
        assert result["ok"] is False and Path(result["run_log"]).is_file()  # the full output is kept
    finally:
        docker_out("exec", down_container, "systemctl", "start", "ssh.service")
    # Nothing the roles manage changed on it: --full runs every task on every node anyway, and changes nothing.
    _, again = fleet.json("configure", "--full")
    assert all(n["state"] == "ok" and n["changed"] == 0 and n["ok"] > 40 for n in again["nodes"]), again["nodes"]


def _set_count(fleet: Fleet, region: str, count: int) -> None:
    text = fleet.fleet_file.read_text()
    start = text.index(f"  {region}: {{count: ")
    end = text.index("}", start)
    fleet.fleet_file.write_text(text[:start] + f"  {region}: {{count: {count}" + text[end:])


def test_5b_count_changes_resize_the_region_and_leave_survivors_alone(fleet: Fleet) -> None:
    before = fleet.containers()
    _set_count(fleet, "us-east-1", 1)
    _, plan = fleet.json("plan")
    actions = {c["cluster"]: c["action"] for c in plan["clusters"]}
    assert actions[f"{fleet.name}-us-east-1"] == "resize 2 -> 1 node(s)", actions
    assert actions[f"{fleet.name}-eu-west-1"] == "nothing to do", actions

    _, shrink = fleet.json("up")
    assert by_key(shrink["clusters"], "cluster")[f"{fleet.name}-us-east-1"]["action"] == "resized"
    after = fleet.containers()
    assert len(after) == 2 and set(after) < set(before)
    configured = shrink["configure"]["nodes"]
    assert all(n["state"] == "converged" for n in configured), configured  # survivors untouched

    _set_count(fleet, "us-east-1", 2)
    _, grow = fleet.json("up")
    (new_id,) = set(fleet.containers()) - set(after)
    configured = by_key(grow["configure"]["nodes"], "node")
    assert {name for name, n in configured.items() if n["state"] != "converged"} == {fleet.host(new_id)}
    health = grow["health"]["nodes"]
    assert len(health) == 3 and all(n["health"] == "healthy" for n in health), health
