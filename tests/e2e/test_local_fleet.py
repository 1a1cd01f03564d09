"""End to end on a real 3-node local fleet: real containers with systemd, sshd and a Docker engine each, real SSH,
real Ansible through the CLI. Only the service images are test doubles (tests/doubles), loaded from archives.

The tests run in order on one fleet (module-scoped): up → no-op re-run → drift → preemption → partial failure →
secrets → down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ARCHIVES = REPO / ".cache" / "images"
pytestmark = pytest.mark.e2e
STAMP = "/var/lib/fleetdeploy/converged.json"


@dataclass
class Fleet:
    name: str
    fleet_file: Path
    token: str
    env: dict[str, str]
    watcher: _CommandLineWatcher
    outputs: list[str] = field(default_factory=list)

    @property
    def inventory(self) -> Path:
        return REPO / "inventory" / f"{self.name}.yml"

    def deploy(self, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(self.fleet_file), *args],
                                cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        self.outputs.append(result.stdout + result.stderr)
        return result

    def json(self, *args: str, expect: int | None = 0) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run a command with `--output json`; stdout must be exactly one JSON document."""
        result = self.deploy(*args, "--output", "json")
        if expect is not None:
            assert result.returncode == expect, result.stdout[-6000:] + result.stderr[-3000:]
        return result, json.loads(result.stdout)

    def containers(self) -> dict[str, str]:
        """instance id → container name, for this fleet's node containers."""
        out = _docker("ps", "-a", "--filter", f"label=fleetdeploy.fleet={self.name}",
                      "--format", '{{.Names}} {{.Label "fleetdeploy.instance-id"}}')
        pairs = (line.split() for line in out.splitlines() if line.strip())
        return {parts[1]: parts[0] for parts in pairs if len(parts) == 2 and parts[1]}

    def host(self, instance_id: str) -> str:
        return f"{self.name}-{instance_id}"


def _volumes() -> set[str]:
    return set(_docker("volume", "ls", "-q").split())


def _proc_cmdlines(container: str) -> str:
    return _docker("exec", container, "sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=300).stdout


def _by(entries: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {entry[key]: entry for entry in entries}


class _CommandLineWatcher:
    """Samples every process command line on this machine while the fleet is worked on."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    cmdline = (proc / "cmdline").read_bytes()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.hits.append(cmdline.replace(b"\0", b" ").decode(errors="replace")[:200])

    def __enter__(self) -> _CommandLineWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    for archive in ("bacalhau-double.tar", "sensor-double.tar"):
        if not (ARCHIVES / archive).is_file():
            pytest.fail(f"{ARCHIVES / archive} is missing: run scripts/build-images.sh (scripts/setup.sh does)")
    work = tmp_path_factory.mktemp("fleet")
    name = f"e2e{uuid.uuid4().hex[:6]}"
    token = f"tok-E2E-{uuid.uuid4().hex}"
    token_file = work / "orchestrator.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
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
bacalhau:
  version: v1.9.3
  image: localhost/bacalhau-double:test
sensor:
  version: test
  image: localhost/sensor-double:test
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'bacalhau-double.tar'}
  sensor_archive: {ARCHIVES / 'sensor-double.tar'}
labels:
  team: e2e
"""
    )
    # A temp dir of its own: what the CLI leaves behind there is this fleet's, whatever else runs on the machine.
    (work / "tmp").mkdir()
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(work / "state"), COLUMNS="250", NO_COLOR="1",
               TMPDIR=str(work / "tmp"), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    handle = Fleet(name=name, fleet_file=fleet_file, token=token, env=env,
                   watcher=_CommandLineWatcher(token))
    with handle.watcher:
        yield handle
        handle.deploy("down", "--yes")
    for leftover in handle.containers().values():
        subprocess.run(["docker", "rm", "-f", "-v", leftover], capture_output=True)
    handle.inventory.unlink(missing_ok=True)  # a failed down must not leave dead hosts in inventory/


def test_1_up_brings_every_node_up_healthy(fleet: Fleet) -> None:
    _, up = fleet.json("up")
    nodes = fleet.containers()
    assert len(nodes) == 3
    health = _by(up["health"]["nodes"], "node")
    assert sorted(health) == sorted(fleet.host(i) for i in nodes)
    assert all(row["health"] == "healthy" for row in health.values()), health
    assert up["ok"] is True and {c["action"] for c in up["clusters"]} == {"launched"}

    # The health playbook works on its own with the repo's ansible.cfg and inventory/.
    direct = subprocess.run(["ansible-playbook", "playbooks/health.yml", "-l", f"fleet_{fleet.name}"],
                            cwd=REPO, env=fleet.env, capture_output=True, text=True, timeout=600)
    fleet.outputs.append(direct.stdout + direct.stderr)
    assert direct.returncode == 0, direct.stdout[-4000:]

    # Each node has its JSON status and the cron entry.
    for instance_id, container in nodes.items():
        status = json.loads(_docker("exec", container, "cat", "/var/lib/fleet-health/status.json"))
        assert status["healthy"] is True, status
        cron_entry = _docker("exec", container, "cat", "/etc/cron.d/fleet-health-check")
        assert "*/5 * * * * root /usr/local/bin/fleet-health-check" in cron_entry


def test_2_second_configure_changes_nothing(fleet: Fleet) -> None:
    _, configured = fleet.json("configure")
    assert len(configured["nodes"]) == 3
    assert all(n["state"] == "ok" and n["changed"] == 0 for n in configured["nodes"]), configured["nodes"]


def test_2a_up_on_a_converged_fleet_configures_nothing(fleet: Fleet) -> None:
    _, up = fleet.json("up", "--skip-health")
    rows = up["configure"]["nodes"]
    assert len(rows) == 3 and all(n["state"] == "converged" and n["changed"] == 0 for n in rows), rows
    assert up["health"] is None


def _remove_stamp(container: str) -> None:
    _docker("exec", container, "rm", "-f", STAMP)


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
        if "Configuring nodes:" in line:
            break
    for line in proc.stdout:
        seen.append(line)
        if ": running" in line:
            break
    # Past the convergence check and into the roles: a full run over unstamped nodes takes about a minute.
    time.sleep(8)
    if whole_group:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
    else:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    result = subprocess.CompletedProcess(argv, proc.returncode, "".join(seen) + out, err)
    fleet.outputs.append(result.stdout + result.stderr)
    return result


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

    ssh = fleet.deploy("ssh", instance_id, "cat", "/etc/hostname")
    assert ssh.returncode == 0 and ssh.stdout.strip() == fleet.host(instance_id), ssh.stdout + ssh.stderr

    logs = fleet.deploy("logs", fleet.host(instance_id), "bacalhau", "--tail", "50")
    assert logs.returncode == 0, logs.stderr
    assert "connected to orchestrator" in (logs.stdout + logs.stderr).lower()

    exec_all = fleet.deploy("exec", "--sudo", "all", "cat", "/opt/sensor/config/node-identity.json")
    assert exec_all.returncode == 0, exec_all.stdout
    assert exec_all.stdout.count('"sensor_id"') == 3

    printed = fleet.deploy("inventory", "--print")
    assert printed.returncode == 0 and f"fleet_{fleet.name}" in yaml.safe_load(printed.stdout)["all"]["children"]

    inventory_before = fleet.inventory.stat().st_mtime_ns
    unknown = fleet.deploy("ssh", "no-such-node")
    assert unknown.returncode == 2 and "is not a node of this fleet" in unknown.stderr
    assert fleet.inventory.stat().st_mtime_ns == inventory_before  # a bad name rewrites nothing


def test_3_drift_is_reported_on_that_node_only_then_fixed(fleet: Fleet) -> None:
    drifted_id, container = sorted(fleet.containers().items())[0]
    _docker("exec", container, "sed", "-i", "s/DisableAnalytics: true/DisableAnalytics: false/",
            "/etc/bacalhau/config.yaml")
    _docker("exec", container, "docker", "stop", "sensor")

    check = fleet.deploy("configure", "--check")
    assert check.returncode == 0, check.stdout[-6000:]
    assert f"drift on: {fleet.host(drifted_id)}\n" in check.stdout  # what a person reads
    _, drift = fleet.json("configure", "--check")
    assert drift["drifted"] == [fleet.host(drifted_id)]
    assert {n["node"] for n in drift["nodes"] if n["changed"]} == {fleet.host(drifted_id)}

    fix = fleet.deploy("configure")
    assert fix.returncode == 0, fix.stdout[-6000:]
    health = fleet.deploy("health")
    assert health.returncode == 0, health.stdout[-4000:]
    assert "DisableAnalytics: true" in _docker("exec", container, "cat", "/etc/bacalhau/config.yaml")


def test_4_preempted_node_is_replaced_and_only_it_is_configured(fleet: Fleet) -> None:
    before = fleet.containers()
    victim_id, victim = sorted(before.items())[-1]
    _docker("rm", "-f", "-v", victim)

    _, up = fleet.json("up")
    after = fleet.containers()
    assert len(after) == 3 and victim_id not in after
    (new_id,) = set(after) - set(before)
    configured = _by(up["configure"]["nodes"], "node")
    # Only the new node is configured; the survivors end after the convergence check.
    assert {name for name, n in configured.items() if n["state"] != "converged"} == {fleet.host(new_id)}
    assert configured[fleet.host(new_id)]["state"] == "changed"
    health = up["health"]["nodes"]
    assert len(health) == 3 and all(n["health"] == "healthy" for n in health), health


def test_5_one_unreachable_node_does_not_stop_the_others(fleet: Fleet) -> None:
    nodes = sorted(fleet.containers().items())
    down_id, down_container = nodes[0]
    # Stop the listener and end open sessions too: ansible's ControlPersist masters would otherwise still work.
    _docker("exec", down_container, "systemctl", "stop", "ssh.socket", "ssh.service")
    _docker("exec", down_container, "sh", "-c",
            "for p in /proc/[0-9]*; do grep -qs '^sshd' $p/comm && kill ${p#/proc/}; done; true")
    try:
        _, result = fleet.json("configure", expect=1)
        rows = _by(result["nodes"], "node")
        assert rows[fleet.host(down_id)]["state"] == "unreachable"
        assert all(rows[fleet.host(i)]["state"] == "ok" for i, _ in nodes[1:]), rows
        assert result["ok"] is False and Path(result["run_log"]).is_file()  # the full output is kept
    finally:
        _docker("exec", down_container, "systemctl", "start", "ssh.service")
    again = fleet.deploy("configure")
    assert again.returncode == 0, again.stdout[-6000:]


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
    assert _by(shrink["clusters"], "cluster")[f"{fleet.name}-us-east-1"]["action"] == "resized"
    after = fleet.containers()
    assert len(after) == 2 and set(after) < set(before)
    configured = shrink["configure"]["nodes"]
    assert all(n["state"] == "converged" for n in configured), configured  # survivors untouched

    _set_count(fleet, "us-east-1", 2)
    _, grow = fleet.json("up")
    (new_id,) = set(fleet.containers()) - set(after)
    configured = _by(grow["configure"]["nodes"], "node")
    assert {name for name, n in configured.items() if n["state"] != "converged"} == {fleet.host(new_id)}
    health = grow["health"]["nodes"]
    assert len(health) == 3 and all(n["health"] == "healthy" for n in health), health


def test_6_token_appears_only_in_the_nodes_config(fleet: Fleet) -> None:
    for output in fleet.outputs:
        assert fleet.token not in output
    assert fleet.token not in fleet.inventory.read_text()
    assert fleet.inventory.stat().st_mode & 0o777 == 0o600
    assert fleet.watcher.hits == []
    leftovers = list(Path(fleet.env["TMPDIR"]).iterdir())  # runner dirs, fd-capture files: nothing may stay
    assert leftovers == []
    for container in fleet.containers().values():
        assert fleet.token not in _docker("inspect", container)
        assert fleet.token not in _proc_cmdlines(container)
        mode = _docker("exec", container, "stat", "-c", "%a %U", "/etc/bacalhau/config.yaml").split()
        assert mode == ["600", "root"]
        assert fleet.token in _docker("exec", container, "cat", "/etc/bacalhau/config.yaml")


def test_7_down_leaves_nothing_of_the_fleet(fleet: Fleet) -> None:
    # The fleet's own volumes (each node's /var/lib/docker), named now: other tests may add volumes meanwhile.
    ours = {m["Name"] for c in fleet.containers().values()
            for m in json.loads(_docker("inspect", "--format", "{{json .Mounts}}", c)) if m.get("Type") == "volume"}
    assert ours, "every node has an anonymous /var/lib/docker volume"
    result = fleet.deploy("down", "--yes")
    assert result.returncode == 0, result.stdout[-4000:]
    assert fleet.containers() == {}
    assert _docker("ps", "-a", "--filter", f"name=fleet-{fleet.name}", "-q").strip() == ""
    assert _docker("network", "ls", "--filter", f"name=fleet-{fleet.name}", "-q").strip() == ""
    assert ours & _volumes() == set()
    assert not fleet.inventory.exists()
