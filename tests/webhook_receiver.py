"""A webhook receiver on 127.0.0.1 for the watcher's tests: records every POSTed alert; can be made to hang."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.hang = threading.Event()  # set: accept the POST, then never answer (until released)
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.alerts.append(json.loads(body))
                if receiver.hang.is_set():
                    receiver._release.wait(120)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def kinds(self) -> list[tuple[str, str]]:
        return [(a["kind"], a["subject"]) for a in list(self.alerts)]

    def wait_for(self, kind: str, subject: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in list(self.alerts):
                if alert["kind"] == kind and (subject is None or alert["subject"] == subject):
                    return alert
            time.sleep(0.2)
        raise AssertionError(f"no {kind} alert{f' about {subject}' if subject else ''} within {timeout:g} s: "
                             f"{self.kinds()}")
