"""Starting bacalhau doubles as real processes on 127.0.0.1, for the tests in this directory."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

HERE = Path(__file__).resolve().parent
BACALHAU = [sys.executable, str(HERE / "bacalhau" / "bin" / "bacalhau")]
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
TOKEN = "tok-Secret-42"
NODES = "/api/v1/orchestrator/nodes"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def request(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, raw body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {},
                                 data=b"{}" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, _, body = request(port, path, headers=headers)
    return status, json.loads(body)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    give_up = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < give_up, f"timed out after {timeout}s waiting for {what}"
        time.sleep(every)


@dataclass
class Node:
    """A running double: its process, API port and log file (stdout+stderr)."""

    proc: subprocess.Popen[bytes]
    api_port: int
    log: Path
    argv: list[str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.output()

    def restart(self) -> None:
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT)


def _launch(directory: Path, cfg: dict[str, Any], name: str, env: dict[str, str] | None = None) -> Node:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    log = directory / "node.log"
    argv = BACALHAU + ["serve", "--config", str(config), "--name", name]
    with log.open("ab") as handle:
        proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env)
    return Node(proc, int(cfg["API"]["Port"]), log, argv)


def start_orchestrator(directory: Path, name: str = "orch", node_manager: dict[str, Any] | None = None,
                       api_auth: dict[str, Any] | None = None) -> tuple[Node, int]:
    """An orchestrator double (its own nats-server with TOKEN); returns it and its NATS port once its API is up."""
    nats_port = free_port()
    api: dict[str, Any] = {"Host": "127.0.0.1", "Port": free_port()}
    if api_auth is not None:
        api["Auth"] = api_auth
    cfg = {"DataDir": str(directory / "data"), "API": api, "Labels": {"role": "orchestrator"},
           "Orchestrator": {"Enabled": True, "Host": "127.0.0.1", "Port": nats_port, "Auth": {"Token": TOKEN},
                            "NodeManager": node_manager or {}}}
    node = _launch(directory, cfg, name)
    wait_port(node.api_port)
    return node, nats_port


def start_compute(directory: Path, name: str, nats_port: int, token: str = TOKEN, interval: str = "15s",
                  labels: dict[str, str] | None = None, capacity: dict[str, str] | None = None,
                  env: dict[str, str] | None = None, compute: dict[str, Any] | None = None) -> Node:
    cfg: dict[str, Any] = {
        "DataDir": str(directory / "data"), "API": {"Host": "127.0.0.1", "Port": free_port()},
        "Labels": labels if labels is not None else {"team": "edge"},
        "Orchestrator": {"Enabled": False},
        "Compute": {"Enabled": True, "Orchestrators": [f"nats://127.0.0.1:{nats_port}"], "Auth": {"Token": token},
                    "Heartbeat": {"Interval": interval}},
    }
    if capacity:
        cfg["Compute"]["AllocatedCapacity"] = capacity
    cfg["Compute"].update(compute or {})
    return _launch(directory, cfg, name, env)


def send_json(port: int, path: str, document: Any, method: str = "PUT", headers: dict[str, str] | None = None
              ) -> tuple[int, Any]:
    """(status, decoded body) of a JSON request, as the bacalhau CLI sends a job."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=json.dumps(document).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def list_nodes(api_port: int, query: str = "", headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    status, body = get(api_port, NODES + query, headers)
    assert status == 200, body
    return list(body["Nodes"])


def ids(api_port: int, query: str = "") -> list[str]:
    return [n["Info"]["NodeID"] for n in list_nodes(api_port, query)]


def node_state(api_port: int, node_id: str) -> dict[str, Any] | None:
    return next((n for n in list_nodes(api_port) if n["Info"]["NodeID"] == node_id), None)


def known_node(api_port: int, node_id: str) -> dict[str, Any]:
    """The NodeState of a node the orchestrator lists (fails the test otherwise)."""
    node = node_state(api_port, node_id)
    assert node is not None, f"{node_id} is not listed"
    return node


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_status(api_port: int, node_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        node = node_state(api_port, node_id)
        return node if node and node["ConnectionState"]["Status"] == status else None
    return wait_for(check, timeout, f"{node_id} {status}")
