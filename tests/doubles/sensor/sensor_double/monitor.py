"""The simulator's HTTP monitor, quirks included: /healthz is always 503 (facts.md: Sensor), /statusz is 200."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sensor_double.store import count_rows, latest_rows


class MonitorState:
    def __init__(self, sensor_id: str, db_path: str) -> None:
        self.sensor_id = sensor_id
        self.db_path = db_path
        self.started = time.time()
        self.readings_written = 0
        self.lock = threading.Lock()

    def statusz(self) -> dict[str, Any]:
        with self.lock:
            written = self.readings_written
        return {"status": "running", "sensor_id": self.sensor_id,
                "uptime_seconds": round(time.time() - self.started, 1), "readings_written": written,
                "database_path": self.db_path}


def _routes(state: MonitorState) -> dict[str, Any]:
    def db_stats() -> tuple[int, Any]:
        try:
            return 200, {"total_readings": count_rows(state.db_path), "database_path": state.db_path}
        except sqlite3.Error as exc:
            return 500, {"error": str(exc)}

    def samplez() -> tuple[int, Any]:
        try:
            return 200, {"samples": latest_rows(state.db_path)}
        except sqlite3.Error as exc:
            return 500, {"error": str(exc)}

    return {
        "/statusz": lambda: (200, state.statusz()),
        # Upstream checks the DB with a connection owned by another thread, so this never succeeds.
        "/healthz": lambda: (503, {"status": "unhealthy", "database_healthy": False}),
        "/samplez": samplez,
        "/db_stats": db_stats,
    }


def start_monitor(host: str, port: int, state: MonitorState) -> ThreadingHTTPServer:
    routes = _routes(state)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            route = routes.get(self.path.split("?", 1)[0])
            status, body = route() if route else (404, {"error": "not found"})
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
            return  # probes every few seconds would drown the readings log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="monitor", daemon=True).start()
    return server
