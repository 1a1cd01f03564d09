"""What both node modes share: the node name, the data dir, the stop signal and serving the API."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from typing import Any

import yaml

from bacalhau_double.api import Authorize, Router, start_api
from bacalhau_double.config import ConfigError, get_path
from bacalhau_double.nodeinfo import server_headers

log = logging.getLogger("bacalhau")

METADATA_FILE = "system_metadata.yaml"


def prepare_data_dir(cfg: dict[str, Any]) -> str:
    """Creates DataDir like the real node; failing here (e.g. a read-only mount) is fatal there too."""
    data_dir = str(cfg["DataDir"])
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create DataDir {data_dir}: {exc.strerror}") from None
    if not os.access(data_dir, os.W_OK):
        raise ConfigError(f"DataDir {data_dir} is not writable")
    return data_dir


def resolve_name(cfg: dict[str, Any], data_dir: str, flag_name: str | None) -> str:
    """--name wins; else the name stored in DataDir on first start; else the NameProvider."""
    metadata_path = os.path.join(data_dir, METADATA_FILE)
    stored: dict[str, Any] = {}
    if os.path.exists(metadata_path):
        with open(metadata_path, encoding="utf-8") as handle:
            stored = yaml.safe_load(handle) or {}
    name = flag_name or stored.get("NodeName") or _name_from_provider(str(cfg.get("NameProvider", "puuid")))
    if stored.get("NodeName") != name:
        with open(metadata_path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"NodeName": name, "InstanceID": stored.get("InstanceID", str(uuid.uuid4()))}, handle)
    return str(name)


def instance_id(data_dir: str) -> str:
    """The InstanceID stored beside the name (the orchestrator puts it in every job's Meta)."""
    try:
        with open(os.path.join(data_dir, METADATA_FILE), encoding="utf-8") as handle:
            return str((yaml.safe_load(handle) or {}).get("InstanceID") or "")
    except OSError:
        return ""


def _name_from_provider(provider: str) -> str:
    if provider == "hostname":
        return socket.gethostname()
    if provider == "uuid":
        return str(uuid.uuid4())
    if provider == "puuid":
        return f"n-{uuid.uuid4()}"
    # aws/gcp read the cloud's instance metadata service; the double never sends traffic there.
    raise ConfigError(f"NameProvider {provider} needs cloud instance metadata, which the test double does not query; "
                      "pass --name")


def install_stop_handler() -> threading.Event:
    """SIGTERM/SIGINT end the node cleanly (exit 0), like `docker stop` on the real one.

    A connected compute node replaces these handlers, so that it sends its shutdown notice before exiting.
    """
    stopped = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("received signal %d, shutting down", signum)
        stopped.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stopped


def start_node_api(cfg: dict[str, Any], router: Router, authorize: Authorize | None) -> None:
    """Serves the API on API.Host:API.Port (authorize: from authz.make_authorizer). Raises OSError (port)."""
    start_api(str(get_path(cfg, "API.Host")), int(get_path(cfg, "API.Port")), router, authorize, server_headers())
    log.info("API listening on %s:%s (%s)", get_path(cfg, "API.Host"), get_path(cfg, "API.Port"),
             "API.Auth users required" if authorize else "open to anonymous requests, like the real default")
