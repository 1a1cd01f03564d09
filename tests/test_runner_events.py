"""The runner's event collector, failure messages, _mark_incomplete and the table renderer, from event data alone
(what ansible-runner hands us), without Ansible or Docker."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from fleetdeploy.health.verdict import Health, HealthResult, NodeHealth
from fleetdeploy.operations.steps import _mark_incomplete, node_runs
from fleetdeploy.output.render import show
from fleetdeploy.output.results import ConfigureResult
from fleetdeploy.runs.runner import NodeState, RunResult, EventCollector


class Board:
    def __init__(self) -> None:
        self.updates: list[tuple[str, str, str]] = []

    def update(self, item: str, state: str, detail: str = "") -> None:
        self.updates.append((item, str(state), detail))

    def count(self, item: str, key: str) -> None:
        pass


def event(kind: str, host: str, task: str = "t", **res: Any) -> dict[str, Any]:
    return {"event": kind, "event_data": {"host": host, "task": task, "res": res, "task_action": "command"}}


def test_the_collector_turns_events_into_per_host_results() -> None:
    board = Board()
    collect = EventCollector(board)
    collect(event("runner_on_start", "n1", "Write the config"))
    collect(event("runner_on_ok", "n1", "Write the config", changed=True,
                  diff={"before": "a\n", "after": "b\n", "before_header": "/etc/x"}))
    collect(event("runner_on_ok", "n1", "Check", ansible_facts={"fleet_report_complete": True, "other": 1}))
    collect(event("runner_on_failed", "n2", "Validate", msg="Validation of arguments failed:\n"
                  "  value of bacalhau_log_level must be one of: info, debug"))
    collect(event("runner_on_unreachable", "n3", msg="Failed to connect to the host via ssh: refused"))
    collect({"event": "playbook_on_stats", "event_data": {}})
    collect.finish({"ok": {"n1": 2}, "changed": {"n1": 1}, "failures": {"n2": 1}})
    hosts = collect.hosts
    assert collect.finished
    assert hosts["n1"].state is NodeState.CHANGED and hosts["n1"].changed_tasks == ["Write the config"]
    assert hosts["n1"].diffs and "-a\n+b" in hosts["n1"].diffs[0] and hosts["n1"].reports == {
        "fleet_report_complete": True}
    # A multi-line message reaches the table whole: never cut after its first line.
    assert hosts["n2"].state is NodeState.FAILED
    assert hosts["n2"].message == ("Validate: Validation of arguments failed: value of bacalhau_log_level must be "
                                   "one of: info, debug")
    assert hosts["n3"].state is NodeState.UNREACHABLE and "refused" in hosts["n3"].message
    assert ("n2", "failed", hosts["n2"].message) in board.updates


def test_a_no_log_failure_says_so_and_a_traceback_gives_its_last_line() -> None:
    collect = EventCollector(Board())
    collect(event("runner_on_failed", "n1", "Install the token", censored="the output has been hidden"))
    collect(event("runner_on_failed", "n2", "Run", module_stderr="Traceback (most recent call last):\n  File x\n"
                  "ValueError: bad thing"))
    assert collect.hosts["n1"].message == ("Install the token: a task with no_log failed (output hidden to protect "
                                           "secrets)")
    assert collect.hosts["n2"].message == "Run: ValueError: bad thing"


def test_a_node_that_neither_finished_nor_was_skipped_is_not_converged() -> None:
    collect = EventCollector(Board())
    collect(event("runner_on_ok", "done", ansible_facts={"fleet_report_complete": True}))
    collect(event("runner_on_ok", "skipped", ansible_facts={"fleet_report_converged": True}))
    collect(event("runner_on_ok", "cut", "Install docker"))
    result = RunResult(rc=1, hosts=collect.hosts)
    _mark_incomplete(result)
    states = {run.node: run.state for run in node_runs(result)}
    assert states == {"done": NodeState.OK, "skipped": NodeState.CONVERGED, "cut": NodeState.FAILED}
    assert result.hosts["cut"].message == "the run ended before this node's configuration completed"


def test_render_prints_json_for_scripts_and_whole_reasons_for_people() -> None:
    reason = "sensor:readings (count 10 -> 10 in 10 s: " + "not growing " * 20 + ")"
    result = HealthResult([NodeHealth("n1", Health.UNHEALTHY, [reason])])
    out = io.StringIO()
    show(Console(file=out, width=100), result, "json")
    data = json.loads(out.getvalue())
    assert data["ok"] is False and data["nodes"][0]["failing"] == [reason]
    table = io.StringIO()
    show(Console(file=table, width=100), result, "table")
    assert table.getvalue().count("growing") == 20  # wrapped over lines, never cut

    configure = ConfigureResult(check=True, seconds=1.0, nodes=[])
    out = io.StringIO()
    show(Console(file=out, width=100), configure, "json")
    assert json.loads(out.getvalue()) == {"check": True, "seconds": 1.0, "nodes": [], "run_log": None, "ok": True,
                                          "drifted": []}


def test_a_cancelled_runs_processes_are_found_by_their_marker_even_in_other_sessions() -> None:
    import os
    import subprocess
    import sys
    import uuid

    from fleetdeploy.runs.runner import RUN_MARKER, kill_marked

    marker = uuid.uuid4().hex
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    # Like ansible-core's workers: a session of their own, out of reach of a process-group kill.
    marked = subprocess.Popen(sleeper, env=dict(os.environ, **{RUN_MARKER: marker}), start_new_session=True)
    other = subprocess.Popen(sleeper, env=dict(os.environ, **{RUN_MARKER: "another-run"}), start_new_session=True)
    try:
        assert kill_marked(marker) == 1
        assert marked.wait(10) == -9
        assert other.poll() is None  # another run's processes are not this run's to kill
    finally:
        other.kill()
        other.wait()
