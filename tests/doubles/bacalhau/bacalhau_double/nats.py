"""A minimal NATS text-protocol client (INFO / CONNECT / PING / PONG / PUB / SUB / MSG), stdlib only.

Enough to authenticate against a real nats-server exactly like a compute node does, keep the connection alive,
and exchange request/reply messages (handshake, heartbeats, shutdown notice, executions); nothing more.
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORT = 4222


class NatsError(Exception):
    """The connection could not be made or was lost."""


class AuthError(NatsError):
    """The server refused the token ('Authorization Violation')."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"nats://{self.host}:{self.port}"


def parse_endpoint(raw: str) -> Endpoint:
    """`host`, `host:port` and `nats://host:port` are equivalent; `tls://` is refused (the double has no TLS)."""
    text = raw.strip()
    if "://" not in text:
        text = f"nats://{text}"
    parts = urlsplit(text)
    if parts.scheme == "tls":
        raise NatsError(f"orchestrator endpoint {parts.hostname}: tls:// is not supported by the test double")
    if parts.scheme != "nats":
        raise NatsError(f"orchestrator endpoint has unsupported scheme {parts.scheme!r}")
    if parts.username or parts.password:
        # Credentials in URLs end up in logs: a real deployment must use Compute.Auth.Token instead.
        raise NatsError("orchestrator endpoint must not embed credentials; use Compute.Auth.Token")
    if not parts.hostname:
        raise NatsError("orchestrator endpoint has no host")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise NatsError("orchestrator endpoint has an invalid port") from None
    return Endpoint(parts.hostname, port)


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.payload: bytes | None = None


MessageHandler = Callable[[str, bytes, str | None], None]  # (subject, payload, reply-to subject)


class NatsConnection:
    """One authenticated connection. `serve_forever` answers PINGs, sends its own and dispatches MSGs."""

    def __init__(self, sock: socket.socket, ping_interval: float) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._lock = threading.Lock()
        self._inbox_lock = threading.Lock()  # executions report from their own threads while heartbeats go on
        self._ping_interval = ping_interval
        self._handlers: dict[str, MessageHandler] = {}
        self._next_sid = 1
        self._inbox: str | None = None
        self._pending: dict[str, _Waiter] = {}  # request token -> its waiter
        self.server_info: dict[str, object] = {}

    @classmethod
    def connect(cls, endpoint: Endpoint, token: str | None, name: str, ping_interval: float = 5.0,
                timeout: float = 5.0) -> NatsConnection:
        try:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
        except OSError as exc:
            raise NatsError(f"cannot reach orchestrator {endpoint}: {exc.strerror or exc}") from None
        conn = cls(sock, ping_interval)
        try:
            conn._handshake(token, name)
        except BaseException:
            conn.close()
            raise
        sock.settimeout(None)
        return conn

    def _handshake(self, token: str | None, name: str) -> None:
        line = self._readline()
        if not line.startswith("INFO "):
            raise NatsError(f"orchestrator did not greet with INFO (got {line[:20]!r})")
        self.server_info = json.loads(line[5:])
        options: dict[str, object] = {"verbose": False, "pedantic": False, "name": name, "lang": "python",
                                      "version": "double", "protocol": 1}
        if token:
            options["auth_token"] = token
        self._send(f"CONNECT {json.dumps(options)}\r\nPING\r\n".encode())
        while True:
            line = self._readline()
            if line == "PONG":
                return
            if line == "PING":
                self._send(b"PONG\r\n")
                continue
            if line.startswith("-ERR"):
                if "authorization" in line.lower():
                    raise AuthError("authentication failed: the orchestrator rejected the token")
                raise NatsError(f"orchestrator refused the connection: {line}")
            if line.startswith("INFO ") or line == "+OK":
                continue
            raise NatsError(f"unexpected reply from orchestrator: {line[:40]!r}")

    def _readline(self) -> str:
        try:
            raw = self._reader.readline()
        except OSError as exc:
            raise NatsError(f"connection to orchestrator failed: {exc}") from None
        if not raw:
            raise NatsError("connection to orchestrator closed")
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def _send(self, data: bytes) -> None:
        with self._lock:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise NatsError(f"connection to orchestrator failed: {exc}") from None

    def publish(self, subject: str, payload: bytes, reply: str | None = None) -> None:
        head = f"PUB {subject} {reply} {len(payload)}" if reply else f"PUB {subject} {len(payload)}"
        self._send(head.encode() + b"\r\n" + payload + b"\r\n")

    def request(self, subject: str, payload: bytes, timeout: float) -> bytes | None:
        """Publishes with a reply subject and waits for the answer (None on timeout).

        Needs serve_forever running in another thread: that thread reads the reply.
        """
        with self._inbox_lock:
            if self._inbox is None:
                self._inbox = f"_INBOX.{secrets.token_hex(8)}"
                self.subscribe(self._inbox + ".*", self._on_reply)
        token = secrets.token_hex(6)
        waiter = self._pending[token] = _Waiter()
        try:
            self.publish(subject, payload, reply=f"{self._inbox}.{token}")
            return waiter.payload if waiter.event.wait(timeout) else None
        finally:
            self._pending.pop(token, None)

    def cancel_requests(self) -> None:
        """Wakes every waiting request() with no answer (a stop signal must not wait out their timeouts)."""
        for waiter in list(self._pending.values()):
            waiter.event.set()

    def _on_reply(self, subject: str, payload: bytes, _reply: str | None) -> None:
        waiter = self._pending.get(subject.rsplit(".", 1)[-1])
        if waiter is not None:
            waiter.payload = payload
            waiter.event.set()

    def subscribe(self, subject: str, handler: MessageHandler) -> None:
        with self._lock:
            sid = str(self._next_sid)
            self._next_sid += 1
            self._handlers[sid] = handler
        self._send(f"SUB {subject} {sid}\r\n".encode())

    def serve_forever(self) -> None:
        """Runs until the connection drops (raises NatsError). A missing PONG for 2 intervals is a drop."""
        outstanding = 0
        stop = threading.Event()

        def pinger() -> None:
            nonlocal outstanding
            while not stop.wait(self._ping_interval):
                if outstanding >= 2:
                    self.close()
                    return
                outstanding += 1
                try:
                    self._send(b"PING\r\n")
                except NatsError:
                    return

        thread = threading.Thread(target=pinger, name="nats-ping", daemon=True)
        thread.start()
        try:
            while True:
                line = self._readline()
                if line == "PING":
                    self._send(b"PONG\r\n")
                elif line == "PONG":
                    outstanding = 0
                elif line.startswith("MSG "):
                    self._dispatch(line)
                elif line.startswith("-ERR"):
                    raise NatsError(f"orchestrator reported an error: {line}")
        finally:
            stop.set()

    def _dispatch(self, line: str) -> None:
        # MSG <subject> <sid> [reply-to] <#bytes>
        fields = line.split()
        subject, sid, size = fields[1], fields[2], int(fields[-1])
        reply = fields[3] if len(fields) == 5 else None
        payload = self._reader.read(size + 2)[:size]
        handler = self._handlers.get(sid)
        if handler is not None:
            handler(subject, payload, reply)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()


def connect_with_retry(endpoint: Endpoint, token: str | None, name: str, deadline_s: float,
                       ping_interval: float, log: Callable[[str], None]) -> NatsConnection:
    """Retries unreachable orchestrators until the deadline (like the real node at start); never retries auth."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return NatsConnection.connect(endpoint, token, name, ping_interval)
        except AuthError:
            raise
        except NatsError as exc:
            if time.monotonic() >= give_up:
                raise
            log(f"{exc}; retrying")
            time.sleep(1.0)
