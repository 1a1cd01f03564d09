"""`bacalhau serve | agent alive | version` of the test double."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from bacalhau_double import VERSION
from bacalhau_double.api import fetch_json
from bacalhau_double.config import ConfigError, get_path, load

log = logging.getLogger("bacalhau")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bacalhau", description="Bacalhau test double")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a node")
    serve.add_argument("--config", "-c", action="append", default=[], metavar="FILE|KEY=VALUE")
    serve.add_argument("--name", default=None)
    agent = sub.add_parser("agent", help="query the local node")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    alive = agent_sub.add_parser("alive")
    alive.add_argument("--api-host", default=os.environ.get("BACALHAU_API_HOST"))
    alive.add_argument("--api-port", type=int, default=None)
    alive.add_argument("--config", "-c", action="append", default=[])
    sub.add_parser("version", help="print the version")
    return parser


def _serve(config_sources: list[str], flag_name: str | None) -> int:
    # Imported here: `version` and `agent alive` must not need the node modules' dependencies.
    from bacalhau_double.compute import run_compute
    from bacalhau_double.node import install_stop_handler, prepare_data_dir, resolve_name
    from bacalhau_double.orchestrator import run_orchestrator

    install_stop_handler()
    try:
        cfg = load(config_sources)
        data_dir = prepare_data_dir(cfg)
        name = resolve_name(cfg, data_dir, flag_name)
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 1
    orchestrator = bool(get_path(cfg, "Orchestrator.Enabled"))
    compute = bool(get_path(cfg, "Compute.Enabled"))
    if orchestrator:
        if compute:
            log.info("hybrid node: running the orchestrator; the double does not run an in-process compute node")
        return run_orchestrator(cfg, name)
    if compute:
        return run_compute(cfg, name)
    log.error("neither Compute.Enabled nor Orchestrator.Enabled is true: the real node would quietly start an "
              "ORCHESTRATOR here; the test double refuses (set Compute.Enabled: true for a compute node)")
    return 1


def _alive(args: argparse.Namespace) -> int:
    cfg: dict[str, Any] = {}
    if args.config:
        try:
            cfg = load(args.config)
        except ConfigError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 1
    host = args.api_host or get_path(cfg, "API.Host") or "127.0.0.1"
    port = args.api_port or int(os.environ.get("BACALHAU_API_PORT", 0)) or get_path(cfg, "API.Port") or 1234
    try:
        body = fetch_json(str(host), int(port), "/api/v1/agent/alive")
    except (OSError, ValueError) as exc:
        print(f"Error: cannot reach node at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    if isinstance(body, dict) and body.get("Status") == "OK":
        print("Status: OK")
        return 0
    print(f"Error: node is not alive: {body}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname).3s [bacalhau-double] %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"{VERSION} (test double)")
        return 0
    if args.command == "agent":
        return _alive(args)
    try:
        return _serve(args.config, args.name)
    except SystemExit as exc:  # raised by the stop-signal handler
        return int(exc.code or 0)
