"""The fleet file's `orchestrator:` section: the NATS endpoint nodes join, its token, and the optional API the
controller reads the orchestrator's own view of the nodes from (facts.md: Bacalhau API).

Messages never repeat a value: a user may have pasted a token into the wrong key.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import field_validator, model_validator

from fleetdeploy.fleet.files import check_token_file, resolve_path
from fleetdeploy.fleet.fleetfile import KeyPathError
from fleetdeploy.fleet.regions import StrictModel

LOCAL = "local"
DEFAULT_NATS_PORT = 4222

_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\.?")


def _host_port(value: str, default_port: int | None) -> tuple[str, int | None]:
    """Split `host`, `host:port`, `[v6]` or `[v6]:port` (no scheme, path or credentials); host lower-cased."""
    if value.startswith("["):
        end = value.find("]")
        host, rest = (value[1:end], value[end + 1 :]) if end > 0 else ("", "")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("has an invalid bracketed IPv6 host") from None
        if rest and not rest.startswith(":"):
            raise ValueError("has an invalid port")
        port = rest[1:] if rest else None
        host = f"[{host}]"
    else:
        if value.count(":") > 1:
            raise ValueError("IPv6 hosts must be written in brackets: [addr]:port")
        host, sep, raw_port = value.partition(":")
        port = raw_port if sep else None
        if not host:
            raise ValueError("has an empty host")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError("has an invalid host name")
    if port is None:
        return host.lower(), default_port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("has an invalid port (must be 1-65535)")
    return host.lower(), int(port)


def _split_url(raw: str, schemes: tuple[str, ...], default_scheme: str | None, hint: str) -> tuple[str, str]:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    if any(c.isspace() for c in value):
        raise ValueError("must not contain spaces")
    scheme = default_scheme
    if "://" in value:
        scheme, value = value.split("://", 1)
        scheme = scheme.lower()
        if scheme not in schemes:
            raise ValueError(f"unsupported scheme '{scheme}://' ({hint})")
    if scheme is None:
        raise ValueError(f"needs a scheme ({hint})")
    if "@" in value:
        raise ValueError("must not contain credentials (user@ or token@): use a token file")
    value = value[:-1] if value.endswith("/") else value
    if any(c in value for c in "/?#"):
        raise ValueError("must be host[:port] without a path, query or fragment")
    return scheme, value


def normalize_endpoint(raw: str) -> str:
    """Return `nats://host:port` or `tls://host:port` for an orchestrator endpoint (or `local`); ValueError else."""
    if raw.strip() == LOCAL:
        return LOCAL
    scheme, rest = _split_url(raw, ("nats", "tls"), "nats", "use host:port, nats:// or tls://")
    host, port = _host_port(rest, DEFAULT_NATS_PORT)
    return f"{scheme}://{host}:{port}"


def normalize_api_url(raw: str) -> str:
    """Return `http(s)://host[:port]` for the orchestrator's HTTP API (or `local`); ValueError else.

    Without a port the URL means what any URL means (80/443): Bacalhau's own 1234 is not assumed, because an API
    behind a proxy is the common case for a remote orchestrator.
    """
    if raw.strip() == LOCAL:
        return LOCAL
    scheme, rest = _split_url(raw, ("http", "https"), None, "use http://host:port or https://host")
    host, port = _host_port(rest, None)
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class OrchestratorSpec(StrictModel):
    endpoint: str
    token_file: Path
    # The orchestrator's HTTP API, read by health/status/up for its view of each node; `local` with the local one.
    api: str | None = None
    # Bearer key for that API when it requires auth (API.Auth.Users); the same rules as the NATS token file.
    api_token_file: Path | None = None

    _resolve = field_validator("token_file", "api_token_file", mode="before")(resolve_path)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return normalize_endpoint(value)

    @field_validator("api")
    @classmethod
    def _api(cls, value: str | None) -> str | None:
        return None if value is None else normalize_api_url(value)

    @field_validator("token_file", "api_token_file")
    @classmethod
    def _token_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            check_token_file(value)
        return value

    @model_validator(mode="after")
    def _api_rules(self) -> OrchestratorSpec:
        if self.api == LOCAL and self.endpoint != LOCAL:
            raise KeyPathError("api", "'local' is only allowed with endpoint: local")
        if self.api_token_file is not None and self.api is None:
            raise KeyPathError("api_token_file", "only used with orchestrator.api")
        return self
