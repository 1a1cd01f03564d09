"""Orchestrator mode: run Debian's real nats-server with the token, and list the compute nodes that join."""

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
from typing import Any

from bacalhau_double.api import agent_routes, start_api
from bacalhau_double.compute import HEARTBEAT_SUBJECT, node_labels
from bacalhau_double.config import duration_seconds, get_path
from bacalhau_double.nats import Endpoint, NatsConnection, NatsError

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


class NodeTracker:
    """Compute nodes seen through their heartbeats; a node is CONNECTED while heartbeats keep coming."""

    def __init__(self, disconnect_after_s: float) -> None:
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._disconnect_after_s = disconnect_after_s

    def on_heartbeat(self, _subject: str, payload: bytes) -> None:
        try:
            info = json.loads(payload)
        except ValueError:
            return
        with self._lock:
            if info.get("NodeID") not in self._seen:
                log.info("compute node %s joined", info.get("NodeID"))
            self._seen[str(info.get("NodeID"))] = (time.monotonic(), info)

    def nodes(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            items = sorted(self._seen.items())
        return {
            "Nodes": [
                {
                    "Info": {"NodeID": node_id, "NodeType": info.get("NodeType", "Compute"),
                             "Labels": info.get("Labels", {})},
                    "Membership": "APPROVED",
                    "Connection": "CONNECTED" if now - seen <= self._disconnect_after_s else "DISCONNECTED",
                }
                for node_id, (seen, info) in items
            ]
        }


def _track_nodes(endpoint: Endpoint, token: str | None, tracker: NodeTracker) -> None:
    try:
        conn = NatsConnection.connect(endpoint, token, "orchestrator-tracker", ping_interval=5.0)
        conn.subscribe(HEARTBEAT_SUBJECT, tracker.on_heartbeat)
        conn.serve_forever()
    except NatsError as exc:
        log.error("node tracker lost its NATS connection: %s", exc)


def run_orchestrator(cfg: dict[str, Any], name: str) -> int:
    host = str(get_path(cfg, "Orchestrator.Host"))
    port = int(get_path(cfg, "Orchestrator.Port"))
    token = get_path(cfg, "Orchestrator.Auth.Token") or None
    nats_server = os.environ.get("BACALHAU_DOUBLE_NATS_SERVER") or shutil.which("nats-server") or "/usr/sbin/nats-server"
    conf_path = write_nats_config(host, port, token)
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen([nats_server, "-c", conf_path])  # noqa: S603 - fixed argv, no secret in it
        if not _wait_for_port(host, port, proc, timeout=10.0):
            log.error("nats-server did not start on %s:%s", host, port)
            return 1
        log.info("orchestrator %s: NATS listening on %s:%s (token auth %s)", name, host, port,
                 "on" if token else "OFF")
        disconnect = get_path(cfg, "Orchestrator.NodeManager.DisconnectTimeout") or "30s"
        tracker = NodeTracker(duration_seconds(disconnect))
        local = Endpoint("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
        threading.Thread(target=_track_nodes, args=(local, token, tracker), name="tracker", daemon=True).start()
        labels = node_labels(cfg)
        routes = agent_routes(cfg, name, "Requester", labels, dict)
        routes["/api/v1/orchestrator/nodes"] = tracker.nodes
        try:
            start_api(str(get_path(cfg, "API.Host")), int(get_path(cfg, "API.Port")), routes)
        except OSError as exc:
            log.error("cannot serve the API: %s", exc.strerror)
            return 1
        code = proc.wait()
        log.error("nats-server exited with status %s", code)
        return 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(os.path.dirname(conf_path), ignore_errors=True)
