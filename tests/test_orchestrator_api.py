"""The controller's reader of Bacalhau's orchestrator API: bounded, one-line errors, never the API key.

Network conditions (refused, silent, wrong answers) come from real sockets on 127.0.0.1; the API's real shape is
exercised against the orchestrator double (tests/doubles) in test_orchestrator_view.py and in the E2E suite.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from fleetdeploy.orchestrator.api import OrchestratorApi, OrchestratorApiError, OrchestratorNode, readiness, view_of
from fleetdeploy.orchestrator.join import MAX_API_FAILURES, wait_for_join
from fleetdeploy.output.progress import ProgressBoard

API_KEY = "api-key-" + "5e" * 8


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers: what a hung API looks like from the controller."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def answering(status: int, body: bytes, seen_headers: list[dict[str, str]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen_headers.append(dict(self.headers))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_refused_is_one_line_and_fast() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(OrchestratorApiError) as info:
        OrchestratorApi(url).nodes()
    assert time.monotonic() - started < 5
    assert str(info.value) == f"orchestrator API {url} unreachable: Connection refused"


def test_a_silent_api_never_hangs(silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}"
    started = time.monotonic()
    with pytest.raises(OrchestratorApiError, match=r"did not answer within 1 s|unreachable: timed out"):
        OrchestratorApi(url, timeout_s=1.0).nodes()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"Status":401,"Message":"Request Unauthorized","Code":"Unauthorized","Component":"Authorizer"}\n',
         "answered 401 Request Unauthorized (check orchestrator.api_token_file)"),
        (200, b"<html>proxy login</html>", "answered something that is not Bacalhau's node list"),
        (200, b'{"Nodes": "none"}', "answered something that is not Bacalhau's node list"),
    ],
)
def test_wrong_answers_are_one_line(tmp_path: Path, status: int, body: bytes, expected: str) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    headers: list[dict[str, str]] = []
    server = answering(status, body, headers)
    try:
        with pytest.raises(OrchestratorApiError) as info:
            OrchestratorApi(f"http://127.0.0.1:{server.server_port}", key_file).nodes()
    finally:
        server.shutdown()
    message = str(info.value)
    assert expected in message and "\n" not in message and API_KEY not in message
    assert headers[0]["Authorization"] == f"Bearer {API_KEY}"  # the key travels in the header only


def test_readiness_rule() -> None:
    assert readiness(None)[0] is False and "not listed" in readiness(None)[1]
    connected = OrchestratorNode("n1", "CONNECTED", "APPROVED", "2026-12-03T10:00:00.5Z")
    assert readiness(connected) == (True, "")
    pending = OrchestratorNode("n1", "CONNECTED", "PENDING")
    assert readiness(pending)[0] is False and "PENDING" in readiness(pending)[1]
    gone = OrchestratorNode("n1", "DISCONNECTED", "APPROVED", "2026-12-03T10:00:00.123Z", last_error="heartbeat timeout")
    ready, why = readiness(gone)
    assert not ready and why == "DISCONNECTED per the orchestrator (heartbeat timeout), last heartbeat 2026-12-03 10:00:00Z"
    assert view_of(None).connection == "not listed"


def test_join_wait_gives_up_on_an_unreadable_api_without_waiting_out_the_timeout() -> None:
    api = OrchestratorApi(f"http://127.0.0.1:{closed_port()}")
    out = io.StringIO()
    naps: list[float] = []
    with ProgressBoard(Console(file=out, width=200), "join", ["n1", "n2"]) as board:
        result = wait_for_join(api, ["n1", "n2"], timeout_s=600, board=board, sleep=naps.append)
    assert len(naps) == MAX_API_FAILURES - 1  # a few reads, not ten minutes
    assert result.api_unreadable and result.ok  # nothing charged to the nodes (health's rule)
    assert "unreachable: Connection refused" in result.note and "could not confirm" in result.note
    assert "n1: running" in out.getvalue()


def test_a_service_that_does_not_speak_http_is_one_line() -> None:
    """orchestrator.api pointed at the NATS port: it greets with INFO, not an HTTP status line."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def greet() -> None:
        for _ in range(2):
            connection, _ = server.accept()
            with connection:
                connection.sendall(b'INFO {"server_id":"x","version":"2.10"}\r\n')
                time.sleep(0.2)

    threading.Thread(target=greet, daemon=True).start()
    api = OrchestratorApi(f"http://127.0.0.1:{server.getsockname()[1]}", timeout_s=5)
    with pytest.raises(OrchestratorApiError) as info:
        api.nodes()
    assert str(info.value).endswith("did not answer in HTTP (BadStatusLine)"), str(info.value)
    assert "did not answer in HTTP" in api.read().error  # read() never raises
    server.close()
