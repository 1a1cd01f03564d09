"""Rolling configure's batching and stop rule (the E2E suite proves it on a real fleet: tests/e2e)."""

from __future__ import annotations

import pytest

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.rolling_spec import RollingSpec
from fleetdeploy.health.verdict import Health, HealthResult, NodeHealth
from fleetdeploy.operations.options import RollingOptions, batch_size
from fleetdeploy.operations.rolling import batch_failures, roll, rolling_order, split
from fleetdeploy.orchestrator.api import OrchestratorView
from fleetdeploy.orchestrator.join import JoinResult, NodeJoin
from fleetdeploy.output.results import ConfigureResult, NodeRun
from fleetdeploy.runs.runner import NodeState


@pytest.mark.parametrize(("spec", "total", "size"), [("1", 10, 1), ("3", 2, 3), ("25%", 3, 1), ("25%", 10, 3),
                                                     ("100%", 7, 7), ("1%", 300, 3), (" 2 ", 5, 2)])
def test_batch_size(spec: str, total: int, size: int) -> None:
    assert batch_size(spec, total) == size


@pytest.mark.parametrize("spec", ["0", "-1", "0%", "101%", "x", "2.5", "%", ""])
def test_bad_batch_specs_are_input_errors(spec: str) -> None:
    with pytest.raises(InputError, match="--batch"):
        batch_size(spec, 10)


def test_the_fleet_files_rolling_settings_are_the_defaults_and_each_flag_wins() -> None:
    spec = RollingSpec.model_validate({"batch": 2, "max_unhealthy": 1})
    assert spec.batch == "2"
    assert RollingOptions().over(spec) == ("2", 1)
    assert RollingOptions(batch="50%").over(spec) == ("50%", 1)
    assert RollingOptions(max_unhealthy=0).over(spec) == ("2", 0)
    assert RollingOptions().over(RollingSpec()) == ("25%", 0)


@pytest.mark.parametrize("batch", ["0", 0, "101%", "x", True, None, [2]])
def test_a_bad_rolling_batch_in_the_fleet_file_is_refused(batch: object) -> None:
    with pytest.raises(ValueError, match="node count"):
        RollingSpec.model_validate({"batch": batch})


def test_batches_take_from_every_region_in_turn() -> None:
    order = rolling_order({"us-east-1": ["u2", "u1", "u3"], "eu-west-1": ["e1"]})
    assert order == ["e1", "u1", "u2", "u3"]
    assert split(order, 2) == [["e1", "u1"], ["u2", "u3"]]


def _configured(nodes: list[str], failed: frozenset[str] = frozenset()) -> ConfigureResult:
    return ConfigureResult(False, 1.0, [NodeRun(n, NodeState.FAILED if n in failed else NodeState.CHANGED)
                                        for n in nodes])


def _view(ready: bool) -> OrchestratorView:
    return OrchestratorView("CONNECTED" if ready else "DISCONNECTED", "APPROVED", None, None, ready,
                            "" if ready else "DISCONNECTED per the orchestrator")


def test_a_batch_fails_on_configure_join_or_health() -> None:
    nodes = ["a", "b", "c", "d"]
    joined = JoinResult(1.0, [NodeJoin(n, _view(n != "b")) for n in nodes])
    health = HealthResult([NodeHealth(n, Health.UNHEALTHY if n == "c" else Health.HEALTHY, []) for n in nodes])
    assert batch_failures(_configured(nodes, frozenset({"a"})), joined, health) == ["a", "b", "c"]
    unreadable = JoinResult(1.0, [NodeJoin(n, None) for n in nodes], "API down", api_unreadable=True)
    assert batch_failures(_configured(nodes), unreadable, None) == []  # an unreadable API charges no node


def test_roll_stops_at_the_first_batch_over_the_limit_and_leaves_the_rest() -> None:
    batches = [["a"], ["b"], ["c"], ["d"]]
    bad = {"b", "c"}
    configured: list[list[str]] = []

    def configure(names: list[str]) -> ConfigureResult:
        configured.append(names)
        return _configured(names)

    def gate(names: list[str]) -> tuple[JoinResult | None, HealthResult | None]:
        return None, HealthResult([NodeHealth(n, Health.UNHEALTHY if n in bad else Health.HEALTHY, []) for n in names])

    done, untouched = roll(batches, 0, configure, gate, lambda *_: None)
    assert [b.passed for b in done] == [True, False] and done[1].failed == ["b"]
    assert configured == [["a"], ["b"]] and untouched == [["c"], ["d"]]

    configured.clear()
    done, untouched = roll(batches, 1, configure, gate, lambda *_: None)  # one unhealthy node tolerated
    assert [b.passed for b in done] == [True, True, False] and untouched == [["d"]]
