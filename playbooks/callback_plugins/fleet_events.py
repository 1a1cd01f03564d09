# -*- coding: utf-8 -*-
"""Stdout callback for a configure run on the node itself (`configure.mode: node`): one JSON line per event.

The controller reads these lines over the SSH session that started the run and feeds them to the same collector
that reads ansible-runner's events (fleetdeploy/runs/runner.py), so per-task progress, per-node results, diffs and
the drift report are the same in both modes. The event names and fields are ansible-runner's (runner_on_ok,
event_data.res, ...). Results arrive censored: Ansible hands callbacks a clean copy, so a no_log task's result is
only `censored` here, exactly as ansible-runner sees it.

Loaded because it sits beside the playbooks, and chosen by ANSIBLE_STDOUT_CALLBACK=fleet_events (the node's
driver sets it): a controller run never uses it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: fleet_events
    type: stdout
    short_description: one JSON line per event, read by the fleetdeploy controller
    description: ansible-runner's event names and fields, one event per line, prefixed FLEET-EVENT.
"""

PREFIX = "FLEET-EVENT "


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "fleet_events"

    def _emit(self, event: str, data: dict[str, Any], stdout: str = "") -> None:
        line = json.dumps({"event": event, "event_data": data, "stdout": stdout}, default=str)
        sys.stdout.write(PREFIX + line + "\n")
        sys.stdout.flush()

    @staticmethod
    def _task_data(host: str, task: Any) -> dict[str, Any]:
        # As ansible-runner names a task: its own name (no role prefix), else its action.
        return {"host": host, "task": task.name or task.action, "task_action": task.action,
                "ignore_errors": bool(task.ignore_errors)}

    def _result(self, event: str, result: Any, word: str, **extra: Any) -> None:
        host = result._host.get_name()
        data = self._task_data(host, result._task) | {"res": result._result} | extra
        self._emit(event, data, f"{word}: [{host}] {data['task']}")

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        self._emit("runner_on_start", self._task_data(host.get_name(), task))

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result("runner_on_ok", result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        message = result._result.get("msg") if "censored" not in result._result else "censored"
        self._result("runner_on_failed", result, f"fatal ({message})", ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result("runner_on_skipped", result, "skipping")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result("runner_on_unreachable", result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        counts = {key: dict(getattr(stats, attribute))
                  for key, attribute in (("ok", "ok"), ("changed", "changed"), ("failures", "failures"),
                                         ("skipped", "skipped"), ("dark", "dark"))}
        self._emit("playbook_on_stats", {"stats": counts}, "PLAY RECAP")
