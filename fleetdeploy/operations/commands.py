"""What each CLI command does: fleet file → provider → inventory → Ansible → a result, shown by output/render.py.

Each command takes its typed options (options.py), computes a result object (output/results.py) and derives its
exit code from that data; rendering (tables or `--output json`) happens in one place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.text import Text

from fleetdeploy.canary.command import cmd_canary
from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.fleet.model import load_fleet, load_fleet_for_teardown
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.lock import Holder, fleet_lock_path, held
from fleetdeploy.operations.options import (
    DEFAULT_COST_DAYS,
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
    PlanOptions,
    ReportOptions,
    SshOptions,
    StatusOptions,
    UpOptions,
    WatchOptions,
)
from fleetdeploy.operations.steps import (
    ansible_run,
    configure_nodes,
    health_of,
    node_runs,
    wait_for_nodes,
)
from fleetdeploy.output.capture import original_stderr, original_stdout
from fleetdeploy.output.progress import ProgressBoard, make_console
from fleetdeploy.output.render import show
from fleetdeploy.output.results import (
    ClusterCount,
    ConfigureResult,
    CostResult,
    DownResult,
    ExecResult,
    InventoryResult,
    NodeInfo,
    NodeOutput,
    PlannedCluster,
    PlanResult,
    StatusResult,
    UpResult,
)
from fleetdeploy.paths import state_dir
from fleetdeploy.providers.base import (
    ClusterOutcome,
    FleetPrices,
    Node,
    ProgressCallback,
    format_price,
)
from fleetdeploy.providers.registry import LOCAL_PROVIDER
from fleetdeploy.runs.ssh import ssh_argv
from fleetdeploy.watch.events import EventLog

EXIT_DRIFT = 3


def run_command(common: GlobalOptions, options: CommandOptions) -> int:
    if isinstance(options, ImportLegacyOptions):  # reads a legacy config, not a fleet file
        from fleetdeploy.migrate.command import import_legacy_command

        return import_legacy_command(options, common.output, make_console(original_stdout()),
                                     make_console(original_stderr()))
    if isinstance(options, WatchOptions):
        from fleetdeploy.watch.loop import Supervisor

        console, err_console = make_console(original_stdout()), make_console(original_stderr())
        return Supervisor(common.fleet_file, options, common.local, console, err_console).run()
    warning = ""
    if isinstance(options, DownOptions):
        fleet, warning = load_fleet_for_teardown(common.fleet_file)
    else:
        fleet = load_fleet(common.fleet_file)
    if common.local and fleet.provider != LOCAL_PROVIDER:
        fleet = fleet.model_copy(update={"provider": LOCAL_PROVIDER})
    ctx = Context(fleet=fleet, output=common.output, console=make_console(original_stdout()),
                  err_console=make_console(original_stderr()))
    if warning:
        ctx.err_console.print(Text(f"warning: {warning}; tearing down anyway (down needs only the fleet's name, "
                                   "provider and regions)", style="yellow"), highlight=False)
    command: Callable[[Context, Any], int] = _COMMANDS[type(options)]
    return command(ctx, options)


@contextmanager
def _fleet_lock(ctx: Context, purpose: str, wait_s: float) -> Iterator[None]:
    """Hold the fleet's lock for a command that changes the fleet (a watcher's tick holds it too)."""
    def waiting(holder: Holder | None) -> None:
        who = holder.describe() if holder else "another process"
        ctx.notice(f"waiting up to {wait_s:g} s for the fleet lock: {who} holds it")

    # A command that cannot run leaves nothing behind, not even a lock file.
    ctx.provider.preflight(launching=purpose == "up")
    with held(fleet_lock_path(state_dir(), ctx.fleet.name), purpose, wait_s, f"fleet '{ctx.fleet.name}'", waiting):
        yield


def _provision(ctx: Context, title: str,
               action: Callable[[ProgressCallback], list[ClusterOutcome]]) -> list[ClusterOutcome]:
    clusters = [ctx.fleet.cluster_name(region) for region in ctx.fleet.regions]
    with ProgressBoard(ctx.progress_console, title, clusters) as board:
        outcomes = action(lambda cluster, message: board.update(cluster, "running", message))
        for outcome in outcomes:
            board.update(outcome.cluster, outcome.action, outcome.error or "")
    return outcomes


def cmd_up(ctx: Context, options: UpOptions) -> int:
    with _fleet_lock(ctx, "up", options.lock_wait):
        return _up(ctx, options)


def _up(ctx: Context, options: UpOptions) -> int:
    outcomes = _provision(ctx, f"Provisioning fleet '{ctx.fleet.name}'", ctx.provider.up)
    nodes = ctx.inventory.refresh()
    if not nodes:
        show(ctx.console, UpResult(outcomes, str(ctx.inventory.path), None, None), ctx.output)
        raise FleetError("no node came up; see the cluster table above")
    # Every node that is not converged is configured: new nodes, nodes whose last run failed or was cut short,
    # nodes adopted from an earlier run, and all of them after the roles or the fleet file changed.
    configured = configure_nodes(ctx, nodes, None, check=False, full=options.reconfigure_all,
                                 mode=options.configure_mode)
    joined = wait_for_nodes(ctx, [n.node for n in configured.nodes if n.state.ok], options.join_timeout)
    health = None if options.skip_health else health_of(ctx, nodes)
    result = UpResult(outcomes, str(ctx.inventory.path), configured, health, joined)
    show(ctx.console, result, ctx.output)
    return 0 if result.ok else 1


def _prices(prices: FleetPrices | None) -> tuple[dict[str, str], str | None]:
    """Hourly price per cluster and for the fleet, as shown; nothing where nothing is billed."""
    if prices is None:
        return {}, None
    per_cluster = {c.cluster: format_price(c.per_hour, c.unknown) for c in prices.clusters}
    return per_cluster, format_price(prices.per_hour, prices.unknown)


def cmd_plan(ctx: Context, _options: PlanOptions) -> int:
    plans = ctx.provider.plan()
    prices, fleet_price = _prices(ctx.provider.prices())
    clusters = [
        PlannedCluster(
            cluster=p.cluster, region=p.region, nodes=p.num_nodes,
            action=p.action.describe() if p.action else "unknown (state not readable)",
            candidates=list(p.candidates),
            price=prices.get(p.cluster), task=p.rendered_task, cloud=ctx.fleet.cloud_of(p.region),
        )
        for p in plans
    ]
    show(ctx.console, PlanResult(ctx.fleet.name, ctx.fleet.provider, clusters, fleet_price), ctx.output)
    return 0


def cmd_status(ctx: Context, _options: StatusOptions) -> int:
    nodes = ctx.inventory.refresh()
    prices, fleet_price = _prices(ctx.provider.prices())
    clusters = [
        ClusterCount(cluster=ctx.fleet.cluster_name(region), region=region, wanted=spec.count,
                     up=sum(1 for n in nodes if n.cluster == ctx.fleet.cluster_name(region)),
                     price=prices.get(ctx.fleet.cluster_name(region)), cloud=ctx.fleet.cloud_of(region))
        for region, spec in sorted(ctx.fleet.regions.items())
    ]
    api = ctx.orchestrator_api()
    answer = api.read() if api is not None else None
    notices = _recent_notices(ctx)
    infos = [NodeInfo(node=ctx.host(n), instance_id=n.instance_id, cluster=n.cluster, region=n.region, zone=n.zone,
                      address=f"{n.host}:{n.port}", market="spot" if n.spot else "on-demand",
                      orchestrator=answer.view(ctx.host(n)) if answer else None,
                      interruption=notices.get(ctx.host(n), ""), cloud=n.cloud) for n in nodes]
    cost = CostResult.of(ctx.fleet.name, DEFAULT_COST_DAYS, ctx.provider.costs(DEFAULT_COST_DAYS))
    result = StatusResult(ctx.fleet.name, clusters, infos, fleet_price, answer.error if answer else "", cost)
    show(ctx.console, result, ctx.output)
    return 0 if result.ok else 1


def cmd_cost(ctx: Context, options: CostOptions) -> int:
    """Exit 1 when the figures could not be read or priced (the reason is in the output)."""
    result = CostResult.of(ctx.fleet.name, options.days, ctx.provider.costs(options.days))
    show(ctx.console, result, ctx.output)
    return 0 if result.ok else 1


# status asks no node anything: a spot notice comes from the watcher's last tick, when that is this recent.
NOTICE_FRESH_S = 600


def _recent_notices(ctx: Context) -> dict[str, str]:
    from fleetdeploy.watch.state import load_state

    state, _ = load_state(state_dir() / ctx.fleet.name / "watch-state.json")
    if time.time() - state.last_good_tick > NOTICE_FRESH_S:
        return {}
    return {n.node: n.interruption for n in state.nodes if n.interruption}


def cmd_configure(ctx: Context, options: ConfigureOptions) -> int:
    with _fleet_lock(ctx, "configure --check" if options.check else "configure", options.lock_wait):
        return _configure(ctx, options)


def _configure(ctx: Context, options: ConfigureOptions) -> int:
    limit = ctx.inventory.named(options.limit) if options.limit else None
    nodes = ctx.inventory.nodes_or_fail()
    if limit is not None:
        limit = ctx.inventory.named([ctx.host(n) for n in limit])  # the same nodes, as the fresh inventory has them
    if options.rolling is not None:
        from fleetdeploy.operations.rolling_command import configure_rolling

        rolled = configure_rolling(ctx, nodes, limit, options, options.rolling)
        show(ctx.console, rolled, ctx.output)
        if options.check and rolled.drift is not None:
            return check_exit_code(rolled.drift)
        return 0 if rolled.ok else 1
    result = configure_nodes(ctx, nodes, limit, check=options.check, full=options.full, mode=options.configure_mode)
    show(ctx.console, result, ctx.output)
    return check_exit_code(result) if options.check else (0 if result.ok else 1)


def check_exit_code(result: ConfigureResult) -> int:
    """`configure --check` for scripts, like terraform's -detailed-exitcode: 0 no drift, 3 drift found, 1 a node
    failed or was unreachable (then whether the others drifted is in the output)."""
    if not result.ok:
        return 1
    return EXIT_DRIFT if result.drifted else 0


def cmd_health(ctx: Context, options: HealthOptions) -> int:
    limit = ctx.inventory.named(options.limit) if options.limit else None
    nodes = ctx.inventory.nodes_or_fail()
    result = health_of(ctx, nodes, limit)
    show(ctx.console, result, ctx.output)
    return 0 if result.ok else 1


def _node_ssh(ctx: Context, node: Node, *command: str) -> list[str]:
    return ssh_argv(node.identity_files, node.host, node.port, *command, alias=node.instance_id,
                    known_hosts=ctx.inventory.known_hosts, user=node.user)


def cmd_ssh(ctx: Context, options: SshOptions) -> int:
    (node,) = ctx.inventory.named([options.node])
    argv = _node_ssh(ctx, node, *options.command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_logs(ctx: Context, options: LogsOptions) -> int:
    (node,) = ctx.inventory.named([options.node])
    remote = ["sudo", "docker", "logs", "--tail", str(options.tail), str(options.service)]
    return subprocess.run(_node_ssh(ctx, node, *remote), check=False).returncode


def cmd_exec(ctx: Context, options: ExecOptions) -> int:
    targets = ctx.inventory.nodes_or_fail() if options.target == "all" else ctx.inventory.named([options.target])
    names = [ctx.host(n) for n in targets]
    command = " ".join(options.command)  # like ssh: the words form one shell command line
    result = ansible_run(ctx, f"exec: {command}", names, module="ansible.builtin.shell", module_args=command,
                         limit=names, become=options.sudo)
    ran = ExecResult(command, [NodeOutput(run.node, run.state.ok, run.outputs, run.message)
                               for run in node_runs(result)])
    show(ctx.console, ran, ctx.output)
    return 0 if ran.ok else 1


def cmd_inventory(ctx: Context, options: InventoryOptions) -> int:
    nodes = ctx.inventory.refresh()
    text = ctx.inventory.path.read_text(encoding="utf-8")
    if options.print_it and not ctx.json:
        ctx.console.out(text.rstrip("\n"), highlight=False)  # the YAML itself, nothing else on stdout
        return 0
    show(ctx.console, InventoryResult(str(ctx.inventory.path), len(nodes), text), ctx.output)
    return 0


def cmd_down(ctx: Context, options: DownOptions) -> int:
    clusters = ", ".join(ctx.fleet.cluster_name(r) for r in ctx.fleet.regions)
    if not options.yes:
        if not sys.stdin.isatty():
            raise InputError("down needs confirmation: run it in a terminal or pass --yes")
        try:
            answer = input(f"Tear down fleet '{ctx.fleet.name}' ({clusters})? Type the fleet name to confirm: ")
        except EOFError:
            answer = ""
        if answer.strip() != ctx.fleet.name:
            ctx.err_console.print("not confirmed: nothing was removed")
            return 2
    with _fleet_lock(ctx, "down", options.lock_wait):
        outcomes = _provision(ctx, f"Tearing down fleet '{ctx.fleet.name}'", ctx.provider.down)
    result = DownResult(outcomes)
    show(ctx.console, result, ctx.output)
    if result.ok:
        ctx.inventory.path.unlink(missing_ok=True)
        return 0
    return 1


def cmd_events(ctx: Context, options: EventsOptions) -> int:
    log = EventLog(state_dir() / ctx.fleet.name / "events.jsonl")
    found = list(log.read(options.since))
    if ctx.json:
        ctx.console.out(json.dumps([e.to_json() for e in found], indent=2), highlight=False)
        return 0
    for event in found:
        ctx.console.print(Text(f"{event.at}  {event.kind:<24} {event.subject:<28} {event.text}"), highlight=False)
    if not found:
        ctx.err_console.print("no events" + (" in that time" if options.since else " yet (is a watcher running?)"))
    return 0


def cmd_report(ctx: Context, options: ReportOptions) -> int:
    from fleetdeploy.watch.report import REPORT_FILE, write_report
    from fleetdeploy.watch.state import load_state

    fleet_dir = state_dir() / ctx.fleet.name
    state, why = load_state(fleet_dir / "watch-state.json")
    if why:
        ctx.notice(why)
    path = options.file or fleet_dir / REPORT_FILE
    state.note_cost(ctx.provider.costs(DEFAULT_COST_DAYS), time.time())  # now, not as of the watcher's last reading
    try:
        write_report(path, ctx.fleet.name, ctx.fleet.provider, state, EventLog(fleet_dir / "events.jsonl"),
                     time.time())
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report ({exc.strerror})") from None
    ctx.console.print(Text(f"report: {path}" + ("" if state.ticks else " (no watcher tick yet: run watch --once)")),
                      highlight=False)
    return 0


_COMMANDS: dict[type, Callable[[Context, Any], int]] = {
    UpOptions: cmd_up, PlanOptions: cmd_plan, StatusOptions: cmd_status, ConfigureOptions: cmd_configure,
    HealthOptions: cmd_health, SshOptions: cmd_ssh, LogsOptions: cmd_logs, ExecOptions: cmd_exec,
    InventoryOptions: cmd_inventory, DownOptions: cmd_down, EventsOptions: cmd_events,
    ReportOptions: cmd_report,
    CostOptions: cmd_cost, CanaryOptions: cmd_canary,
}
