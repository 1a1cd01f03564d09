"""What each CLI command does: fleet file → provider → inventory → Ansible → summary."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from fleetdeploy.config import Fleet, load_fleet
from fleetdeploy.convergence import roles_digest
from fleetdeploy.errors import FleetError, InputError
from fleetdeploy.health import HEALTH_PLAYBOOK, STATUS_CAPTURE_ACTION, health_rows
from fleetdeploy.inventory import build_inventory, host_name, inventory_path, write_inventory
from fleetdeploy.nodes import ClusterOutcome, Node, ProgressCallback, Provider
from fleetdeploy.capture import original_stderr, original_stdout
from fleetdeploy.progress import ProgressBoard, make_console, print_table, styled
from fleetdeploy.runner import REPO_ROOT, RunResult, run_ansible

SITE_PLAYBOOK = "playbooks/site.yml"


def state_dir() -> Path:
    """Where per-fleet local state (SSH keys, local orchestrator config) lives; never inside the repo."""
    configured = os.environ.get("FLEETDEPLOY_STATE_DIR")
    base = Path(configured) if configured else Path.home() / ".local" / "state" / "fleetdeploy"
    try:
        return base.expanduser().resolve()
    except RuntimeError:
        raise InputError(f"FLEETDEPLOY_STATE_DIR={configured}: unknown user in ~user") from None


def make_provider(fleet: Fleet, notice: Callable[[str], None]) -> Provider:
    if fleet.provider == "local":
        from fleetdeploy.providers.local import LocalProvider

        return LocalProvider(fleet, state_dir())
    from fleetdeploy.providers.skypilot import SkyPilotProvider

    return SkyPilotProvider(fleet, state_dir(), notice=notice)


@dataclass
class Context:
    args: argparse.Namespace
    fleet: Fleet
    console: Console  # stdout: tables and machine-readable output
    err_console: Console  # stderr: what third-party tools said along the way
    _provider: Provider | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = make_provider(self.fleet, self.notice)
        return self._provider

    def notice(self, line: str) -> None:
        self.err_console.print(Text(line, style="dim"))

    @property
    def inventory_file(self) -> Path:
        return inventory_path(REPO_ROOT, self.fleet)

    def refresh_inventory(self) -> list[Node]:
        """Ask the provider for the nodes and write the inventory: a pure function of what it reports."""
        nodes = self.provider.nodes()
        extra = self.provider.extra_inventory_vars()
        inventory = build_inventory(self.fleet, nodes, extra, roles_digest=roles_digest(REPO_ROOT))
        write_inventory(self.inventory_file, inventory)
        return nodes

    def nodes_or_fail(self) -> list[Node]:
        nodes = self.refresh_inventory()
        if not nodes:
            raise FleetError(f"fleet '{self.fleet.name}' has no running nodes; run `deploy.py up` first")
        return nodes

    def resolve(self, nodes: list[Node], wanted: list[str]) -> list[Node]:
        """Nodes named by host name, instance id or a unique prefix of either."""
        names = [item.strip() for entry in wanted for item in entry.split(",") if item.strip()]
        if not names:
            raise InputError("no node named: give a node name, an instance id or a unique prefix")
        chosen: list[Node] = []
        for name in names:
            matches = [n for n in nodes if name in (host_name(self.fleet, n), n.instance_id)]
            if not matches:
                matches = [n for n in nodes
                           if host_name(self.fleet, n).startswith(name) or n.instance_id.startswith(name)]
            if len(matches) != 1:
                known = ", ".join(host_name(self.fleet, n) for n in nodes) or "none"
                problem = "is ambiguous" if matches else "is not a node of this fleet"
                raise InputError(f"'{name}' {problem} (nodes: {known})")
            chosen.append(matches[0])
        return chosen


def run_command(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.fleet)
    if args.local and fleet.provider != "local":
        fleet = fleet.model_copy(update={"provider": "local"})
    ctx = Context(args=args, fleet=fleet, console=make_console(original_stdout()),
                  err_console=make_console(original_stderr()))
    handler = _COMMANDS[args.command]
    return handler(ctx)


def _print_outcomes(ctx: Context, title: str, outcomes: list[ClusterOutcome]) -> None:
    rows = [(o.cluster, styled(o.action if o.ok else "failed"), o.region, o.error or "") for o in outcomes]
    print_table(ctx.console, title, ("cluster", "result", "region", "error"), rows)


def _print_run(ctx: Context, title: str, result: RunResult) -> None:
    rows = [
        (name, styled(r.state), r.ok, r.changed, r.message)
        for name, r in sorted(result.hosts.items())
    ]
    print_table(ctx.console, title, ("node", "result", "ok", "changed", "error"), rows)


def _provision(ctx: Context, title: str,
               action: Callable[[ProgressCallback], list[ClusterOutcome]]) -> list[ClusterOutcome]:
    clusters = [ctx.fleet.cluster_name(region) for region in ctx.fleet.regions]
    with ProgressBoard(ctx.console, title, clusters) as board:
        outcomes = action(lambda cluster, message: board.update(cluster, "running", message))
        for outcome in outcomes:
            board.update(outcome.cluster, outcome.action if outcome.ok else "failed", outcome.error or "")
    return outcomes


def _configure(ctx: Context, nodes: list[Node], limit: list[Node] | None, check: bool,
               skip_converged: bool = False) -> RunResult:
    """Apply site.yml; with skip_converged, nodes whose stamp matches this inventory's digest end after one task."""
    names = [host_name(ctx.fleet, n) for n in nodes]
    limited = [host_name(ctx.fleet, n) for n in limit] if limit is not None else None
    title = "Drift check (no changes made)" if check else "Configuring nodes"
    started = time.monotonic()
    result = run_ansible(ctx.console, title, ctx.inventory_file, names, playbook=SITE_PLAYBOOK,
                         limit=limited, check=check, extra_vars={"fleet_skip_converged": skip_converged})
    elapsed = time.monotonic() - started
    if not check:
        _mark_incomplete(result)
    _print_run(ctx, f"{'Drift report' if check else 'Configure summary'} ({elapsed:.1f} s)", result)
    if check:
        drifted = sorted(name for name, r in result.hosts.items() if r.changed)
        for name in drifted:
            ctx.console.print(f"[bold]{name}[/bold]: {result.hosts[name].changed} task(s) would change")
            for task in result.hosts[name].changed_tasks:
                ctx.console.print(f"  ~ {task}", markup=False, highlight=False)
            for diff in result.hosts[name].diffs:
                ctx.console.print(diff, markup=False, highlight=False)
        ctx.console.print(f"drift on: {', '.join(drifted)}" if drifted else "no drift: every node matches its roles",
                          markup=False, highlight=False)
    return result


def _mark_incomplete(result: RunResult) -> None:
    """A node that neither finished site.yml nor was skipped as converged did not converge, whatever it counted."""
    for host in result.hosts.values():
        done = host.reports.get("fleet_report_complete") or host.reports.get("fleet_report_converged")
        if not done and not host.failed and not host.unreachable:
            host.failed = host.failed or 1
            host.message = host.message or "the run ended before this node's configuration completed"
    if any(h.failed or h.unreachable for h in result.hosts.values()) and result.rc == 0:
        result.rc = 1


def _health(ctx: Context, nodes: list[Node], limit: list[Node] | None = None) -> bool:
    names = [host_name(ctx.fleet, n) for n in nodes]
    limited = [host_name(ctx.fleet, n) for n in limit] if limit else None
    result = run_ansible(ctx.console, "Health check", ctx.inventory_file, names, playbook=HEALTH_PLAYBOOK,
                         limit=limited, capture_action=STATUS_CAPTURE_ACTION)
    rows = health_rows(result, limited or names)
    print_table(ctx.console, "Fleet health", ("node", "health", "failing checks"),
                [(node, styled(state), failing) for node, state, failing in rows])
    return all(state == "healthy" for _, state, _ in rows)


def cmd_up(ctx: Context) -> int:
    outcomes = _provision(ctx, f"Provisioning fleet '{ctx.fleet.name}'", ctx.provider.up)
    nodes = ctx.refresh_inventory()
    _print_outcomes(ctx, "Clusters", outcomes)
    failed = not all(o.ok for o in outcomes)
    if not nodes:
        raise FleetError("no node came up; see the cluster table above")
    ctx.console.print(f"inventory: {ctx.inventory_file} ({len(nodes)} nodes)")
    # Every node that is not converged is configured: new nodes, nodes whose last run failed or was cut short,
    # nodes adopted from an earlier run, and all of them after the roles or the fleet file changed.
    result = _configure(ctx, nodes, None, check=False, skip_converged=not ctx.args.reconfigure_all)
    failed |= result.rc != 0
    if not ctx.args.skip_health:
        failed |= not _health(ctx, nodes)
    return 1 if failed else 0


def _prices(ctx: Context) -> dict[str, str]:
    """Hourly price per cluster plus the fleet's (key ""), as shown; empty for the local provider (no bill)."""
    if ctx.fleet.provider != "skypilot":
        return {}
    from fleetdeploy.pricing import format_price, region_prices

    prices = region_prices(ctx.fleet)
    shown = {ctx.fleet.cluster_name(r.region): format_price(r.per_region_hour, r.unknown) for r in prices.regions}
    shown[""] = format_price(prices.per_hour, prices.unknown)
    return shown


def cmd_plan(ctx: Context) -> int:
    plans = ctx.provider.plan()
    prices = _prices(ctx)
    rows = [(p.cluster, p.action.describe() if p.action else "unknown (state not readable)", p.region, p.num_nodes,
             " > ".join(p.candidates) or f"{p.instance_type or '-'} {'spot' if p.spot else 'on-demand'}",
             prices.get(p.cluster, "-")) for p in plans]
    print_table(ctx.console, f"Plan for fleet '{ctx.fleet.name}' ({ctx.fleet.provider})",
                ("cluster", "up will", "region", "nodes", "tried in order", "price"), rows)
    if prices:
        ctx.console.print(f"fleet: {prices['']}", markup=False, highlight=False)
    for plan in plans:
        # Raw text: the task must stay valid YAML (no markup, no wrapping, no emoji codes).
        ctx.console.out(f"# {plan.cluster}\n{plan.rendered_task.rstrip()}", highlight=False)
    return 0


def cmd_status(ctx: Context) -> int:
    nodes = ctx.refresh_inventory()
    prices = _prices(ctx)
    wanted = {ctx.fleet.cluster_name(r): spec.count for r, spec in ctx.fleet.regions.items()}
    have = {cluster: sum(1 for n in nodes if n.cluster == cluster) for cluster in wanted}
    cluster_rows = []
    for cluster in sorted(wanted):
        state = "ok" if have[cluster] == wanted[cluster] else ("failed" if have[cluster] == 0 else "changed")
        cluster_rows.append((cluster, styled(state), f"{have[cluster]}/{wanted[cluster]}", prices.get(cluster, "-")))
    print_table(ctx.console, f"Fleet '{ctx.fleet.name}'", ("cluster", "state", "nodes up", "price (as wanted)"),
                cluster_rows)
    if prices:
        ctx.console.print(f"fleet: {prices['']}", markup=False, highlight=False)
    node_rows = [(host_name(ctx.fleet, n), n.region, n.zone or "-", f"{n.host}:{n.port}", n.instance_id,
                  "spot" if n.spot else "on-demand") for n in nodes]
    print_table(ctx.console, "Nodes", ("node", "region", "zone", "address", "instance id", "market"), node_rows)
    return 0 if have == wanted else 1


def cmd_configure(ctx: Context) -> int:
    nodes = ctx.nodes_or_fail()
    limit = ctx.resolve(nodes, ctx.args.limit) if ctx.args.limit else None
    return 0 if _configure(ctx, nodes, limit, check=ctx.args.check).rc == 0 else 1


def cmd_health(ctx: Context) -> int:
    nodes = ctx.nodes_or_fail()
    limit = ctx.resolve(nodes, ctx.args.limit) if ctx.args.limit else None
    return 0 if _health(ctx, nodes, limit) else 1


def _ssh_argv(node: Node) -> list[str]:
    if shutil.which("ssh") is None:
        raise InputError("'ssh' not found on PATH (apt-get install openssh-client)")
    return ["ssh", "-i", node.key_file, "-p", str(node.port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{node.user}@{node.host}"]


def cmd_ssh(ctx: Context) -> int:
    node = ctx.resolve(ctx.nodes_or_fail(), [ctx.args.node])[0]
    argv = _ssh_argv(node) + list(ctx.args.remote_command)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def cmd_logs(ctx: Context) -> int:
    node = ctx.resolve(ctx.nodes_or_fail(), [ctx.args.node])[0]
    remote = ["sudo", "docker", "logs", "--tail", str(ctx.args.tail), ctx.args.service]
    return subprocess.run(_ssh_argv(node) + remote, check=False).returncode


def cmd_exec(ctx: Context) -> int:
    nodes = ctx.nodes_or_fail()
    targets = nodes if ctx.args.target == "all" else ctx.resolve(nodes, [ctx.args.target])
    names = [host_name(ctx.fleet, n) for n in targets]
    command = " ".join(ctx.args.remote_command)  # like ssh: the words form one shell command line
    result = run_ansible(ctx.console, f"exec: {command}", ctx.inventory_file, names,
                         module="ansible.builtin.shell", module_args=command, limit=names,
                         become=ctx.args.sudo)
    for name in names:
        host = result.hosts[name]
        ctx.console.print(Text.assemble((name, "bold"), " ", styled("failed" if host.failed or host.unreachable else "ok")))
        for output in host.outputs:
            ctx.console.print(output, markup=False, highlight=False)
        if host.message:
            ctx.console.print(f"  {host.message}", markup=False, highlight=False)
    return 0 if not result.failed_hosts else 1


def cmd_inventory(ctx: Context) -> int:
    nodes = ctx.refresh_inventory()
    if ctx.args.print_it:
        print(ctx.inventory_file.read_text(), end="")
    else:
        ctx.console.print(f"inventory: {ctx.inventory_file} ({len(nodes)} nodes)")
    return 0


def cmd_down(ctx: Context) -> int:
    clusters = ", ".join(ctx.fleet.cluster_name(r) for r in ctx.fleet.regions)
    if not ctx.args.yes:
        if not sys.stdin.isatty():
            raise InputError("down needs confirmation: run it in a terminal or pass --yes")
        try:
            answer = input(f"Tear down fleet '{ctx.fleet.name}' ({clusters})? Type the fleet name to confirm: ")
        except EOFError:
            answer = ""
        if answer.strip() != ctx.fleet.name:
            ctx.console.print("not confirmed: nothing was removed")
            return 2
    outcomes = _provision(ctx, f"Tearing down fleet '{ctx.fleet.name}'", ctx.provider.down)
    _print_outcomes(ctx, "Clusters", outcomes)
    if all(o.ok for o in outcomes):
        ctx.inventory_file.unlink(missing_ok=True)
        return 0
    return 1


_COMMANDS = {
    "up": cmd_up, "plan": cmd_plan, "status": cmd_status, "configure": cmd_configure, "health": cmd_health,
    "ssh": cmd_ssh, "logs": cmd_logs, "exec": cmd_exec, "inventory": cmd_inventory, "down": cmd_down,
}
