"""What a SkyPilot fleet has cost so far: SkyPilot's own `sky.cost_report()`, reduced to this fleet's clusters.

SkyPilot computes each record's `total_cost` from its launched resources' list price times the time the cluster
was up (`duration`, from its usage intervals), times `num_nodes`: an estimate at list prices, not a bill (spot
prices move, and a node preempted between refreshes still counts). A cluster name launched again is a new
record (another cluster hash); a name's records are added up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from fleetdeploy.providers.base import ClusterCost, FleetCost

BASIS = "estimate at list prices (SkyPilot's cost report)"
# SkyPilot writes 0.0 when it cannot price a record (it logs a warning): on AWS its catalog needs the account's zone
# mapping, which needs AWS credentials. A cluster that was up for a while never cost nothing.
UNPRICED = ("not priced by SkyPilot (its AWS catalog needs the account's zone names, which need AWS credentials: "
            "`sky check aws`)")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def costs_from_report(records: Iterable[Mapping[str, object]], names: Mapping[str, str]) -> FleetCost:
    """This fleet's clusters (`names`: cluster name -> region) in SkyPilot's cost report records."""
    totals: dict[str, ClusterCost] = {}
    unpriced: set[str] = set()
    for record in records:
        name = record.get("name")
        if not isinstance(name, str) or name not in names:
            continue
        launched = _number(record.get("launched_at")) or None
        nodes = int(_number(record.get("num_nodes")))
        seen = totals.get(name)
        cost, up = _number(record.get("total_cost")), _number(record.get("duration"))
        if cost == 0.0 and up > 0:
            unpriced.add(name)
        if seen is not None:
            newer = (launched or 0.0) >= (seen.launched_at or 0.0)
            launched, nodes = (launched, nodes) if newer else (seen.launched_at, seen.nodes)
        totals[name] = ClusterCost(
            cluster=name, region=names[name], nodes=nodes, launched_at=launched,
            up_seconds=up + (seen.up_seconds if seen else 0.0),
            cost=cost + ((seen.cost or 0.0) if seen is not None else 0.0),
        )
    clusters = tuple(replace(totals[name], cost=None) if name in unpriced else totals[name] for name in sorted(totals))
    return FleetCost(clusters, BASIS, unknown=f"{', '.join(sorted(unpriced))}: {UNPRICED}" if unpriced else "")
