"""Command line: `python deploy.py COMMAND`. Parses arguments and turns errors into exit codes.

Imports stay light here: `--help`, argument errors and fleet-file validation never import SkyPilot or
ansible-runner.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fleetdeploy.errors import FleetError, InputError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

DESCRIPTION = """\
Deploy and operate a fleet of Bacalhau compute nodes with sensor simulators.
SkyPilot provisions AWS spot nodes (one cluster per region); Ansible configures them.
With `provider: local` (or --local) the nodes are containers on this machine.

exit codes: 0 ok, 1 some clusters or nodes failed, 2 bad input (nothing was changed)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deploy.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--fleet", type=Path, default=Path("fleet.yaml"),
                        help="fleet file (default: ./fleet.yaml)")
    parser.add_argument("--local", action="store_true", help="use the local provider whatever the fleet file says")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    up = commands.add_parser("up", help="provision (or heal) the fleet, configure new nodes, check health")
    up.add_argument("--reconfigure-all", action="store_true",
                    help="configure every node, not only the ones this run created")
    up.add_argument("--skip-health", action="store_true", help="don't run the health check at the end")

    commands.add_parser("plan", help="show what would be launched where, and the rendered task per region")
    commands.add_parser("status", help="clusters and nodes table")

    configure = commands.add_parser("configure", help="apply the roles (fixes drift); --check reports drift only")
    configure.add_argument("--check", action="store_true", help="report drift with diffs, change nothing")
    configure.add_argument("--limit", action="append", default=[], metavar="NODE",
                           help="only these nodes (name, instance id or unique prefix); repeatable or comma-separated")

    health = commands.add_parser("health", help="run the health check on every node and print the fleet table")
    health.add_argument("--limit", action="append", default=[], metavar="NODE")

    ssh = commands.add_parser("ssh", help="open a shell on a node (or run a command there)")
    ssh.add_argument("node")
    ssh.add_argument("remote_command", nargs=argparse.REMAINDER, help="optional command to run")

    logs = commands.add_parser("logs", help="show a node's service logs")
    logs.add_argument("node")
    logs.add_argument("service", nargs="?", default="bacalhau", choices=["bacalhau", "sensor"])
    logs.add_argument("--tail", type=int, default=100, help="lines to show (default 100)")

    exec_ = commands.add_parser("exec", help="run a command on one node or on all nodes")
    exec_.add_argument("--sudo", action="store_true", help="run as root (put it before the target)")
    exec_.add_argument("target", help="a node, or 'all'")
    exec_.add_argument("remote_command", nargs=argparse.REMAINDER)

    inventory = commands.add_parser("inventory", help="refresh the Ansible inventory from the provider")
    inventory.add_argument("--print", dest="print_it", action="store_true", help="print the inventory YAML")

    down = commands.add_parser("down", help="tear down this fleet's clusters (and nothing else)")
    down.add_argument("-y", "--yes", action="store_true", help="don't ask for confirmation")
    return parser


def _check_args(args: argparse.Namespace) -> None:
    if getattr(args, "tail", 1) < 1:
        raise InputError("--tail must be at least 1")
    if args.command == "exec" and not args.remote_command:
        raise InputError("exec needs a command to run, e.g. `deploy.py exec all uptime`")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _check_args(args)
        from fleetdeploy.commands import run_command

        return run_command(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FleetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
