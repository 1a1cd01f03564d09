"""`deploy.py watch` on the shared local fleet: one watcher in the background at a short interval, heals and fixes
with no command typed, and tells a webhook receiver on 127.0.0.1 what it did.

Runs after test_local_fleet_drift.py and before test_local_fleet_ops.py (which takes the fleet down); the watcher
runs only while this module does, so the other modules' deliberate drift is theirs to see.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_fleet import REPO, Fleet, by_key, docker_out

from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.e2e

INTERVAL_S = 3


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Watching:
    fleet: Fleet
    hook: WebhookReceiver
    metrics_port: int
    textfile: Path
    log: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = self.log.open("a")
        argv = [sys.executable, str(REPO / "deploy.py"), "-f", str(self.fleet.fleet_file), "watch",
                "--interval", str(INTERVAL_S), "--metrics-port", str(self.metrics_port)]
        self.proc = subprocess.Popen(argv, cwd=REPO, env=self.fleet.env, stdout=handle, stderr=subprocess.STDOUT,
                                     text=True)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 180) -> int:
        assert self.proc is not None
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        self.proc = None
        self.fleet.outputs.append(self.log.read_text())
        return code

    def output(self) -> str:
        return self.log.read_text()

    def wait_line(self, text: str, timeout: float = 120, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output()[after:]:
                return
            assert self.proc is None or self.proc.poll() is None, self.output()[-4000:]
            time.sleep(0.5)
        raise AssertionError(f"the watcher never printed {text!r}:\n{self.output()[-4000:]}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return str(response.read().decode())


def _wait(check: Callable[[], Any], timeout: float, what: str, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {last})")


@pytest.fixture(scope="module")
def watching(fleet: Fleet) -> Iterator[Watching]:
    original = fleet.fleet_file.read_text()
    work = fleet.fleet_file.parent
    with WebhookReceiver() as hook:
        textfile = work / "metrics" / "fleet.prom"
        textfile.parent.mkdir()
        fleet.fleet_file.write_text(original + f"""watch:
  interval_seconds: 60
  unhealthy_ticks: 2
  backoff_min_seconds: 20
  backoff_max_seconds: 40
  webhook_url: {hook.url}
  webhook_timeout_seconds: 2
  metrics_textfile: {textfile}
""")
        watch = Watching(fleet, hook, _free_port(), textfile, work / "watch.log")
        watch.start()
        watch.wait_line("tick 1:")
        try:
            yield watch
        finally:
            if watch.proc is not None:
                watch.stop()
            fleet.fleet_file.write_text(original)


def _kinds(hook: WebhookReceiver, since: int = 0) -> list[tuple[str, str]]:
    return hook.kinds()[since:]


def _healthy_and_complete(fleet: Fleet, wanted: int = 3) -> bool:
    _, health = fleet.json("health", expect=None)
    rows = health["nodes"]
    return len(rows) == wanted and all(r["health"] == "healthy" for r in rows) and len(fleet.containers()) == wanted


def test_w1_a_second_watcher_exits_2_and_a_manual_up_respects_the_lock(fleet: Fleet, watching: Watching) -> None:
    assert watching.proc is not None
    second = fleet.deploy("watch", "--once")
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"a watcher already runs for fleet '{fleet.name}': watch (pid {watching.proc.pid})" in second.stderr

    lock = Path(fleet.env["FLEETDEPLOY_STATE_DIR"]) / fleet.name / "fleet.lock"
    _wait(lambda: "watch tick" in lock.read_text(), 60, "a tick holding the fleet lock", every=0.2)
    busy = fleet.deploy("up", "--lock-wait", "0")
    assert busy.returncode == 2, busy.stdout + busy.stderr
    assert f"watch tick (pid {watching.proc.pid}) holds its lock" in busy.stderr, busy.stderr
    assert "Provisioning" not in busy.stdout  # nothing started

    _wait(lambda: "watch tick" in lock.read_text(), 60, "a tick holding the fleet lock", every=0.2)
    waited = fleet.deploy("up", "--skip-health", "--lock-wait", "120")
    assert waited.returncode == 0, waited.stdout[-3000:] + waited.stderr[-3000:]
    assert "waiting up to 120 s for the fleet lock: watch tick" in waited.stderr


def test_w2_a_stopped_service_and_an_edited_file_are_fixed(fleet: Fleet, watching: Watching) -> None:
    nodes = sorted(fleet.containers().items())
    (stopped_id, stopped), (edited_id, edited) = nodes[0], nodes[1]
    docker_out("exec", stopped, "docker", "stop", "bacalhau")
    docker_out("exec", edited, "sh", "-c", "echo '# edited by hand' >> /etc/bacalhau/config.yaml")

    watching.hook.wait_for("drift_fixed", fleet.host(stopped_id), timeout=240)
    watching.hook.wait_for("drift_fixed", fleet.host(edited_id), timeout=240)
    state = docker_out("exec", stopped, "docker", "inspect", "-f", "{{.State.Status}}", "bacalhau").strip()
    assert state == "running"
    assert "# edited by hand" not in docker_out("exec", edited, "cat", "/etc/bacalhau/config.yaml")


def test_w3_a_stopped_orchestrator_is_one_alert_and_no_action_then_recovered(fleet: Fleet,
                                                                             watching: Watching) -> None:
    orchestrator = f"fleet-{fleet.name}-orchestrator"
    sent = len(watching.hook.alerts)
    containers = fleet.containers()
    mark = len(watching.output())
    docker_out("stop", orchestrator)
    try:
        watching.hook.wait_for("orchestrator_unreadable", "orchestrator", timeout=120)
        # More ticks: the nodes lose their orchestrator, and still nothing is configured or launched.
        held = "holding (nothing is configured or launched)"
        _wait(lambda: watching.output()[mark:].count(held) >= 3, 240, "three held ticks", every=1)
        assert _kinds(watching.hook, sent) == [("orchestrator_unreadable", "orchestrator")]
        assert fleet.containers() == containers
        assert "configuring" not in watching.output()[mark:] and "healing" not in watching.output()[mark:]
    finally:
        docker_out("start", orchestrator)
    watching.hook.wait_for("recovered", "orchestrator", timeout=180)
    _wait(lambda: _healthy_and_complete(fleet), 300, "the nodes rejoined and healthy", every=10)


def test_w4_a_killed_node_heals_with_no_command_typed_while_a_failing_region_backs_off(
    fleet: Fleet, watching: Watching
) -> None:
    original = fleet.fleet_file.read_text()
    missing = f"localhost/fleet-node:{fleet.name}-missing"
    fleet.fleet_file.write_text(original.replace("labels:\n", f"local:\n  node_images: {{eu-west-1: {missing}}}\n"
                                                 "labels:\n", 1))
    sent = len(watching.hook.alerts)
    nodes = fleet.containers()
    (east_id, east), (west_id, west) = (sorted((i, c) for i, c in nodes.items() if f"-{r}-" in c)[0]
                                        for r in ("us-east-1", "eu-west-1"))
    try:
        docker_out("kill", east)  # preemptions: the machines are gone, nobody types anything
        docker_out("kill", west)
        failed = watching.hook.wait_for("heal_failed", "eu-west-1", timeout=240)
        assert f"node image {missing} is not on this machine" in failed["text"], failed
        lost = watching.hook.wait_for("node_lost", fleet.host(east_id), timeout=60)
        assert lost["fleet"] == fleet.name and "(us-east-1) is gone" in lost["text"]
        done = watching.hook.wait_for("heal_done", "us-east-1", timeout=400)
        assert "1 new node(s), 1 configured" in done["text"], done
        east_alerts = [k for k in _kinds(watching.hook, sent) if k[1] in (fleet.host(east_id), "us-east-1")]
        assert east_alerts == [("node_lost", fleet.host(east_id)), ("heal_started", "us-east-1"),
                               ("heal_done", "us-east-1")], east_alerts
        metrics = watching.metrics()
        assert f'fleet_watch_heals_total{{fleet="{fleet.name}",region="us-east-1"}} 1.0' in metrics, metrics
        assert f'fleet_watch_launch_failures_total{{fleet="{fleet.name}",region="eu-west-1"}}' in metrics
        assert f'fleet_watch_nodes_wanted{{fleet="{fleet.name}",region="us-east-1"}} 2.0' in metrics
        assert "fleet_watch_last_good_tick_timestamp_seconds" in watching.textfile.read_text()
        # The failing region backs off (its retries, told once, are unit-tested) while the other one healed.
        state_file = Path(fleet.env["FLEETDEPLOY_STATE_DIR"]) / fleet.name / "watch-state.json"
        west = json.loads(state_file.read_text())["regions"]["eu-west-1"]
        assert west["failures"] >= 1 and west["failure_kind"] == "unknown" and missing in west["last_error"], west
        assert [k for k in _kinds(watching.hook, sent) if k[0] == "heal_failed"] == [("heal_failed", "eu-west-1")]
    finally:
        fleet.fleet_file.write_text(original)
    watching.hook.wait_for("heal_done", "eu-west-1", timeout=400)
    _wait(lambda: _healthy_and_complete(fleet), 300, "both regions healed", every=10)
    assert east_id not in fleet.containers() and west_id not in fleet.containers()


def test_w5_sigterm_during_a_heal_then_a_restart_converges_without_a_duplicate_launch(
    fleet: Fleet, watching: Watching
) -> None:
    before = fleet.containers()
    victim_id, victim = sorted((i, c) for i, c in before.items() if "-us-east-1-" in c)[0]
    mark = len(watching.output())
    docker_out("kill", victim)
    watching.wait_line("healing us-east-1", timeout=180, after=mark)
    assert watching.stop(signal.SIGTERM) == 0
    assert "terminated: state saved, stopping" in watching.output()[mark:]
    created = set(fleet.containers()) - set(before)
    assert len(created) <= 1, created  # the one replacement, finished or removed, never two

    watching.start()
    watching.wait_line("tick", timeout=120, after=len(watching.output()))
    _wait(lambda: _healthy_and_complete(fleet), 400, "the fleet converged after the restart", every=10)
    after = fleet.containers()
    assert len(set(after) - set(before)) == 1 and victim_id not in after, (before, after)


def test_w6_a_bad_fleet_file_and_a_hanging_webhook_never_stop_the_loop(fleet: Fleet, watching: Watching) -> None:
    original = fleet.fleet_file.read_text()
    watching.hook.hang.set()
    sent = len(watching.hook.alerts)
    mark = len(watching.output())
    try:
        fleet.fleet_file.write_text(original.replace("  us-east-1: {count: 2}", "  us-east-1: {count: 0}"))
        watching.hook.wait_for("fleet_file_invalid", "fleet file", timeout=120)
        # The webhook hangs (2 s timeout): ticks go on at their pace, on the last valid file.
        for n in range(2):
            watching.wait_line("nothing to do", timeout=120, after=len(watching.output()))
        assert "healing" not in watching.output()[mark:] and len(fleet.containers()) == 3
    finally:
        fleet.fleet_file.write_text(original)
    watching.hook.wait_for("recovered", "fleet file", timeout=120)
    assert [k for k in _kinds(watching.hook, sent) if k[0] == "fleet_file_invalid"] == [
        ("fleet_file_invalid", "fleet file")]
    watching.hook.hang.clear()
    _, events = fleet.json("events", "--since", "1h")
    kinds = [e["kind"] for e in events]
    assert "fleet_file_invalid" in kinds and "webhook_failed" in kinds, kinds
    assert all(fleet.token not in e["text"] and watching.hook.url not in e["text"] for e in events)
    assert by_key([e for e in events if e["kind"] == "fleet_file_invalid"], "kind")["fleet_file_invalid"]["text"] \
        .startswith(f"{fleet.fleet_file}: regions.us-east-1.count: must be >= 1")
