"""Carry out a decision through the code the commands use: the provider's `up` for the regions to heal (the same
launch, heal, resize and capacity failover as `deploy.py up`), then site.yml on the nodes that need it: the new
ones, the drifted ones and those unhealthy for too long (a converged node ends after one task)."""

from __future__ import annotations

from collections.abc import Callable

from fleetdeploy.fleet.watch_spec import WatchSpec
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.options import DEFAULT_JOIN_TIMEOUT_S
from fleetdeploy.operations.steps import configure_nodes, wait_for_nodes
from fleetdeploy.output.progress import ProgressBoard
from fleetdeploy.providers.base import ClusterOutcome, Node
from fleetdeploy.watch.decide import after_configure, after_heal
from fleetdeploy.watch.model import Alert, Decision, Reason
from fleetdeploy.watch.state import WatchState


def _heal(ctx: Context, decision: Decision) -> list[ClusterOutcome]:
    clusters = [h.cluster for h in decision.heal]
    with ProgressBoard(ctx.progress_console, "Watch: healing", clusters) as board:
        outcomes = ctx.provider.up(lambda cluster, message: board.update(cluster, "running", message),
                                   only=set(clusters))
        for outcome in outcomes:
            board.update(outcome.cluster, outcome.action, outcome.error or "")
    return outcomes


def act(ctx: Context, decision: Decision, nodes: list[Node], spec: WatchSpec, state: WatchState, now: float,
        jitter: float, say: Callable[[str], None]) -> list[Alert]:
    """Heal, then configure; returns the alerts the results call for (and updates `state`)."""
    alerts: list[Alert] = []
    healed: dict[str, tuple[str, list[str]]] = {}
    targets = dict(decision.configure)
    if decision.heal:
        say("healing " + ", ".join(f"{h.region} ({h.action.describe()})" for h in decision.heal))
        outcomes = _heal(ctx, decision)
        alerts += after_heal(state, outcomes, spec, now, jitter)
        before = {ctx.host(n) for n in nodes}
        nodes = ctx.inventory.refresh()
        new = [n for n in nodes if ctx.host(n) not in before]
        for outcome in outcomes:
            if outcome.ok:
                healed[outcome.region] = (str(outcome.action),
                                          sorted(ctx.host(n) for n in new if n.region == outcome.region))
        for node in new:
            targets[ctx.host(node)] = Reason.NEW
    chosen = [n for n in nodes if ctx.host(n) in targets]
    if not chosen:
        return alerts + after_configure(state, {}, {}, {}, healed, spec, now)
    say("configuring " + ", ".join(f"{ctx.host(n)} ({targets[ctx.host(n)]})" for n in chosen))
    result = configure_nodes(ctx, nodes, chosen, check=False)
    # As `up` does: a node just configured is given time to join before the next tick judges it.
    wait_for_nodes(ctx, [run.node for run in result.nodes if run.state.ok], DEFAULT_JOIN_TIMEOUT_S)
    ok = {run.node: run.state.ok for run in result.nodes}
    messages = {run.node: run.message for run in result.nodes}
    reasons = {name: reason for name, reason in targets.items() if name in ok}
    return alerts + after_configure(state, reasons, ok, messages, healed, spec, now)
