"""Command line: `python deploy.py COMMAND`. Parses arguments and turns errors into exit codes.

Imports stay light here: `--help`, argument errors and fleet-file validation never import SkyPilot or
ansible-runner.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from fleetdeploy.errors import FleetError, InputError, Terminated
from fleetdeploy.fleet.configure_spec import ConfigureMode
from fleetdeploy.operations.options import (
    DEFAULT_BATCH,
    DEFAULT_COST_DAYS,
    DEFAULT_JOIN_TIMEOUT_S,
    DEFAULT_LOCK_WAIT_S,
    CanaryOptions,
    CommandOptions,
    ConfigureOptions,
    CostOptions,
    DownOptions,
    EventsOptions,
    ExecOptions,
    GlobalOptions,
    HealthOptions,
    ImportLegacyOptions,
    InventoryOptions,
    LogsOptions,
    OutputFormat,
    PlanOptions,
    ReportOptions,
    RollingOptions,
    Service,
    SshOptions,
    StatusOptions,
    UpOptions,
    WatchOptions,
    parse_since,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

DESCRIPTION = """\
Deploy and operate a fleet of Bacalhau compute nodes with sensor simulators.
SkyPilot provisions AWS spot nodes (one cluster per region); Ansible configures them.
With `provider: local` (or --local) the nodes are containers on this machine.

exit codes: 0 ok, 1 some clusters or nodes failed, 2 bad input (nothing was changed), 130 interrupted;
configure --check: 0 no drift, 3 drift found, 1 a node failed or was unreachable
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other bad input
        # argparse lists a REMAINDER positional as required; the remote command is optional.
        message = message.replace(", remote_command", "")
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _common_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Options accepted before or after the command; after it they must not reset what was given before."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("-f", "--fleet", type=Path, default=default(Path("fleet.yaml")),
                        help="fleet file (default: ./fleet.yaml)")
    parser.add_argument("--local", action="store_true", default=default(False),
                        help="use the local provider whatever the fleet file says")
    parser.add_argument("-o", "--output", choices=[f.value for f in OutputFormat], default=default("table"),
                        help="table (default) or json on stdout (plan, status, configure, health, inventory, exec, "
                             "up, down, events, cost, canary); progress then goes to stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deploy.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=description)
        _common_options(sub, defaults=False)
        return sub

    up = command("up", "provision (or heal, or resize) the fleet, configure what is not converged, check health",
                 "Launch, heal or resize each region's cluster, write the inventory, run the roles on every node "
                 "that is not converged, then run the health check.")
    up.add_argument("--reconfigure-all", action="store_true",
                    help="run the roles on every node, converged or not")
    up.add_argument("--skip-health", action="store_true", help="don't run the health check at the end")
    _configure_mode(up)
    _join_timeout(up)

    command("plan", "show what up would do per cluster, the candidates, prices and rendered tasks",
            "Per cluster: what `up` would do, the instance types/zones tried in order, the hourly price and the "
            "rendered provider task. Reads the provider's local state; makes no cloud call.")
    command("status", "clusters and nodes table", "Clusters (nodes up / wanted, price) and nodes. Exit 1 when a "
            "cluster is short of nodes.")

    configure = command("configure", "apply the roles (fixes drift); --check reports drift only",
                        "Run playbooks/site.yml on every node (or --limit), reporting per node. A node whose "
                        "convergence stamp still holds (same roles and inputs, nothing it records has drifted) "
                        "ends after one task; --full runs every task on every node.")
    configure.add_argument("--check", action="store_true", help="report drift with diffs, change nothing")
    configure.add_argument("--full", action="store_true",
                           help="run every task on every node, skipping the convergence check")
    configure.add_argument("--limit", action="append", default=[], metavar="NODE",
                           help="only these nodes (name, instance id or unique prefix); repeatable or comma-separated")
    configure.add_argument("--rolling", action="store_true",
                           help="batch by batch, each gated on node health and the orchestrator; stops at the first "
                                "batch that fails (the way to upgrade or rotate keys); with --check: the plan")
    configure.add_argument("--batch", metavar="N|N%",
                           help="with --rolling: nodes per batch, a count or a share of the fleet "
                                f"(default: the fleet file's rolling.batch, else {DEFAULT_BATCH.replace('%', '%%')})")
    configure.add_argument("--max-unhealthy", type=int, metavar="N",
                           help="with --rolling: unhealthy nodes tolerated before the roll stops "
                                "(default: the fleet file's rolling.max_unhealthy, else 0)")
    _configure_mode(configure)
    _join_timeout(configure)

    health = command("health", "run the health check on every node and print the fleet table",
                     "Run each node's health check now; the node's own script decides healthy or not.")
    health.add_argument("--limit", action="append", default=[], metavar="NODE",
                        help="only these nodes (name, instance id or unique prefix); repeatable or comma-separated")

    ssh = command("ssh", "open a shell on a node (or run a command there)",
                  "ssh to a node as the fleet user with the fleet's key.")
    ssh.add_argument("node", help="node name, instance id or unique prefix (required)")
    ssh.add_argument("remote_command", nargs=argparse.REMAINDER, help="optional command to run instead of a shell")

    logs = command("logs", "show a node's service logs", "docker logs of a node's bacalhau or sensor service.")
    logs.add_argument("node", help="node name, instance id or unique prefix")
    logs.add_argument("service", nargs="?", default="bacalhau", choices=["bacalhau", "sensor"],
                      help="which service (default bacalhau)")
    logs.add_argument("--tail", type=int, default=100, help="lines to show (default 100)")

    exec_ = command("exec", "run a command on one node or on all nodes",
                    "Run a shell command on one node or all of them in parallel, with a result per node.")
    exec_.add_argument("--sudo", action="store_true", help="run as root (put it before the target)")
    exec_.add_argument("target", help="a node (name, instance id or unique prefix), or 'all'")
    exec_.add_argument("remote_command", nargs=argparse.REMAINDER, help="the command (its words form one line)")

    inventory = command("inventory", "refresh the Ansible inventory from the provider",
                        "Write inventory/<fleet>.yml from what the provider reports.")
    inventory.add_argument("--print", dest="print_it", action="store_true",
                           help="print the inventory YAML (and nothing else) on stdout")

    down = command("down", "tear down this fleet's clusters (and nothing else)",
                   "Remove this fleet's clusters; other fleets' clusters are never touched.")
    down.add_argument("-y", "--yes", action="store_true", help="don't ask for confirmation")
    for sub in (up, configure, down):
        sub.add_argument("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT_S, metavar="SECONDS",
                         help="how long to wait for the fleet lock (a watcher's tick, another command) before "
                              f"giving up with exit 2 (default {DEFAULT_LOCK_WAIT_S:g}; 0: don't wait)")

    watch = command("watch", "supervise the fleet unattended: heal, fix drift, alert",
                    "Every interval: observe the provider, the nodes (convergence and health) and the orchestrator; "
                    "heal lost nodes, configure drifted or long-unhealthy ones, and alert on every transition. "
                    "SIGTERM stops it (exit 0), Ctrl-C too (exit 130); a restart resumes from its saved state.")
    watch.add_argument("--interval", type=int, metavar="SECONDS",
                       help="seconds between ticks (default: watch.interval_seconds, 60)")
    watch.add_argument("--once", action="store_true",
                       help="one tick, then exit 0 when all is well (after acting) or 1 when something is still wrong")
    watch.add_argument("--metrics-port", type=int, metavar="PORT", help="serve /metrics on 127.0.0.1:PORT")

    events = command("events", "what the watcher saw and did (its event log)",
                     "Print the watcher's event log: alerts, heals, drift fixes, starts and stops.")
    events.add_argument("--since", metavar="TIME|DURATION",
                        help="only events from this ISO-8601 time or this long ago (30m, 2h, 7d)")
    report = command("report", "write the fleet report page (one offline HTML file)",
                     "Write the fleet's report page from the watcher's last tick and event log: regions and nodes "
                     "(health, orchestrator, versions, price), the last heal and drift events, a day's timeline.")
    report.add_argument("--file", type=Path, metavar="PATH",
                        help="where to write it (default: report.html in the fleet's state dir, as watch does)")
    cost = command("cost", "what the fleet has cost so far, per cluster and in all",
                   "Accumulated cost per cluster and for the fleet since launch (within --days): for SkyPilot "
                   "SkyPilot's own cost report, an estimate at list prices; local nodes cost nothing.")
    cost.add_argument("--days", type=int, default=DEFAULT_COST_DAYS, metavar="N",
                      help=f"only the last N days (default {DEFAULT_COST_DAYS})")
    canary = command("canary", "run one small job on every node through the orchestrator: can it do work?",
                     "Submit one canary job per node through the orchestrator's job API (Bacalhau's PUT "
                     "/api/v1/orchestrator/jobs, pinned to the node): a docker job (canary.image) that reads the "
                     "sensor's data through the allow-listed path and counts its rows. Waits (bounded), then says per "
                     "node whether the job ran, whether its answer was right, and how long it took. Needs "
                     "orchestrator.api (an API key with read:job and write:job when the API asks for one).")
    canary.add_argument("--limit", action="append", default=[], metavar="NODE",
                        help="only these nodes (name, instance id or unique prefix); repeatable or comma-separated")
    canary.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="how long to wait for every node's job (default: the fleet file's "
                             "canary.timeout_seconds, else 120)")
    legacy = command("import-legacy", "print a fleet file made from the legacy deployer's config.yaml",
                     "Read the legacy deployer's config (amauo 3.0.x, spot-deployer v1.x) and print a fleet file for "
                     "it; every setting with no equivalent here is named on stderr. The token stays in its file.")
    legacy.add_argument("config", type=Path, help="the legacy config.yaml")
    legacy.add_argument("--files", type=Path, metavar="DIR",
                        help="the directory holding orchestrator_endpoint and orchestrator_token (default: where "
                             "the legacy tool keeps them, next to the config)")
    legacy.add_argument("--name", help="the fleet's name (default: tags.Project, else the config's directory)")
    return parser


def _join_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--join-timeout", type=float, default=DEFAULT_JOIN_TIMEOUT_S, metavar="SECONDS",
                        help="with orchestrator.api: how long to wait for the orchestrator to list configured nodes "
                             f"as CONNECTED (default {DEFAULT_JOIN_TIMEOUT_S:g})")


def _configure_mode(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configure-mode", choices=[m.value for m in ConfigureMode], metavar="controller|node",
                        help="controller: ansible-playbook here runs every task over SSH; node: each node runs the "
                             "roles itself from a bundle sent over one SSH session (default: the fleet file's "
                             "configure.mode, else node)")


def _mode(value: str | None) -> ConfigureMode | None:
    return None if value is None else ConfigureMode(value)


def usage_with_commands(parser: argparse.ArgumentParser) -> str:
    """The usage line and the command list: what `deploy.py` alone prints."""
    lines = [parser.format_usage().rstrip(), "", "commands:"]
    for action in parser._subparsers._group_actions if parser._subparsers else []:  # noqa: SLF001
        for choice in getattr(action, "_choices_actions", []):
            lines.append(f"  {choice.dest:<10} {choice.help}")
    lines.append("\nrun `deploy.py COMMAND --help` for a command's options")
    return "\n".join(lines)


def options(args: argparse.Namespace) -> tuple[GlobalOptions, CommandOptions]:
    """The typed options of the command line; each checks its own values (InputError, exit 2)."""
    common = GlobalOptions(fleet_file=args.fleet, local=args.local, output=OutputFormat(args.output))
    command: CommandOptions
    if args.command == "up":
        command = UpOptions(args.reconfigure_all, args.skip_health, args.join_timeout, args.lock_wait,
                            _mode(args.configure_mode))
    elif args.command == "plan":
        command = PlanOptions()
    elif args.command == "status":
        command = StatusOptions()
    elif args.command == "configure":
        if not args.rolling:
            for option, value in (("--batch", args.batch), ("--max-unhealthy", args.max_unhealthy)):
                if value is not None:
                    raise InputError(f"{option} is only used with --rolling")
        rolling = RollingOptions(args.batch, args.max_unhealthy) if args.rolling else None
        command = ConfigureOptions(args.check, args.full, tuple(args.limit), rolling, args.join_timeout,
                                   args.lock_wait, _mode(args.configure_mode))
    elif args.command == "health":
        command = HealthOptions(tuple(args.limit))
    elif args.command == "ssh":
        command = SshOptions(args.node, tuple(args.remote_command))
    elif args.command == "logs":
        command = LogsOptions(args.node, Service(args.service), args.tail)
    elif args.command == "exec":
        command = ExecOptions(args.target, tuple(args.remote_command), args.sudo)
    elif args.command == "inventory":
        command = InventoryOptions(args.print_it)
    elif args.command == "watch":
        command = WatchOptions(args.interval, args.once, args.metrics_port)
    elif args.command == "report":
        command = ReportOptions(args.file)
    elif args.command == "cost":
        command = CostOptions(args.days)
    elif args.command == "canary":
        command = CanaryOptions(tuple(args.limit), args.timeout)
    elif args.command == "import-legacy":
        command = ImportLegacyOptions(args.config, args.files, args.name)
    elif args.command == "events":
        now = datetime.datetime.now(datetime.UTC)
        command = EventsOptions(parse_since(args.since, now) if args.since else None)
    else:
        command = DownOptions(args.yes, args.lock_wait)
    return common, command


def main(argv: Sequence[str] | None = None, interrupted: Callable[[], bool] = lambda: False) -> int:
    """`interrupted` tells whether Ctrl-C was pressed even if its KeyboardInterrupt was swallowed (deploy.py)."""
    try:
        parser = build_parser()
        if not (sys.argv[1:] if argv is None else list(argv)):
            print(usage_with_commands(parser), file=sys.stderr)
            return EXIT_BAD_INPUT
        common, command = options(parser.parse_args(argv))
        from fleetdeploy.operations.commands import run_command

        if interrupted():  # pressed while the imports above ran: stop before the command does anything
            raise KeyboardInterrupt
        return run_command(common, command)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FleetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Terminated:
        print("terminated", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
