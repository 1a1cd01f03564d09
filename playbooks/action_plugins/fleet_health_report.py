# -*- coding: utf-8 -*-
"""Action plugin fleet_health_report (controller only): judge every node and build the fleet health table.

The verdict is fleetdeploy's (fleetdeploy.health.verdict.judge), the same code `deploy.py health` runs, from what
the play gathered: each host's registered fleet_health result (`results_var`) and the orchestrator's answer from
fleet_orchestrator_nodes. Returns, for the play to print and assert on and for scripts to read:
  rows       one object per node (node, health, failing, orchestrator, images), as `deploy.py health -o json`
  table      the fleet table, one string per line
  unhealthy  the names of the nodes that are not healthy
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        try:
            from fleetdeploy.health.verdict import NodeReport, judge
            from fleetdeploy.orchestrator.api import OrchestratorAnswer, by_node_id
            from fleetdeploy.output.plain import health_table
            from fleetdeploy.output.results import to_json
        except ImportError as error:
            raise AnsibleActionFail(
                f"fleetdeploy is not importable ({error}): run ansible-playbook from the project's venv "
                "(.venv/bin/ansible-playbook, after pip install -e .)") from None
        args = self._task.args
        unknown = set(args) - {"hosts", "results_var", "orchestrator"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters: {', '.join(sorted(unknown))}")
        results_var = str(args.get("results_var") or "")
        if not results_var:
            raise AnsibleActionFail("results_var must name the variable the health exchange registered")
        hostvars = task_vars.get("hostvars", {})
        reports = []
        for host in args.get("hosts") or []:
            run = hostvars[host].get(results_var) if host in hostvars else None
            run = run if isinstance(run, dict) else {}
            message = " ".join(str(run.get("msg") or "").split())
            reports.append(NodeReport.from_facts(str(host), run.get("ansible_facts") or {},
                                                 unreachable=bool(run.get("unreachable")), message=message))
        answer = None
        orchestrator = args.get("orchestrator")
        if isinstance(orchestrator, dict) and "error" in orchestrator:
            states = [dict(s) for s in orchestrator.get("nodes") or [] if isinstance(s, dict)]
            answer = OrchestratorAnswer(by_node_id(states), str(orchestrator.get("error") or ""))
        health = judge(reports, answer)
        result.update(changed=False, rows=to_json(health.nodes), table=health_table(health),
                      unhealthy=[n.node for n in health.nodes if not n.health.ok])
        return result
