"""Compute mode: join the first orchestrator over real NATS with the token, stay connected, serve the API."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from bacalhau_double.api import agent_routes, start_api
from bacalhau_double.config import get_path
from bacalhau_double.nats import AuthError, NatsError, connect_with_retry, parse_endpoint

log = logging.getLogger("bacalhau")

HEARTBEAT_SUBJECT = "bacalhau.double.heartbeat"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def node_labels(cfg: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()}


def run_compute(cfg: dict[str, Any], name: str) -> int:
    orchestrators = get_path(cfg, "Compute.Orchestrators") or []
    if not orchestrators:
        log.error("Compute.Orchestrators is empty: a compute node needs an orchestrator to join")
        return 1
    if get_path(cfg, "Compute.TLS.RequireTLS"):
        log.error("Compute.TLS.RequireTLS is set: the test double cannot speak TLS")
        return 1
    try:
        endpoint = parse_endpoint(orchestrators[0])
    except NatsError as exc:
        log.error("%s", exc)
        return 1
    token = get_path(cfg, "Compute.Auth.Token") or None
    if token is None:
        log.warning("Compute.Auth.Token is not set: connecting without a token")

    state = {"connection": "CONNECTING"}
    labels = node_labels(cfg)
    routes = agent_routes(cfg, name, "Compute", labels,
                          lambda: {"ConnectionState": state["connection"], "Orchestrator": str(endpoint)})
    try:
        start_api(str(get_path(cfg, "API.Host")), int(get_path(cfg, "API.Port")), routes)
    except OSError as exc:
        log.error("cannot serve the API on %s:%s: %s", get_path(cfg, "API.Host"), get_path(cfg, "API.Port"),
                  exc.strerror)
        return 1
    log.info("API listening on %s:%s", get_path(cfg, "API.Host"), get_path(cfg, "API.Port"))

    log.info("node %s connecting to orchestrator %s", name, endpoint)
    try:
        conn = connect_with_retry(
            endpoint, token, name,
            deadline_s=_env_float("BACALHAU_DOUBLE_CONNECT_DEADLINE", 10.0),
            ping_interval=_env_float("BACALHAU_DOUBLE_PING_INTERVAL", 5.0),
            log=log.warning,
        )
    except AuthError as exc:
        log.error("%s; node %s cannot join %s", exc, name, endpoint)
        return 1
    except NatsError as exc:
        log.error("%s; giving up (no orchestrator answered)", exc)
        return 1
    state["connection"] = "CONNECTED"
    log.info("node %s connected to orchestrator %s", name, endpoint)

    def heartbeat() -> None:
        payload = {"NodeID": name, "NodeType": "Compute", "Labels": labels, "Time": time.time()}
        conn.publish(HEARTBEAT_SUBJECT, json.dumps(payload).encode())

    heartbeat()
    try:
        conn.serve_forever(on_tick=heartbeat)
    except NatsError as exc:
        state["connection"] = "DISCONNECTED"
        log.error("lost connection to orchestrator %s: %s", endpoint, exc)
        return 1
    finally:
        conn.close()
    return 1
