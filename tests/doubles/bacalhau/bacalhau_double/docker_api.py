"""A minimal Docker Engine API client over a unix socket (stdlib http.client; the image has no docker CLI).

The socket is BACALHAU_DOUBLE_DOCKER_SOCKET, else DOCKER_HOST when it is a unix:// URL (the real node's Docker
client reads DOCKER_HOST too), else /var/run/docker.sock. Paths are unversioned: the daemon then speaks its own
newest API version, so this works against any engine the node has. Errors carry the daemon's message the way
the Go client words them ("Error response from daemon: …") with the HTTP status, which stands for errdefs'
classes (404 NotFound, 409 Conflict, …).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import urllib.parse
from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT_S = 30.0


class DockerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def socket_path() -> str | None:
    """Where the engine listens; None for a DOCKER_HOST the double cannot use (tcp://, ssh://)."""
    if os.environ.get("BACALHAU_DOUBLE_DOCKER_SOCKET"):
        return os.environ["BACALHAU_DOUBLE_DOCKER_SOCKET"]
    host = os.environ.get("DOCKER_HOST", "")
    if host:
        return host[len("unix://"):] if host.startswith("unix://") else None
    return DEFAULT_SOCKET


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def demultiplex(stream: bytes) -> tuple[bytes, bytes]:
    """stdcopy: 8-byte frame headers (stream 1 = stdout, 2 = stderr; big-endian length) before each chunk."""
    out, err, pos = bytearray(), bytearray(), 0
    while pos + 8 <= len(stream):
        kind, size = stream[pos], struct.unpack(">I", stream[pos + 4:pos + 8])[0]
        chunk = stream[pos + 8:pos + 8 + size]
        (err if kind == 2 else out).extend(chunk)
        pos += 8 + size
    return bytes(out), bytes(err)


class DockerClient:
    def __init__(self, path: str) -> None:
        self.path = path

    def _call(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None,
              timeout: float = TIMEOUT_S, raw: bool = False) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.path, timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except TimeoutError:
            raise  # the caller's deadline (an execution timeout), not an unreachable daemon
        except OSError as exc:
            raise DockerError(0, f"Cannot connect to the Docker daemon at unix://{self.path}. Is the docker daemon "
                                 f"running? ({exc.strerror or exc})") from None
        finally:
            conn.close()
        if response.status >= 400:
            try:
                message = json.loads(payload).get("message", "")
            except (ValueError, AttributeError):
                message = payload.decode(errors="replace").strip()
            raise DockerError(response.status, f"Error response from daemon: {message}")
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def ping(self) -> bool:
        try:
            self._call("GET", "/info", timeout=5.0)
        except DockerError:
            return False
        return True

    def host_platform(self) -> tuple[str, str]:
        """(Os, Arch) of the "Engine" component of GET /version (the real getHostPlatform)."""
        version = self._call("GET", "/version")
        engine = next((c for c in version.get("Components") or [] if c.get("Name") == "Engine"), None)
        if engine is None:
            raise DockerError(0, "docker engine component not found")
        details = engine.get("Details") or {}
        if not details.get("Os") or not details.get("Arch"):
            raise DockerError(0, "incomplete platform information from docker engine")
        return details["Os"], details["Arch"]

    def image_inspect(self, image: str) -> dict[str, Any]:
        return self._call("GET", f"/images/{urllib.parse.quote(image, safe='')}/json")  # type: ignore[no-any-return]

    def create(self, name: str, config: dict[str, Any]) -> str:
        return str(self._call("POST", "/containers/create", config, {"name": name})["Id"])

    def start(self, container_id: str) -> None:
        self._call("POST", f"/containers/{container_id}/start")

    def wait(self, container_id: str, timeout: float | None) -> dict[str, Any]:
        """POST /containers/{id}/wait?condition=not-running; raises TimeoutError past the timeout."""
        return self._call("POST", f"/containers/{container_id}/wait",  # type: ignore[no-any-return]
                          query={"condition": "not-running"}, timeout=timeout if timeout else 24 * 3600.0)

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._call("GET", f"/containers/{container_id}/json")  # type: ignore[no-any-return]

    def logs(self, container_id: str) -> tuple[bytes, bytes]:
        payload = self._call("GET", f"/containers/{container_id}/logs",
                             query={"stdout": "1", "stderr": "1", "follow": "1"}, raw=True)
        return demultiplex(payload)

    def stop(self, container_id: str) -> None:
        self._call("POST", f"/containers/{container_id}/stop", query={"t": "1"})

    def remove(self, container_id: str) -> None:
        self._call("DELETE", f"/containers/{container_id}", query={"v": "1", "force": "1"})
