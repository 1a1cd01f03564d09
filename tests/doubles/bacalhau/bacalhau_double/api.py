"""The node's HTTP API, shaped like the real one (echo v4 + pkg/publicapi of v1.9.3).

Reproduced because clients parse it: routing (":id" segments, 404 for unknown paths, 405 for known paths with
another method), the middleware order (request id, then authorization, then the X-Bacalhau-* headers, then the
handler), the error body of middleware/error_handler.go, and c.JSON's encoding (see wire.py).
"""

from __future__ import annotations

import secrets
import string
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bacalhau_double.config import redacted
from bacalhau_double.wire import go_json


class APIError(Exception):
    """apimodels.APIError: what every failed request answers, with its HTTP status."""

    def __init__(self, status: int, message: str, code: str, component: str, hint: str = "",
                 details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.component = status, message, code, component
        self.hint, self.details = hint, details

    def body(self, request_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"Status": self.status, "Message": self.message, "RequestID": request_id,
                               "Code": self.code, "Component": self.component}
        if self.hint:
            out["Hint"] = self.hint
        if self.details:
            out["Details"] = {k: self.details[k] for k in sorted(self.details)}
        return out


def echo_error(status: int, message: str) -> APIError:
    """An echo.HTTPError as CustomHTTPErrorHandler renders it: 404 gets a fixed text, the rest InternalError."""
    if status == 404:
        return APIError(404, "The requested resource/URL was not found.", "NotFound", "APIServer",
                        "The server version may be older than this CLI version and does not support the endpoint "
                        "yet.", {"cli_usage": "If you are using the CLI, try updating your server to a newer version "
                                               "or check if the command is supported in your server version."})
    return APIError(status, message, "InternalError", "APIServer")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def query_value(self, name: str) -> str | None:
        """First value of a query parameter; echo's binder falls back to a case-insensitive name match."""
        values = self.query.get(name)
        if values is None:
            values = next((v for k, v in self.query.items() if k.lower() == name.lower()), None)
        return None if values is None else values[0]


@dataclass(frozen=True)
class Redirect:
    location: str


Handler = Callable[[Request], Any]
Authorize = Callable[[Request], "APIError | None"]


@dataclass
class Router:
    routes: list[tuple[str, str, Handler]] = field(default_factory=list)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, pattern, handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for a path, or one raising the 404/405 echo would answer (after the middleware ran)."""
        path_matched = False
        for route_method, pattern, handler in self.routes:
            params = _match(pattern, path)
            if params is None:
                continue
            path_matched = True
            if route_method == method:
                return handler, params
        error = echo_error(405, "Method Not Allowed") if path_matched else echo_error(404, "")

        def fail(_request: Request) -> Any:
            raise error

        return fail, {}


def _match(pattern: str, path: str) -> dict[str, str] | None:
    # A ":name" segment matches one segment, the empty one too (echo routes "/nodes/" to "/nodes/:id", id "").
    want, have = pattern.split("/"), path.split("/")
    if len(want) != len(have):
        return None
    params: dict[str, str] = {}
    for w, h in zip(want, have, strict=True):  # lengths checked above
        if w.startswith(":"):
            params[w[1:]] = urllib.parse.unquote(h)
        elif w != h:
            return None
    return params


def _redirect(target: str) -> Handler:
    return lambda _request: Redirect(target)


def agent_routes(router: Router, cfg: dict[str, Any], version: dict[str, Any],
                 node: Callable[[], dict[str, Any]]) -> None:
    """The /api/v1/agent/* endpoints and the legacy redirects both modes serve."""
    router.add("GET", "/api/v1/agent/alive", lambda _r: {"Status": "OK"})
    router.add("GET", "/api/v1/agent/version", lambda _r: version)
    # apimodels.GetAgentConfigResponse: the config sits under "config" (v1.5.2 through v1.9.3).
    router.add("GET", "/api/v1/agent/config", lambda _r: {"config": redacted(cfg)})
    router.add("GET", "/api/v1/agent/node", lambda _r: node())
    for legacy, target in (("/", "/api/v1/agent/version"), ("/version", "/api/v1/agent/version"),
                           ("/livez", "/api/v1/agent/alive")):
        router.add("GET", legacy, _redirect(target))


_ID_ALPHABET = string.ascii_letters + string.digits


def start_api(host: str, port: int, router: Router, authorize: Authorize | None = None,
              server_headers: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """Serves the router in a daemon thread. Raises OSError when the address is taken."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive like Go's net/http

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""  # read even when unused: keeps the connection usable
            parts = urllib.parse.urlsplit(self.path)
            request = Request(self.command, parts.path, urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                              self.headers, body=body)
            handler, request.params = router.resolve(self.command, parts.path)
            # echo's RequestID middleware echoes the client's X-Request-ID (or makes one) on the response only;
            # the error body reads the *request* header, so it is "" unless the client sent one.
            client_id = self.headers.get("X-Request-ID") or ""
            extra = {"X-Request-Id": client_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(32))}
            try:
                denied = authorize(request) if authorize else None
                if denied is not None:
                    raise denied
                extra.update(server_headers or {})
                body = handler(request)
            except APIError as exc:
                self._reply(exc.status, exc.body(client_id), extra, "pretty" in request.query)
                return
            if isinstance(body, Redirect):
                self._reply(301, None, {**extra, "Location": body.location}, False)
                return
            self._reply(200, body, extra, "pretty" in request.query)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve  # noqa: N815 - http.server naming

        def _reply(self, status: int, body: Any, headers: dict[str, str], pretty: bool) -> None:
            data = b"" if body is None or self.command == "HEAD" else go_json(body, pretty)
            self.send_response_only(status)
            self.send_header("Date", self.date_time_string())
            for name, value in headers.items():
                self.send_header(name, value)
            if body is not None:
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
    import json
    import urllib.request

    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with urllib.request.urlopen(f"http://{target}:{port}{path}", timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())
