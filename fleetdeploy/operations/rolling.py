"""Rolling configure: the roles applied batch by batch, each batch gated on node health and the orchestrator.

The way to upgrade Bacalhau or the sensor, or to rotate S3 keys, without taking the fleet down at once: change
the fleet file, then `configure --rolling`. At the first batch that fails the gate the roll stops; the nodes of
later batches are not touched. Each node's run ends by stamping it converged (site.yml), so after a stop or a
Ctrl-C a re-run skips the nodes already done and continues with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import zip_longest

from fleetdeploy.health.verdict import HealthResult
from fleetdeploy.orchestrator.join import JoinResult
from fleetdeploy.output.results import ConfigureResult, RollingBatch


def rolling_order(nodes_by_region: dict[str, list[str]]) -> list[str]:
    """Round-robin over the regions (each sorted), so a batch takes a little from each region, not one region."""
    columns = [sorted(names) for _, names in sorted(nodes_by_region.items())]
    return [name for row in zip_longest(*columns) for name in row if name is not None]


def split(order: Sequence[str], size: int) -> list[list[str]]:
    return [list(order[i:i + size]) for i in range(0, len(order), size)]


def batch_failures(configured: ConfigureResult, joined: JoinResult | None, health: HealthResult | None) -> list[str]:
    """The nodes of one batch that did not pass the gate: configure failed, not joined, or not healthy."""
    failed = {n.node for n in configured.nodes if not n.state.ok}
    if joined is not None and not joined.api_unreadable:
        failed |= {n.node for n in joined.nodes if n.orchestrator is None or not n.orchestrator.ready}
    if health is not None:
        failed |= {n.node for n in health.nodes if not n.health.ok}
    return sorted(failed)


def roll(
    batches: list[list[str]],
    max_unhealthy: int,
    configure: Callable[[list[str]], ConfigureResult],
    gate: Callable[[list[str]], tuple[JoinResult | None, HealthResult | None]],
    announce: Callable[[int, int, list[str]], None],
) -> tuple[list[RollingBatch], list[list[str]]]:
    """Run the batches in order; returns the batches run and those left untouched after a stop."""
    done: list[RollingBatch] = []
    unhealthy = 0
    for index, names in enumerate(batches):
        announce(index + 1, len(batches), names)
        configured = configure(names)
        runnable = [n.node for n in configured.nodes if n.state.ok]
        joined, health = gate(runnable) if runnable else (None, None)
        failures = batch_failures(configured, joined, health)
        unhealthy += len(failures)
        passed = unhealthy <= max_unhealthy
        done.append(RollingBatch(index + 1, names, configured, joined, health, failures, passed))
        if not passed:
            return done, batches[index + 1:]
    return done, []
