"""`scripts/benchmark.py --watch`: the watcher's figures on local fleets (medians of --watch-samples).

  detect_s    a node container killed -> the watcher's node_lost event is in its event log (polled every 0.5 s:
              the event's own time is when its tick started, which may be before the kill)
  healthy_s   a node container killed -> the watcher's saved state shows every node up and healthy again
  idle_tick_controller_cpu_per_node_s   `watch --once` on a converged, healthy fleet: controller CPU / N (N = 5, 20),
              the whole command (the cron form: Python start-up and imports included)
  running_tick_controller_cpu_per_node_s  the same fleet, one tick of a running watcher: its CPU and its children's
              over --watch-samples back-to-back ticks (after two warm-up ticks), / ticks / N
  rss_growth_mb   the watcher's RSS after 200 ticks at a 1 s interval minus after its first 10 (one node)

Writes only the `watch` object of docs/benchmark.json (the `runs` array is the scale-out work's).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from benchmark_probe import measure

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"detect_s": "<= interval + 10 s", "healthy_s": "<= 120 s", "idle_tick_controller_cpu_per_node_s":
           "<= 0.1 s", "running_tick_controller_cpu_per_node_s": "<= 0.1 s", "rss_growth_mb": "< 10 MB over 200 ticks"}


def _deploy(fleet_file: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), *args]


def _run(fleet_file: Path, env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(_deploy(fleet_file, *args), env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-2000:]}")


def _with_watch(fleet_file: Path, interval: int, readings_s: int | None = None) -> None:
    extra = f"watch: {{interval_seconds: {interval}, unhealthy_ticks: 2}}\n"
    if readings_s is not None:
        extra += f"role_vars: {{health_check_readings_interval_seconds: {readings_s}}}\n"
    fleet_file.write_text(fleet_file.read_text() + extra)


def _events(state: Path, fleet: str) -> list[dict[str, Any]]:
    path = state / fleet / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _all_healthy(state: Path, fleet: str, wanted: int) -> bool:
    try:
        saved = json.loads((state / fleet / "watch-state.json").read_text())
    except (OSError, ValueError):
        return False
    nodes = saved.get("nodes") or []
    return len(nodes) == wanted and all(n["health"] == "healthy" for n in nodes)


def heal_cycle(fleet_file: Path, fleet: str, env: dict[str, str], wanted: int, interval: int) -> tuple[float, float]:
    """Kill one node container with a watcher running; seconds to its node_lost event and to all healthy."""
    state = Path(env["FLEETDEPLOY_STATE_DIR"])
    log = (state / f"{fleet}-watch.log").open("a")
    watcher = subprocess.Popen(_deploy(fleet_file, "watch", "--interval", str(interval)), env=env, cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _all_healthy(state, fleet, wanted):
            if time.monotonic() > deadline:
                raise SystemExit("benchmark: the fleet was not healthy before the kill")
            time.sleep(1)
        seen = len(_events(state, fleet))
        victim = subprocess.run(["docker", "ps", "--filter", f"label=fleetdeploy.fleet={fleet}", "--filter",
                                 "label=fleetdeploy.instance-id", "--format", "{{.Names}}"],
                                capture_output=True, text=True, check=True).stdout.split()[0]
        killed = time.time()
        subprocess.run(["docker", "kill", victim], capture_output=True, check=True)
        detect = healthy = None
        while healthy is None:
            if time.time() - killed > 900:
                raise SystemExit("benchmark: the node was not healed within 15 minutes")
            if detect is None:
                if any(e["kind"] == "node_lost" for e in _events(state, fleet)[seen:]):
                    detect = time.time() - killed
            elif _all_healthy(state, fleet, wanted) and any(
                    e["kind"] == "heal_done" for e in _events(state, fleet)[seen:]):
                healthy = time.time() - killed
            time.sleep(0.5)
        return detect, healthy
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(180)
        log.close()


def idle_tick(fleet_file: Path, fleet: str, env: dict[str, str], nodes: int) -> float:
    result = measure(_deploy(fleet_file, "watch", "--once"), env, REPO, fleet)
    if result.returncode != 0:
        raise SystemExit(f"benchmark: watch --once on the idle fleet said not well:\n{result.stdout[-3000:]}")
    return result.controller_cpu_s / nodes


def _tree_cpu_s(process: psutil.Process) -> float:
    """CPU of the process and of every child it has waited for (ansible-playbook and its forks, docker, ssh)."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def running_tick(fleet_file: Path, fleet: str, env: dict[str, str], nodes: int, ticks: int) -> float:
    """Controller CPU per node of one tick of a running watcher on an idle fleet (ticks back to back)."""
    state = Path(env["FLEETDEPLOY_STATE_DIR"])
    log = (state / f"{fleet}-ticks.log").open("a")
    watcher = subprocess.Popen(_deploy(fleet_file, "watch", "--interval", "1"), env=env, cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT)
    process = psutil.Process(watcher.pid)
    try:
        start = _ticks(state, fleet)
        _wait_ticks(state, fleet, start + 2, watcher)
        before, first = _tree_cpu_s(process), _ticks(state, fleet)
        _wait_ticks(state, fleet, first + ticks, watcher)
        after, last = _tree_cpu_s(process), _ticks(state, fleet)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(180)
        log.close()
    return (after - before) / (last - first) / nodes


def _wait_ticks(state: Path, fleet: str, count: int, watcher: subprocess.Popen[bytes]) -> None:
    # The state file is saved at the end of each tick; polling it finely keeps the window on tick boundaries.
    while _ticks(state, fleet) < count:
        if watcher.poll() is not None:
            raise SystemExit("benchmark: the watcher exited while ticking")
        time.sleep(0.05)


def _ticks(state: Path, fleet: str) -> int:
    try:
        return int(json.loads((state / fleet / "watch-state.json").read_text()).get("ticks") or 0)
    except (OSError, ValueError):
        return 0


def rss_growth(fleet_file: Path, fleet: str, env: dict[str, str], ticks: int) -> dict[str, float]:
    state = Path(env["FLEETDEPLOY_STATE_DIR"])
    start = _ticks(state, fleet)
    log = (state / f"{fleet}-rss.log").open("a")
    watcher = subprocess.Popen(_deploy(fleet_file, "watch", "--interval", "1"), env=env, cwd=REPO, stdout=log,
                               stderr=subprocess.STDOUT)
    process = psutil.Process(watcher.pid)
    early = late = 0.0
    try:
        while (done := _ticks(state, fleet) - start) < ticks:
            if done >= 10 and not early:
                early = process.memory_info().rss / 1e6
            if watcher.poll() is not None:
                raise SystemExit("benchmark: the watcher exited during the RSS run")
            time.sleep(0.5)
        late = process.memory_info().rss / 1e6
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(180)
        log.close()
    return {"rss_after_10_ticks_mb": round(early, 1), f"rss_after_{ticks}_ticks_mb": round(late, 1),
            "rss_growth_mb": round(late - early, 1)}


def benchmark_watch(work: Path, env: dict[str, str], write_fleet: Any, samples: int, ticks: int,
                    interval: int) -> dict[str, Any]:
    report: dict[str, Any] = {"interval_s": interval, "samples": samples, "targets": TARGETS,
                              "idle_tick_controller_cpu_per_node_s": {},
                              "running_tick_controller_cpu_per_node_s": {}}
    for nodes in (5, 20):
        fleet = f"w{nodes}{uuid.uuid4().hex[:4]}"
        fleet_file = write_fleet(work, fleet, {"us-east-1": nodes})
        _with_watch(fleet_file, interval)
        try:
            _run(fleet_file, env, "up")
            per_node = [idle_tick(fleet_file, fleet, env, nodes) for _ in range(samples)]
            report["idle_tick_controller_cpu_per_node_s"][str(nodes)] = round(statistics.median(per_node), 3)
            print(f"  watch idle tick N={nodes}: {per_node} s of controller CPU per node", flush=True)
            running = running_tick(fleet_file, fleet, env, nodes, samples)
            report["running_tick_controller_cpu_per_node_s"][str(nodes)] = round(running, 3)
            print(f"  watch running tick N={nodes}: {running:.3f} s of controller CPU per node", flush=True)
            if nodes == 5:
                cycles = [heal_cycle(fleet_file, fleet, env, nodes, interval) for _ in range(samples)]
                report["detect_samples_s"] = [round(d, 1) for d, _ in cycles]
                report["healthy_samples_s"] = [round(h, 1) for _, h in cycles]
                report["detect_s"] = round(statistics.median(d for d, _ in cycles), 1)
                report["healthy_s"] = round(statistics.median(h for _, h in cycles), 1)
                print(f"  watch heal: detect {report['detect_samples_s']} s, healthy {report['healthy_samples_s']} s",
                      flush=True)
        finally:
            subprocess.run(_deploy(fleet_file, "down", "--yes"), env=env, cwd=REPO, capture_output=True)
    fleet = f"wr{uuid.uuid4().hex[:4]}"
    fleet_file = write_fleet(work, fleet, {"us-east-1": 1})
    _with_watch(fleet_file, 1, readings_s=1)  # a one-second tick: the readings check waits 1 s, not 10
    try:
        _run(fleet_file, env, "up")
        report.update(rss_growth(fleet_file, fleet, env, ticks))
        report["rss_ticks"] = ticks
        print(f"  watch RSS: {report}", flush=True)
    finally:
        subprocess.run(_deploy(fleet_file, "down", "--yes"), env=env, cwd=REPO, capture_output=True)
    report["date"] = time.strftime("%Y-%m-%d")
    report["cores"] = os.cpu_count()
    return report
