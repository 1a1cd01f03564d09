"""Turns the health playbook's per-node status JSON into the fleet health table."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

from fleetdeploy.runner import RunResult

HEALTH_PLAYBOOK = "playbooks/health.yml"
# health.yml slurps /var/lib/fleet-health/status.json on every node; the runner keeps those results.
STATUS_CAPTURE_ACTION = "ansible.builtin.slurp"


def decode_status(captured: list[dict[str, Any]]) -> dict[str, Any] | None:
    for res in reversed(captured):
        content = res.get("content")
        if not content:
            continue
        try:
            return json.loads(base64.b64decode(content))
        except (ValueError, TypeError):
            return None
    return None


def failing_checks(status: dict[str, Any]) -> list[str]:
    checks = status.get("checks", [])
    if isinstance(checks, dict):
        checks = [{"name": name, **value} for name, value in checks.items() if isinstance(value, dict)]
    failing = []
    for check in checks:
        if not check.get("ok", False):
            detail = str(check.get("detail", "")).strip()
            failing.append(f"{check.get('name', '?')}" + (f" ({detail[:80]})" if detail else ""))
    return failing


def health_rows(result: RunResult, hosts: Iterable[str]) -> list[tuple[str, str, str]]:
    rows = []
    for host in sorted(hosts):
        run = result.hosts.get(host)
        if run is not None and run.unreachable:
            rows.append((host, "unreachable", run.message))
            continue
        status = decode_status(result.captured.get(host, []))
        if status is None:
            message = run.message if run is not None and run.message else "no health status was collected"
            rows.append((host, "unhealthy", message))
            continue
        failing = failing_checks(status)
        healthy = bool(status.get("healthy")) and not failing
        rows.append((host, "healthy" if healthy else "unhealthy", "; ".join(failing)))
    return rows
