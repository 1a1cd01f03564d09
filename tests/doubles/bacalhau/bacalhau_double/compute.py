"""Compute mode: join the first orchestrator over real NATS with the token, then live like a real compute node.

The control plane follows pkg/transport/nclprotocol/compute/controlplane.go: a handshake carrying the NodeInfo,
then a heartbeat every Compute.Heartbeat.Interval (the first one an interval after the handshake); a heartbeat the
orchestrator refuses with HandshakeRequired (it marked the node DISCONNECTED) leads to a new handshake; SIGTERM or
SIGINT sends a shutdown notice before the connection closes. The messages are the double's own JSON on its own
subjects (the real NCL envelopes are not reproduced); only these doubles talk to each other this way.
Executions arrive on the node's own subject (protocol.py) and run on its Docker engine (executor.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import Any

from bacalhau_double import protocol
from bacalhau_double.allowlist import AllowedPath, parse_allowed
from bacalhau_double.api import Router, agent_routes
from bacalhau_double.authz import make_authorizer
from bacalhau_double.config import ConfigError, duration_seconds, get_path
from bacalhau_double.docker_api import DockerClient, socket_path
from bacalhau_double.executor import ExecutionRunner
from bacalhau_double.nats import AuthError, Endpoint, NatsConnection, NatsError, connect_with_retry, parse_endpoint
from bacalhau_double.node import start_node_api
from bacalhau_double.nodeinfo import (
    EXECUTION_ENGINES,
    LOCAL_STORAGE_SOURCES,
    STORAGE_SOURCES,
    allocated_capacity,
    build_version,
    node_info,
)

log = logging.getLogger("bacalhau")

HANDSHAKE_SUBJECT = "bacalhau.double.handshake"
HEARTBEAT_SUBJECT = "bacalhau.double.heartbeat"
SHUTDOWN_SUBJECT = "bacalhau.double.shutdown"
REQUEST_TIMEOUT_S = 5.0
HANDSHAKE_REQUIRED = "HandshakeRequired"


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _ask(conn: NatsConnection, subject: str, message: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    raw = conn.request(subject, json.dumps(message).encode(), timeout)
    if raw is None:
        return None
    try:
        reply = json.loads(raw)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


class ControlPlane:
    """Handshake, heartbeats and the shutdown notice over one NATS connection."""

    def __init__(self, conn: NatsConnection, info: dict[str, Any], interval_s: float, endpoint: Endpoint,
                 state: dict[str, str]) -> None:
        self.conn, self.info, self.interval_s, self.endpoint, self.state = conn, info, interval_s, endpoint, state
        self.wake = threading.Event()
        self.stopping = False
        self.lost: str | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        log.info("received signal %d, shutting down", signum)
        self.stopping = True
        self.wake.set()
        self.conn.cancel_requests()

    def read_forever(self) -> None:
        try:
            self.conn.serve_forever()
        except NatsError as exc:
            self.lost = str(exc)
            self.wake.set()

    def _handshake(self) -> bool:
        reply = _ask(self.conn, HANDSHAKE_SUBJECT, {"NodeInfo": self.info}, REQUEST_TIMEOUT_S)
        if reply is None:
            if not self.stopping:
                log.warning("handshake with orchestrator %s got no answer; retrying", self.endpoint)
            return False
        if not reply.get("Accepted"):
            log.error("orchestrator %s refused the handshake: %s", self.endpoint, reply.get("Reason"))
            return False
        self.state["connection"] = "CONNECTED"
        log.info("node %s connected to orchestrator %s (%s)", self.info["NodeID"], self.endpoint, reply.get("Reason"))
        return True

    def _heartbeat(self) -> bool:
        """False when the orchestrator wants a new handshake."""
        compute = self.info["ComputeNodeInfo"]
        reply = _ask(self.conn, HEARTBEAT_SUBJECT, {"NodeID": self.info["NodeID"],
                                                    "AvailableCapacity": compute["AvailableCapacity"],
                                                    "QueueUsedCapacity": compute["QueueCapacity"]}, REQUEST_TIMEOUT_S)
        if reply is None:
            if not self.stopping:
                log.error("Failed to send heartbeat: no answer from orchestrator %s", self.endpoint)
        elif reply.get("Error") == HANDSHAKE_REQUIRED:
            log.warning("orchestrator %s marked this node disconnected; handshaking again", self.endpoint)
            self.state["connection"] = "CONNECTING"
            return False
        return True

    def run(self) -> int:
        registered = False
        while True:
            if self.lost is not None:
                self.state["connection"] = "DISCONNECTED"
                log.error("lost connection to orchestrator %s: %s", self.endpoint, self.lost)
                return 1
            if self.stopping:
                if registered:
                    self._notify_shutdown()
                return 0
            if not registered:
                registered = self._handshake()
                delay = self.interval_s if registered else min(self.interval_s, 5.0)
            else:
                registered = self._heartbeat()
                delay = self.interval_s if registered else 0.0
            self.wake.wait(delay)

    def _notify_shutdown(self) -> None:
        reply = _ask(self.conn, SHUTDOWN_SUBJECT, {"NodeID": self.info["NodeID"], "Reason": "node shutting down"},
                     2.0)
        if reply is None or reply.get("Error"):
            log.error("Failed to send shutdown notification: %s", "no answer" if reply is None else reply["Error"])
        else:
            log.info("shutdown notice sent to orchestrator %s", self.endpoint)


def _providers(cfg: dict[str, Any]) -> tuple[DockerClient | None, list[AllowedPath], list[str], list[str]]:
    """The Docker engine (None when unreachable), the allow-listed paths, and the installed engines/storages."""
    path = socket_path()
    docker = DockerClient(path) if path else None
    if docker is None or not docker.ping():
        log.warning("no Docker engine at %s: this node offers no docker executor (like the real node)",
                    path or os.environ.get("DOCKER_HOST"))
        docker = None
    allowed = parse_allowed(get_path(cfg, "Compute.AllowListedLocalPaths") or [])
    engines = [e for e in EXECUTION_ENGINES if e != "docker" or docker is not None]
    storages = [s for s in STORAGE_SOURCES if s not in LOCAL_STORAGE_SOURCES or allowed]
    return docker, allowed, engines, storages


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
    router = Router()
    interval = duration_seconds(str(get_path(cfg, "Compute.Heartbeat.Interval") or "15s"))
    try:
        if interval <= 0:
            raise ConfigError("Compute.Heartbeat.Interval must be positive (Go's ticker panics on zero)")
        docker, allowed, engines, storages = _providers(cfg)
        info = node_info(cfg, name, "Compute", allocated_capacity(cfg), engines, storages)
        # The real /api/v1/agent/node is the NodeInfo; the last two keys are the double's own.
        agent_routes(router, cfg, build_version(),
                     lambda: {**info, "ConnectionState": state["connection"], "Orchestrator": str(endpoint)})
        start_node_api(cfg, router, make_authorizer(get_path(cfg, "API.Auth")))
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot serve the API on %s:%s: %s", get_path(cfg, "API.Host"), get_path(cfg, "API.Port"),
                  exc.strerror)
        return 1

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

    runner = ExecutionRunner(conn, name, docker, allowed, cfg.get("JobAdmissionControl") or {})
    conn.subscribe(protocol.compute_subject(name), runner.on_message)  # before the handshake announces the node
    plane = ControlPlane(conn, info, interval, endpoint, state)
    # From here a stop signal must not abort mid-message: it wakes the loop, which says goodbye first.
    signal.signal(signal.SIGTERM, plane.on_signal)
    signal.signal(signal.SIGINT, plane.on_signal)
    threading.Thread(target=plane.read_forever, name="nats-reader", daemon=True).start()
    try:
        return plane.run()
    finally:
        conn.close()
