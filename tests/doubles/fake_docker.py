"""FakeDockerEngine: a FAKE Docker Engine API server on a unix socket, for the compute double's tests.

Built from Docker's Engine API reference (https://docs.docker.com/reference/api/engine/), only the calls a
Bacalhau compute node makes for one execution: GET /info, GET /version, GET /images/{name}/json, POST
/containers/create?name=, POST /containers/{id}/start, POST /containers/{id}/wait?condition=not-running, GET
/containers/{id}/json, GET /containers/{id}/logs (the multiplexed stream: 8-byte frame headers), POST
/containers/{id}/stop, DELETE /containers/{id}; paths with or without a /v1.NN prefix; errors as {"message"}.
It runs no container: a tiny interpreter plays `echo ARGS`, `cat PATH` (read through the bind mounts, so mounts
are really exercised), `sh -c "exit N"` and `sleep N`; any other executable fails at start like runc
("executable file not found in $PATH"). Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socketserver
import struct
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

Obj = dict[str, Any]
DIGEST = "sha256:" + "ab" * 32


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(data)) + data


class FakeDockerEngine:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fakedocker-", dir="/tmp")  # short: sun_path holds 108 bytes
        self.socket = os.path.join(self.dir, "docker.sock")
        self.images: dict[str, Obj] = {}
        self.containers: dict[str, Obj] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                path, _, query = self.path.partition("?")
                path = re.sub(r"^/v1\.\d+", "", path)
                with engine._lock:
                    engine.requests.append((self.command, path, body))
                status, payload, kind = engine.route(self.command, path, query, body)
                data = payload if isinstance(payload, bytes) else (json.dumps(payload).encode() if payload is not
                                                                   None else b"")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if data:
                        self.wfile.write(data)
                except BrokenPipeError:
                    pass  # a client done after a 204/304 may hang up first

            do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
                return

        self.server = socketserver.ThreadingUnixStreamServer(self.socket, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add_image(self, name: str, digests: bool = True, os_name: str = "linux", arch: str = "amd64") -> None:
        repo = name.rsplit(":", 1)[0]
        self.images[name] = {"Id": "sha256:" + uuid.uuid4().hex * 2, "RepoTags": [name],
                             "RepoDigests": [f"{repo}@{DIGEST}"] if digests else [], "Os": os_name,
                             "Architecture": arch}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def calls(self, method: str, pattern: str) -> list[Any]:
        with self._lock:
            return [body for m, p, body in self.requests if m == method and re.fullmatch(pattern, p)]

    # ---- the API ----

    def route(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any, str]:
        js = "application/json"
        if (method, path) == ("GET", "/_ping"):
            return 200, b"OK", "text/plain"
        if (method, path) == ("GET", "/info"):
            return 200, {"ID": "fake", "OSType": "linux", "Architecture": "x86_64", "ServerVersion": "28.2.2"}, js
        if (method, path) == ("GET", "/version"):
            return 200, {"Version": "28.2.2", "ApiVersion": "1.50", "Os": "linux", "Arch": "amd64", "Components": [
                {"Name": "Engine", "Version": "28.2.2", "Details": {"ApiVersion": "1.50", "Arch": "amd64",
                                                                    "Os": "linux"}}]}, js
        match = re.fullmatch(r"/images/(.+)/json", path)
        if match and method == "GET":
            image = self.images.get(urllib.parse.unquote(match.group(1)))
            return (200, image, js) if image else (404, {"message": f"No such image: {match.group(1)}"}, js)
        if (method, path) == ("POST", "/containers/create"):
            if body["Image"] not in self.images:
                return 404, {"message": f"No such image: {body['Image']}"}, js
            container_id = uuid.uuid4().hex * 2
            name = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("name", "")
            self.containers[container_id] = {"Config": body, "Name": name, "State": "created"}
            return 201, {"Id": container_id, "Warnings": []}, js
        match = re.fullmatch(r"/containers/([0-9a-f]+)(/[a-z]+)?", path)
        if match is None:
            return 404, {"message": "page not found"}, js
        container_id = match.group(1)
        container = self.containers.get(container_id)
        if container is None:
            return 404, {"message": f"No such container: {container_id}"}, js
        action = (method, match.group(2))
        if action == ("POST", "/start"):
            return self._start(container)
        if action == ("POST", "/wait"):
            while container["State"] == "running":
                time.sleep(0.02)
            return 200, {"StatusCode": container.get("ExitCode", 0), "Error": None}, js
        if action == ("GET", "/json"):
            return 200, {"Id": container_id, "Name": "/" + container["Name"], "State": {
                "Status": container["State"], "ExitCode": container.get("ExitCode", 0), "OOMKilled": False}}, js
        if action == ("GET", "/logs"):
            return 200, container.get("Logs", b""), "application/vnd.docker.multiplexed-stream"
        if action == ("POST", "/stop"):
            if container["State"] != "running":
                return 304, None, js
            container["Killed"] = True
            return 204, None, js
        if action == ("DELETE", None):
            del self.containers[container_id]
            return 204, None, js
        return 404, {"message": "page not found"}, js

    def _start(self, container: Obj) -> tuple[int, Any, str]:
        config = container["Config"]
        argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
        if not argv or argv[0] not in ("echo", "cat", "sh", "sleep"):
            return 400, {"message": "failed to create task for container: failed to create shim task: OCI runtime "
                                    "create failed: runc create failed: unable to start container process: exec: "
                                    f"\"{argv[0] if argv else ''}\": executable file not found in $PATH: unknown"}, \
                "application/json"
        container["State"] = "running"
        threading.Thread(target=self._play, args=(container, argv), daemon=True).start()
        return 204, None, "application/json"

    def _play(self, container: Obj, argv: list[str]) -> None:
        out, err, code = b"", b"", 0
        if argv[0] == "echo":
            out = (" ".join(argv[1:]) + "\n").encode()
        elif argv[0] == "cat":
            for path in argv[1:]:
                host = self._host_path(container["Config"], path)
                try:
                    with open(host, "rb") as handle:
                        out += handle.read()
                except OSError:
                    err, code = f"cat: {path}: No such file or directory\n".encode(), 1
        elif argv[0] == "sleep":
            give_up = time.monotonic() + float(argv[1])
            while time.monotonic() < give_up and not container.get("Killed"):
                time.sleep(0.05)
            code = 137 if container.get("Killed") else 0
        else:  # sh -c "…; exit N"
            script = argv[-1]
            for part in script.split(";"):
                words = shlex.split(part)
                if words and words[0] == "echo":
                    out += (" ".join(words[1:]) + "\n").encode()
                elif words and words[0] == "echo>&2":
                    err += (" ".join(words[1:]) + "\n").encode()
                elif words and words[0] == "exit":
                    code = int(words[1])
        container["Logs"] = (frame(1, out) if out else b"") + (frame(2, err) if err else b"")
        container["ExitCode"] = code
        container["State"] = "exited"

    @staticmethod
    def _host_path(config: Obj, path: str) -> str:
        for mount in config["HostConfig"].get("Mounts") or []:
            target = mount["Target"].rstrip("/")
            if path == target or path.startswith(target + "/"):
                return str(mount["Source"]) + path[len(target):]
        return "/nonexistent" + path
