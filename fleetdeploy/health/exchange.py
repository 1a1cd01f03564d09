"""How a node's answer to "run your health check now" becomes facts: shared by the fleet_health action plugin
(health.yml) and the watcher's SSH exchange (runs/exchange.py), so both read a node the same way.

The facts, one of:
  fleet_report_health_status   the node's status document (the script exits 0 healthy, 1 unhealthy)
  fleet_report_not_configured  true: the script is not installed (site.yml never reached the node)
  fleet_report_health_error    one line: why the check did not run (bad settings, a crash, sudo refused)
"""

from __future__ import annotations

import json

from fleetdeploy.jsondoc import JSON, JSONObject

DEFAULT_SCRIPT = "/usr/local/bin/fleet-health-check"
# What the node prints instead when the script is not there.
NOT_CONFIGURED = "FLEET-HEALTH-CHECK-NOT-INSTALLED"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def facts_from(rc: int, stdout: str, stderr: str) -> JSONObject:
    """The facts for one run of the health check: its exit code and output."""
    if stdout.strip() == NOT_CONFIGURED:
        return {"fleet_report_not_configured": True}
    if rc in (0, 1):
        try:
            status: JSON = json.loads(_last_line(stdout))
        except ValueError:
            status = None
        if isinstance(status, dict):
            return {"fleet_report_health_status": status}
    detail = _last_line(stderr) or _last_line(stdout) or "no output"
    return {"fleet_report_health_error": f"exit {rc}: {detail}"[:400]}
