"""`configure --rolling`: plan the batches, run them through rolling.roll, end with what every node runs."""

from __future__ import annotations

from fleetdeploy.health.verdict import HealthResult
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.options import ConfigureOptions, RollingOptions, batch_size
from fleetdeploy.operations.rolling import roll, rolling_order, split
from fleetdeploy.operations.steps import configure_nodes, health_of, wait_for_nodes
from fleetdeploy.orchestrator.join import JoinResult
from fleetdeploy.output.results import ConfigureResult, NodeVersions, RollingResult
from fleetdeploy.providers.base import Node


def _versions(health: HealthResult) -> list[NodeVersions]:
    return [NodeVersions(n.node, n.images.get("bacalhau", ""), n.images.get("sensor", ""), n.health)
            for n in health.nodes]


def configure_rolling(ctx: Context, nodes: list[Node], limit: list[Node] | None, options: ConfigureOptions,
                      rolling: RollingOptions) -> RollingResult:
    targets = limit if limit is not None else nodes
    by_name = {ctx.host(n): n for n in targets}
    regions: dict[str, list[str]] = {}
    for name, node in by_name.items():
        regions.setdefault(node.region, []).append(name)
    batch, max_unhealthy = rolling.over(ctx.fleet.rolling)
    size = batch_size(batch, len(by_name))
    batches = split(rolling_order(regions), size)
    chosen = list(by_name.values())

    if options.check:
        # The plan: the batches, what would change on each node, and what each node runs now.
        drift = configure_nodes(ctx, nodes, chosen, check=True, full=options.full, mode=options.configure_mode)
        now = health_of(ctx, nodes, chosen)
        return RollingResult(True, size, max_unhealthy, [], batches, drift, _versions(now))

    def configure(names: list[str]) -> ConfigureResult:
        # Converged nodes (stamp holds) end at once: a re-run after a stop or Ctrl-C continues where it was.
        return configure_nodes(ctx, nodes, [by_name[n] for n in names], check=False, full=options.full,
                               mode=options.configure_mode)

    def gate(names: list[str]) -> tuple[JoinResult | None, HealthResult | None]:
        joined = wait_for_nodes(ctx, names, options.join_timeout)
        return joined, health_of(ctx, nodes, [by_name[n] for n in names])

    def announce(number: int, total: int, names: list[str]) -> None:
        ctx.progress_console.print(f"Batch {number}/{total}: {', '.join(names)}", highlight=False)

    done, untouched = roll(batches, max_unhealthy, configure, gate, announce)
    final = health_of(ctx, nodes, chosen)  # what every node runs now, rolled or not
    return RollingResult(False, size, max_unhealthy, done, untouched, None, _versions(final))
