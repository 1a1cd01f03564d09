"""Orchestrator mode: run Debian's real nats-server with the token, manage the compute nodes that join, and
schedule jobs on them (jobs_api.py, scheduler.py)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from bacalhau_double import protocol
from bacalhau_double.api import Router, agent_routes
from bacalhau_double.authz import make_authorizer
from bacalhau_double.compute import HANDSHAKE_SUBJECT, HEARTBEAT_SUBJECT, SHUTDOWN_SUBJECT
from bacalhau_double.config import ConfigError, duration_seconds, get_path, is_go_duration
from bacalhau_double.jobs_api import JobsAPI, job_routes
from bacalhau_double.jobstore import JobStore
from bacalhau_double.nats import Endpoint, MessageHandler, NatsConnection, NatsError
from bacalhau_double.node import instance_id, start_node_api
from bacalhau_double.nodeinfo import build_version, node_info
from bacalhau_double.nodes import NodeManager
from bacalhau_double.nodes_api import node_routes
from bacalhau_double.scheduler import Scheduler

log = logging.getLogger("bacalhau")


def _nats_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_nats_config(host: str, port: int, token: str | None) -> str:
    """Writes the server config into a private dir (0700/0600): the token never goes on a command line."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # tmpfs: the token never touches a disk
    conf_dir = tempfile.mkdtemp(prefix="bacalhau-nats-", dir=base)
    path = os.path.join(conf_dir, "nats.conf")
    lines = [f"listen: {_nats_string(f'{host}:{port}')}"]
    if token:
        lines.append(f"authorization {{ token: {_nats_string(token)} }}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up and proc.poll() is None:
        try:
            with socket.create_connection((target, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def job_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """JobDefaults.Batch over the real defaults (pkg/config/defaults.go: 500m CPU, 512Mb memory, no timeouts)."""
    batch = get_path(cfg, "JobDefaults.Batch") or {}
    task = batch.get("Task") or {}
    if (task.get("Publisher") or {}).get("Type"):
        raise ConfigError("JobDefaults.Batch.Task.Publisher: the test double publishes no results")
    defaults: dict[str, Any] = {"Priority": int(batch.get("Priority") or 0),
                                "Resources": {"CPU": "500m", "Memory": "512Mb", **(task.get("Resources") or {})}}
    for key, value in (task.get("Timeouts") or {}).items():
        if key not in ("ExecutionTimeout", "TotalTimeout") or not is_go_duration(value):
            raise ConfigError(f"JobDefaults.Batch.Task.Timeouts.{key} must be ExecutionTimeout or TotalTimeout, a Go "
                              "duration")
        defaults[key] = int(duration_seconds(value))
    return defaults


def _serve_control_plane(endpoint: Endpoint, token: str | None, manager: NodeManager, ready: threading.Event,
                         scheduler: Scheduler, link: dict[str, NatsConnection]) -> None:
    """Answers the compute doubles' handshakes, heartbeats, shutdown notices and execution results, and carries
    the scheduler's messages to them. Raises NatsError when it drops."""
    conn = NatsConnection.connect(endpoint, token, "orchestrator-node-manager", ping_interval=5.0)

    def answering(work: Callable[[dict[str, Any]], dict[str, Any]]) -> MessageHandler:
        def handle(_subject: str, payload: bytes, reply: str | None) -> None:
            try:
                message = json.loads(payload)
                answer = work(message) if isinstance(message, dict) else {"Error": "BadRequest"}
            except (ValueError, TypeError, AttributeError, KeyError):
                answer = {"Error": "BadRequest"}
            if reply:
                conn.publish(reply, json.dumps(answer).encode())
        return handle

    def handshake(message: dict[str, Any]) -> dict[str, Any]:
        info = message.get("NodeInfo")
        if not isinstance(info, dict) or not isinstance(info.get("NodeID"), str) or not info["NodeID"]:
            return {"Accepted": False, "Reason": "invalid node info"}
        accepted, reason = manager.handshake(info)
        return {"Accepted": accepted, "Reason": reason}

    def heartbeat(message: dict[str, Any]) -> dict[str, Any]:
        error = manager.heartbeat(str(message["NodeID"]), message.get("AvailableCapacity") or {},
                                  message.get("QueueUsedCapacity") or {})
        return {"Error": error} if error else {}

    def shutdown(message: dict[str, Any]) -> dict[str, Any]:
        error = manager.shutdown_notice(str(message["NodeID"]), str(message.get("Reason") or ""))
        return {"Error": error} if error else {}

    conn.subscribe(HANDSHAKE_SUBJECT, answering(handshake))
    conn.subscribe(HEARTBEAT_SUBJECT, answering(heartbeat))
    conn.subscribe(SHUTDOWN_SUBJECT, answering(shutdown))

    def result(_subject: str, payload: bytes, reply: str | None) -> None:
        message = protocol.decode(payload)
        if reply:
            conn.publish(reply, protocol.RECEIVED)
        if message is not None and isinstance(message.get("ExecutionID"), str):
            scheduler.on_result(message)

    conn.subscribe(protocol.RESULT_SUBJECT, result)
    link["conn"] = conn
    ready.set()
    conn.serve_forever()


def run_orchestrator(cfg: dict[str, Any], name: str) -> int:
    host = str(get_path(cfg, "Orchestrator.Host"))
    port = int(get_path(cfg, "Orchestrator.Port"))
    token = get_path(cfg, "Orchestrator.Auth.Token") or None
    # Real default 1m (pkg/config/defaults.go); a node is DISCONNECTED 1m..1m20s after its last heartbeat.
    disconnect_after = duration_seconds(str(get_path(cfg, "Orchestrator.NodeManager.DisconnectTimeout") or "1m"))
    store_dir = os.path.join(str(cfg["DataDir"]), "orchestrator")
    router = Router()
    try:
        os.makedirs(store_dir, mode=0o700, exist_ok=True)
        manager = NodeManager(node_info(cfg, name, "Requester"), disconnect_after,
                              bool(get_path(cfg, "Orchestrator.NodeManager.ManualApproval")),
                              os.path.join(store_dir, "nodes.double.json"))
        agent_routes(router, cfg, build_version(), lambda: node_info(cfg, name, "Requester"))
        node_routes(router, manager)
        link: dict[str, NatsConnection] = {}
        store = JobStore(os.path.join(store_dir, "jobs.double.json"))
        scheduler = Scheduler(store, manager, lambda node_id, message: "conn" in link and protocol.send(
            link["conn"], protocol.compute_subject(node_id), message))
        job_routes(router, JobsAPI(store, scheduler, name, instance_id(str(cfg["DataDir"])), job_defaults(cfg)))
        authorize = make_authorizer(get_path(cfg, "API.Auth"))  # bad users fail before NATS starts
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot use DataDir %s: %s", cfg["DataDir"], exc.strerror)
        return 1
    nats_server = (os.environ.get("BACALHAU_DOUBLE_NATS_SERVER") or shutil.which("nats-server")
                   or "/usr/sbin/nats-server")
    conf_path = write_nats_config(host, port, token)
    proc: subprocess.Popen[bytes] | None = None
    control_plane_failed = threading.Event()
    control_plane_ready = threading.Event()
    stopping = threading.Event()  # our own shutdown closes NATS under the control plane: not an error then
    try:
        proc = subprocess.Popen([nats_server, "-c", conf_path])  # noqa: S603 - fixed argv, no secret in it
        if not _wait_for_port(host, port, proc, timeout=10.0):
            log.error("nats-server did not start on %s:%s", host, port)
            return 1
        log.info("orchestrator %s: NATS listening on %s:%s (token auth %s)", name, host, port,
                 "on" if token else "OFF")
        local = Endpoint("127.0.0.1" if host in ("0.0.0.0", "") else host, port)

        def control_plane() -> None:
            try:
                _serve_control_plane(local, token, manager, control_plane_ready, scheduler, link)
            except NatsError as exc:
                if not stopping.is_set():
                    log.error("node manager lost its NATS connection: %s", exc)
                    control_plane_failed.set()

        threading.Thread(target=control_plane, name="control-plane", daemon=True).start()
        threading.Thread(target=manager.run, name="node-health", daemon=True).start()
        threading.Thread(target=scheduler.run, name="scheduler", daemon=True).start()
        # The API comes up last: once it answers, compute nodes' handshakes are answered too.
        if not control_plane_ready.wait(10.0):
            log.error("the node manager could not subscribe on NATS %s:%s", host, port)
            return 1
        try:
            start_node_api(cfg, router, authorize)
        except OSError as exc:
            log.error("cannot serve the API: %s", exc.strerror)
            return 1
        while not control_plane_failed.is_set():
            try:
                code = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            log.error("nats-server exited with status %s", code)
            return 1
        return 1
    finally:
        stopping.set()
        scheduler.stop()
        manager.stop()
        manager.persist_live()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(os.path.dirname(conf_path), ignore_errors=True)
