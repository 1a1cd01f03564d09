"""The node's HTTP API subset: /api/v1/agent/{alive,config,node} and /api/v1/orchestrator/nodes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bacalhau_double import VERSION
from bacalhau_double.config import redacted

Route = Callable[[], Any]


def agent_routes(cfg: dict[str, Any], name: str, node_type: str, labels: dict[str, str],
                 node_extra: Callable[[], dict[str, Any]]) -> dict[str, Route]:
    """The /api/v1/agent/* endpoints both modes serve, as the real agent API names them."""
    return {
        "/api/v1/agent/alive": lambda: {"Status": "OK"},
        "/api/v1/agent/version": lambda: {"GitVersion": VERSION},
        "/api/v1/agent/config": lambda: redacted(cfg),
        "/api/v1/agent/node": lambda: {
            "NodeInfo": {"NodeID": name, "NodeType": node_type, "Labels": labels, "BacalhauVersion": VERSION},
            "Name": name,
            "Labels": labels,
            **node_extra(),
        },
    }


def start_api(host: str, port: int, routes: dict[str, Route]) -> ThreadingHTTPServer:
    """Serves GET routes returning JSON in a daemon thread. Raises OSError when the address is taken."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "bacalhau-double"

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            route = routes.get(self.path.split("?", 1)[0].rstrip("/"))
            if route is None:
                self._reply(404, {"error": "not found"})
                return
            self._reply(200, route())

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            # Health probes hit this every few seconds: keep the container log for real events.
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    return server


def fetch_json(host: str, port: int, path: str, timeout: float = 5.0) -> Any:
    """GET a JSON document from a node API (the CLI's `agent alive`)."""
    import urllib.request

    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with urllib.request.urlopen(f"http://{target}:{port}{path}", timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())
