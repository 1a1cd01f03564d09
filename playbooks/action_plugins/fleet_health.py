# -*- coding: utf-8 -*-
"""Action plugin fleet_health: run the node's health check now and bring its status document back, in one exchange.

One command over the task's connection (with become): the node's `fleet-health-check --json` runs its checks,
writes its status file as cron's runs do, and prints the same document, which comes back as a fact. No module
is sent (a module run costs a node ~0.25 s of CPU before it does anything), nothing is judged here: the
controller's verdict is fleetdeploy.health.verdict's. The facts are fleetdeploy.health.exchange's (the watcher's
own SSH exchange reads a node the same way).
An unreachable node stays unreachable (the task's ignore_unreachable decides what the play does with it).
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars or {})
        try:
            from fleetdeploy.health.exchange import DEFAULT_SCRIPT, NOT_CONFIGURED, facts_from
        except ImportError as error:
            raise AnsibleActionFail(
                f"fleetdeploy is not importable ({error}): run ansible-playbook from the project's venv "
                "(.venv/bin/ansible-playbook, after pip install -e .)") from None
        unknown = set(self._task.args) - {"script"}
        if unknown:
            result.update(failed=True, msg=f"unsupported parameters: {', '.join(sorted(unknown))}")
            return result
        script = str(self._task.args.get("script") or DEFAULT_SCRIPT)
        if not script.startswith("/"):
            result.update(failed=True, msg="script must be an absolute path")
            return result
        quoted = shlex.quote(script)
        # The health check itself reads the node; it runs in --check as well (it only writes its own status file).
        command = f"if [ -x {quoted} ]; then exec {quoted} --json; fi; echo {NOT_CONFIGURED}"
        try:
            res = self._low_level_execute_command(command, sudoable=True)
        except AnsibleConnectionFailure:
            raise
        except AnsibleError as error:
            facts = {"fleet_report_health_error": " ".join(str(error).split())[:400]}
        else:
            facts = facts_from(int(res.get("rc", -1)), res.get("stdout", ""), res.get("stderr", ""))
        result.update(changed=False, ansible_facts=facts)
        return result
