# -*- coding: utf-8 -*-
"""Action plugin fleet_orchestrator_nodes (controller only): the orchestrator's node list, read once.

It uses fleetdeploy's own client (fleetdeploy.orchestrator.api, the one client the tool has), so it runs in the
Python that runs ansible-playbook, where fleetdeploy must be importable (the project's venv). The API key is read
from its file here and only sent in the request header; the result holds the raw NodeStates of the play's hosts
(Bacalhau's JSON, nothing judged) or one line saying why there are none:
  {"api": url, "error": "" | one line, "nodes": [NodeState, ...]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars or {})
        try:
            from fleetdeploy.orchestrator.api import OrchestratorApi, OrchestratorApiError
        except ImportError as error:
            raise AnsibleActionFail(
                f"fleetdeploy is not importable ({error}): run ansible-playbook from the project's venv "
                "(.venv/bin/ansible-playbook, after pip install -e .)") from None
        args = self._task.args
        unknown = set(args) - {"api", "api_token_file", "unavailable", "hosts"}
        if unknown:
            raise AnsibleActionFail(f"unsupported parameters: {', '.join(sorted(unknown))}")
        url = str(args.get("api") or "")
        token_file = args.get("api_token_file")
        hosts = {str(h) for h in args.get("hosts") or []}
        api = OrchestratorApi(url, Path(str(token_file)) if token_file else None,
                              unavailable=str(args.get("unavailable") or ""))
        try:
            states = [s for s in api.node_states() if str((s.get("Info") or {}).get("NodeID", "")) in hosts]
            error = ""
        except OrchestratorApiError as exc:
            states, error = [], str(exc)
        result.update(changed=False, api=url, error=error, nodes=states)
        return result
