"""What the fleet has cost so far: SkyPilot's cost report records reduced to the fleet's clusters (records in the
shape sky.core.cost_report returns in 0.14.1; tests/sky_real reads them from the real API server), and the local
provider's figures (tests/e2e)."""

from __future__ import annotations

from fleetdeploy.output.results import CostResult
from fleetdeploy.providers.local.docker import created_at
from fleetdeploy.providers.skypilot.costs import BASIS, costs_from_report

NAMES = {"demo-us-east-1": "us-east-1", "demo-eu-west-1": "eu-west-1"}


def _record(name: str, launched_at: int, duration: int, nodes: int, cost: float) -> dict[str, object]:
    return {"name": name, "launched_at": launched_at, "duration": duration, "last_use": "sky launch", "num_nodes": nodes,
            "cluster_hash": f"h-{name}-{launched_at}", "usage_intervals": [(launched_at, None)], "total_cost": cost,
            "cloud": "AWS", "region": "us-east-1", "cpus": "2", "memory": "4", "accelerators": "-",
            "resources_str": "2x AWS(t3.medium)", "resources_str_full": "2x AWS(t3.medium, disk=30)"}


def test_the_fleets_clusters_only_and_a_relaunched_name_added_up() -> None:
    found = costs_from_report([
        _record("demo-us-east-1", 1_000, 7_200, 2, 0.05),
        _record("demo-us-east-1", 20_000, 3_600, 3, 0.0375),  # the same name launched again: a new record
        _record("demo-eu-west-1", 5_000, 3_600, 1, 0.0104),
        _record("demo-x-us-east-1", 1_000, 99_999, 9, 9.99),  # another fleet
        _record("sky-jobs-controller-1", 1_000, 99_999, 1, 1.0),
    ], NAMES)
    assert found.basis == BASIS and not found.error
    by_name = {c.cluster: c for c in found.clusters}
    assert sorted(by_name) == ["demo-eu-west-1", "demo-us-east-1"]
    east = by_name["demo-us-east-1"]
    assert (east.region, east.nodes, east.launched_at, east.up_seconds) == ("us-east-1", 3, 20_000, 10_800)
    assert round(east.cost, 4) == 0.0875
    assert round(found.total, 4) == 0.0979


def test_missing_or_odd_fields_count_as_nothing() -> None:
    found = costs_from_report([{"name": "demo-eu-west-1", "launched_at": None, "duration": True, "num_nodes": None,
                                "total_cost": "0.5"}], NAMES)
    (only,) = found.clusters
    assert (only.launched_at, only.up_seconds, only.nodes, only.cost) == (None, 0.0, 0, 0.0)
    assert found.total == 0.0 and found.summary() == (0.0, BASIS)


def test_a_cluster_skypilot_could_not_price_is_unknown_and_so_is_the_total() -> None:
    """SkyPilot writes total_cost 0.0 when pricing fails (no AWS credentials for its catalog's zone names)."""
    found = costs_from_report([_record("demo-us-east-1", 1_000, 7_200, 2, 0.0),
                               _record("demo-eu-west-1", 5_000, 3_600, 1, 0.0104)], NAMES)
    by_name = {c.cluster: c for c in found.clusters}
    assert by_name["demo-us-east-1"].cost is None and by_name["demo-eu-west-1"].cost == 0.0104
    assert found.total is None and found.unknown.startswith("demo-us-east-1: not priced by SkyPilot")
    assert found.summary() == (None, found.unknown)
    result = CostResult.of("demo", 30, found)
    assert not result.ok and result.total is None and result.unknown == found.unknown


def test_the_result_keeps_the_reason_when_there_are_no_figures() -> None:
    from fleetdeploy.providers.base import FleetCost

    result = CostResult.of("demo", 30, FleetCost((), BASIS, error="cannot read SkyPilot's cost report: down"))
    assert not result.ok and result.total is None and result.clusters == []


def test_docker_creation_times() -> None:
    assert created_at("2026-12-06T15:08:19.123456789Z") == 1796569699.1234567
    assert created_at("2026-12-06T16:08:19+01:00") == 1796569699.0
    assert created_at("") is None and created_at("yesterday") is None
