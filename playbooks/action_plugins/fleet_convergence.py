# -*- coding: utf-8 -*-
"""Action plugin for fleet_convergence: runs verify on the node without an AnsiballZ module where it can.

A module run costs the node ~0.25 s of CPU before it does anything (unpacking the payload and compiling
ansible.module_utils.basic from source, every time: nothing is cached between runs). The convergence check runs
on every node at every `configure`, `configure --check` and `up`, and on an unchanged node it is the only thing
that runs, so it goes another way: module_utils/fleet_state.py (stdlib only) is sent to the node's python3 on
stdin over the task's connection and become, exactly as a pipelined module would be, and its JSON comes back.
The comparison happens on the node: the stamp (root 0600, checksums of secret files) never leaves it.

Everything else (mode=record, a connection without pipelining, no configured interpreter) runs the
fleet_convergence module as usual: same code, same result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_STATE_SOURCE = Path(__file__).resolve().parent.parent / "module_utils" / "fleet_state.py"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        interpreter = task_vars.get("ansible_python_interpreter")
        if args.get("mode", "verify") != "verify" or not interpreter or not self._is_pipelining_enabled("new"):
            result.update(self._execute_module(task_vars=task_vars))
            return result
        params = self._verify_params(args)
        payload = (_STATE_SOURCE.read_text(encoding="utf-8") + f"\nprobe({json.dumps(params)!r})\n").encode()
        command = self._templar.template(interpreter) + " -"
        res = self._low_level_execute_command(command, sudoable=True, in_data=payload)
        if res["rc"] != 0:
            raise AnsibleActionFail(f"convergence check failed on the node (exit {res['rc']}): "
                                    f"{(res.get('stderr') or res.get('stdout') or '').strip()[-400:]}")
        try:
            verdict = json.loads(res["stdout"])
        except ValueError as error:
            raise AnsibleActionFail(f"convergence check printed no result: {res['stdout'][-200:]!r}") from error
        result.update(verdict, changed=False, ansible_facts={"fleet_report_converged": verdict["converged"],
                                                             "fleet_report_drift": verdict["drift"]})
        return result

    @staticmethod
    def _verify_params(args: dict[str, Any]) -> dict[str, Any]:
        """The module's own argument checks for verify (a bad call fails the same way on both paths)."""
        unknown = set(args) - {"path", "digest", "mode", "roles", "base_roles"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters: {', '.join(sorted(unknown))}")
        path, digest, roles = args.get("path"), args.get("digest"), args.get("roles")
        if not path or not str(path).startswith("/"):
            raise AnsibleActionFail("path must be an absolute path")
        if not digest:
            raise AnsibleActionFail("digest must not be empty")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise AnsibleActionFail("verify needs roles as a list of role names")
        base_roles = args.get("base_roles") or []
        if not isinstance(base_roles, list) or not all(isinstance(r, str) for r in base_roles):
            raise AnsibleActionFail("base_roles must be a list of role names")
        return {"path": str(path), "digest": str(digest), "roles": roles, "base_roles": base_roles}
