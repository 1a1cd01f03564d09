"""The watcher as a process, on a local fleet that was never brought up (every tick holds: no orchestrator, no node,
so a tick takes a fraction of a second): killed with SIGKILL it leaves no stale lock, and the next watcher resumes
from the saved state; SIGTERM ends it with 0, Ctrl-C with 130; --once answers 1 while nothing is well."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def fleet(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("a Docker engine is needed (the local provider asks it each tick): run scripts/setup.sh")
    token = tmp_path / "orchestrator.token"
    token.write_text("watch-process-token\n")
    token.chmod(0o600)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(f"""name: wproc
provider: local
regions: {{us-east-1: {{count: 1}}}}
orchestrator: {{endpoint: local, token_file: {token}, api: local}}
sensor: {{version: v1.17.0}}
""")
    return fleet_file, dict(os.environ, FLEETDEPLOY_STATE_DIR=str(tmp_path / "state"))


def _start(fleet_file: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), "watch", "--interval",
                             "1"], cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _ticks(env: dict[str, str]) -> int:
    try:
        return int(json.loads((Path(env["FLEETDEPLOY_STATE_DIR"]) / "wproc" / "watch-state.json").read_text())["ticks"])
    except (OSError, ValueError, KeyError):
        return 0


def _wait_ticks(env: dict[str, str], at_least: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while _ticks(env) < at_least:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no tick {at_least} within 90 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def test_a_killed_watcher_leaves_no_lock_and_the_next_one_resumes(fleet: tuple[Path, dict[str, str]],
                                                                  tmp_path: Path) -> None:
    fleet_file, env = fleet
    log = tmp_path / "watch.log"
    first = _start(fleet_file, env, log)
    _wait_ticks(env, 3, first, log)
    first.send_signal(signal.SIGKILL)  # no cleanup at all: the kernel drops its locks
    first.wait(30)
    before = _ticks(env)

    second = _start(fleet_file, env, log)
    _wait_ticks(env, before + 2, second, log)  # it started (the lock was free) and counts on from the saved state
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0
    assert "terminated: state saved, stopping" in log.read_text()

    third = _start(fleet_file, env, log)
    _wait_ticks(env, _ticks(env) + 1, third, log)
    third.send_signal(signal.SIGINT)
    assert third.wait(60) == 130
    # One alert for the whole time: the orchestrator problem stayed open across the restarts.
    events = [json.loads(line) for line in
              (Path(env["FLEETDEPLOY_STATE_DIR"]) / "wproc" / "events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events if e["kind"] == "orchestrator_unreadable"] == ["orchestrator_unreadable"]
    assert [e["text"] for e in events if e["kind"] == "watch_stopped"] == ["SIGTERM", "interrupted"]


def test_watch_once_says_1_while_something_is_wrong(fleet: tuple[Path, dict[str, str]]) -> None:
    fleet_file, env = fleet
    once = subprocess.run([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), "watch", "--once"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert once.returncode == 1, once.stdout + once.stderr
    assert "holding (nothing is configured or launched)" in once.stdout


def test_a_tick_that_fails_is_logged_and_the_next_tick_runs(fleet: tuple[Path, dict[str, str]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from fleetdeploy.operations.options import WatchOptions
    from fleetdeploy.watch import loop

    fleet_file, env = fleet
    monkeypatch.setenv("FLEETDEPLOY_STATE_DIR", env["FLEETDEPLOY_STATE_DIR"])
    calls = []

    def broken_observe(ctx: object) -> object:
        calls.append(ctx)
        raise RuntimeError("the provider's API changed under us")

    monkeypatch.setattr(loop, "observe", broken_observe)
    out = io.StringIO()
    supervisor = loop.Supervisor(fleet_file, WatchOptions(once=True), False, Console(file=out), Console(file=out))
    first, second = supervisor.tick(), supervisor.tick()
    assert len(calls) == 2 and not first.well and not second.well
    assert "failed: RuntimeError: the provider's API changed under us (the next tick tries again)" in first.line
    events = (Path(env["FLEETDEPLOY_STATE_DIR"]) / "wproc" / "events.jsonl").read_text().splitlines()
    assert [json.loads(e)["kind"] for e in events] == ["tick_failed", "tick_failed"]
    assert (Path(env["FLEETDEPLOY_STATE_DIR"]) / "wproc" / "report.html").is_file()  # still recorded
