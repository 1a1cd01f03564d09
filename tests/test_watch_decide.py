"""The watcher's decisions (fleetdeploy.watch.decide): pure functions, tested without Docker, Ansible or a clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetdeploy.fleet.watch_spec import WatchSpec
from fleetdeploy.health.verdict import Health, NodeHealth
from fleetdeploy.orchestrator.api import OrchestratorAnswer, OrchestratorNode
from fleetdeploy.providers.base import (
    ActionKind,
    ClusterAction,
    ClusterOutcome,
    ClusterPrice,
    FailureKind,
    FleetPrices,
    Outcome,
)
from fleetdeploy.watch.decide import after_configure, after_heal, backoff_seconds, decide
from fleetdeploy.watch.model import NodeView, Observation, Reason, RegionView
from fleetdeploy.watch.state import WatchState, load_state, save_state

SPEC = WatchSpec()
T0 = 1_800_000_000.0
NOTHING2 = ClusterAction(ActionKind.NOTHING, 2, 2)
HEAL2 = ClusterAction(ActionKind.HEAL, 2, 2)


def node(name: str, health: Health = Health.HEALTHY, converged: bool | None = True, region: str = "r1",
         failing: tuple[str, ...] = ()) -> NodeView:
    return NodeView(name, region, NodeHealth(name, health, list(failing)), converged)


def obs(*nodes: NodeView, at: float = T0, action: ClusterAction = NOTHING2, orchestrator: OrchestratorAnswer | None
        = None, error: str = "", prices: FleetPrices | None = None, in_flight: bool = False,
        regions: tuple[RegionView, ...] | None = None) -> Observation:
    regions = regions or (RegionView("r1", "f-r1", 2, action, in_flight),)
    return Observation(at, regions, tuple(nodes), orchestrator, error, prices)


def kinds(alerts: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(str(a.kind), a.subject) for a in alerts]


def connected(*names: str) -> OrchestratorAnswer:
    return OrchestratorAnswer({n: OrchestratorNode(n, "CONNECTED", "APPROVED") for n in names})


def test_a_healthy_fleet_needs_nothing_and_previous_state_is_never_changed() -> None:
    before = WatchState()
    decision, after = decide(obs(node("a"), node("b"), orchestrator=connected("a", "b")), SPEC, before, 0.5)
    assert not decision.acts and decision.alerts == [] and decision.hold == ""
    assert before == WatchState() and after.known_nodes == {"a": "r1", "b": "r1"}
    assert after.history[-1].regions == {"r1": [2, 2, 2]}


def test_a_lost_node_is_alerted_once_and_its_region_healed() -> None:
    _, state = decide(obs(node("a"), node("b")), SPEC, WatchState(), 0.5)
    decision, state = decide(obs(node("a"), at=T0 + 60, action=HEAL2), SPEC, state, 0.5)
    assert kinds(decision.alerts) == [("node_lost", "b"), ("heal_started", "r1")]
    assert [h.region for h in decision.heal] == ["r1"] and state.launches == [T0 + 60]
    # The heal is in flight on the provider's side (SkyPilot goes on after we stop): no second launch.
    again, state = decide(obs(node("a"), at=T0 + 120, action=HEAL2, in_flight=True), SPEC, state, 0.5)
    assert again.heal == [] and again.alerts == [] and "in flight" in again.notes[0]


def test_a_failed_refresh_is_reported_and_never_means_nodes_lost() -> None:
    _, state = decide(obs(node("a"), node("b")), SPEC, WatchState(), 0.5)
    unknown = (RegionView("r1", "f-r1", 2, None),)
    decision, state = decide(obs(at=T0 + 60, error="refreshing failed: no credentials", regions=unknown), SPEC,
                             state, 0.5)
    assert kinds(decision.alerts) == [("provider_unreadable", "provider")]
    assert decision.heal == [] and state.known_nodes == {"a": "r1", "b": "r1"}
    decision, state = decide(obs(node("a"), node("b"), at=T0 + 120), SPEC, state, 0.5)
    assert kinds(decision.alerts) == [("recovered", "provider")]


def test_drift_and_new_nodes_are_configured_at_once() -> None:
    decision, _ = decide(obs(node("a", converged=False), node("b", Health.NOT_CONFIGURED, converged=False)), SPEC,
                         WatchState(), 0.5)
    assert decision.configure == {"a": Reason.DRIFT, "b": Reason.NEW}


def test_an_unhealthy_node_is_configured_after_n_ticks_then_alerted_then_recovers() -> None:
    spec = WatchSpec(unhealthy_ticks=3)
    state = WatchState()
    sick = node("a", Health.UNHEALTHY, failing=("sensor:readings (not growing)",))
    for tick in range(2):
        decision, state = decide(obs(sick, at=T0 + tick), spec, state, 0.5)
        assert decision.configure == {} and decision.alerts == []
    decision, state = decide(obs(sick, at=T0 + 2), spec, state, 0.5)
    assert decision.configure == {"a": Reason.UNHEALTHY} and decision.alerts == []
    decision, state = decide(obs(sick, at=T0 + 3), spec, state, 0.5)
    assert decision.configure == {} and kinds(decision.alerts) == [("unhealthy", "a")]
    assert "still unhealthy after configure (sensor:readings (not growing))" in decision.alerts[0].text
    decision, state = decide(obs(sick, at=T0 + 4), spec, state, 0.5)
    assert decision.alerts == [] and decision.configure == {}  # one alert per problem, not one per tick
    decision, state = decide(obs(node("a"), at=T0 + 5), spec, state, 0.5)
    assert kinds(decision.alerts) == [("recovered", "a")] and state.unhealthy_ticks == {}


def test_an_unreadable_orchestrator_holds_everything_with_one_alert_then_recovers() -> None:
    state = WatchState()
    down = OrchestratorAnswer({}, "orchestrator API http://127.0.0.1:1 unreachable: Connection refused")
    for tick in range(3):
        # Its symptoms on the nodes (unhealthy, drifted) and a short region change nothing while it is down.
        decision, state = decide(obs(node("a", Health.UNHEALTHY, converged=False), at=T0 + tick, orchestrator=down,
                                     action=HEAL2), SPEC, state, 0.5)
        assert decision.hold and not decision.acts
        assert kinds(decision.alerts) == ([("orchestrator_unreadable", "orchestrator")] if tick == 0 else [])
    assert state.unhealthy_ticks == {}
    none_connected = OrchestratorAnswer({"a": OrchestratorNode("a", "DISCONNECTED", "APPROVED")})
    decision, state = decide(obs(node("a"), at=T0 + 5, orchestrator=none_connected), SPEC, state, 0.5)
    assert decision.hold.endswith("lists none of the fleet's nodes as CONNECTED") and decision.alerts == []
    decision, state = decide(obs(node("a"), at=T0 + 6, orchestrator=connected("a")), SPEC, state, 0.5)
    assert kinds(decision.alerts) == [("recovered", "orchestrator")] and not decision.hold


@pytest.mark.parametrize(("failures", "kind", "jitter", "expected"), [
    (1, FailureKind.CAPACITY, 0.0, 60.0),  # never below the minimum
    (1, FailureKind.CAPACITY, 0.999, 59.97),
    (3, FailureKind.CAPACITY, 0.0, 120.0),  # 60 * 2**2 = 240, jittered down to half
    (3, FailureKind.TRANSIENT, 1.0, 240.0),
    (20, FailureKind.UNKNOWN, 1.0, 3600.0),  # capped
    (1, FailureKind.CREDENTIALS, 0.0, 3600.0),  # a person must act: straight to the cap
])
def test_backoff_doubles_with_jitter_up_to_the_cap(failures: int, kind: FailureKind, jitter: float,
                                                   expected: float) -> None:
    assert backoff_seconds(SPEC, failures, kind, jitter) == pytest.approx(max(60.0, expected), abs=0.1)


def test_a_failed_heal_backs_off_its_region_only_and_one_alert_per_failure_streak() -> None:
    regions = (RegionView("r1", "f-r1", 2, HEAL2), RegionView("r2", "f-r2", 1, ClusterAction(ActionKind.LAUNCH, 1)))
    decision, state = decide(obs(regions=regions), SPEC, WatchState(), 0.5)
    assert [h.region for h in decision.heal] == ["r1", "r2"]
    alerts = after_heal(state, [ClusterOutcome("f-r1", "r1", Outcome.FAILED, "no capacity", FailureKind.CAPACITY),
                                ClusterOutcome("f-r2", "r2", Outcome.LAUNCHED)], SPEC, T0, 0.0)
    assert kinds(alerts) == [("heal_failed", "r1")] and "next try in 60 s" in alerts[0].text
    assert state.regions["r1"].next_try_at == T0 + 60 and state.regions["r2"].failures == 0
    assert state.counters == {"fleet_watch_launches_total|r1": 1, "fleet_watch_launches_total|r2": 1,
                              "fleet_watch_launch_failures_total|r1": 1, "fleet_watch_heals_total|r2": 1}
    decision, state = decide(obs(regions=regions[:1], at=T0 + 30), SPEC, state, 0.5)
    assert decision.heal == [] and "backing off for 30 s more (capacity: no capacity)" in decision.notes[0]
    decision, state = decide(obs(regions=regions[:1], at=T0 + 61), SPEC, state, 0.5)
    assert [h.region for h in decision.heal] == ["r1"]
    alerts = after_heal(state, [ClusterOutcome("f-r1", "r1", Outcome.FAILED, "no capacity", FailureKind.CAPACITY)],
                        SPEC, T0 + 61, 1.0)
    assert alerts == [] and state.regions["r1"].next_try_at == T0 + 61 + 120  # the streak's alert went out already
    assert after_heal(state, [ClusterOutcome("f-r1", "r1", Outcome.RELAUNCHED)], SPEC, T0 + 200, 0.0) == []
    assert state.regions["r1"].failures == 0 and "heal_failed:r1" not in state.problems
    done = after_configure(state, {"n9": Reason.NEW}, {"n9": True}, {}, {"r1": ("relaunched", ["n9"])}, SPEC,
                           T0 + 250)
    assert kinds(done) == [("heal_done", "r1")] and done[0].text == "r1: relaunched; 1 new node(s), 1 configured (n9)"


def test_the_launch_budget_and_the_spend_cap_stop_launches_with_an_alert() -> None:
    spec = WatchSpec(max_launches_per_hour=1, max_hourly_price=0.10)
    state = WatchState(launches=[T0 - 100])
    decision, state = decide(obs(action=HEAL2), spec, state, 0.5)
    assert decision.heal == [] and kinds(decision.alerts) == [("launch_budget", "fleet")]
    state.launches = [T0 - 3700]  # over an hour ago: it no longer counts
    cheap = FleetPrices((ClusterPrice("f-r1", 0.05),), 0.05)
    decision, state = decide(obs(action=HEAL2, prices=cheap, at=T0 + 1), spec, state, 0.5)
    assert [h.region for h in decision.heal] == ["r1"]
    dear = FleetPrices((ClusterPrice("f-r1", 0.5),), 0.5)
    decision, _ = decide(obs(action=HEAL2, prices=dear, at=T0 + 2), spec, WatchState(), 0.5)
    assert decision.heal == [] and "over max_hourly_price $0.1000/h" in decision.alerts[0].text
    unknown = FleetPrices((ClusterPrice("f-r1", None, "no catalog"),), None, "no catalog")
    decision, _ = decide(obs(action=HEAL2, prices=unknown, at=T0 + 3), spec, WatchState(), 0.5)
    assert decision.heal == [] and "price is unknown (no catalog)" in decision.alerts[0].text
    # Nothing billed (the local provider): no cap applies.
    decision, _ = decide(obs(action=HEAL2, prices=None, at=T0 + 4), spec, WatchState(), 0.5)
    assert [h.region for h in decision.heal] == ["r1"]


def test_a_repeated_alert_waits_for_the_cooldown_but_every_new_heal_is_told() -> None:
    spec = WatchSpec(alert_cooldown_seconds=600)
    state = WatchState()
    decision, state = decide(obs(node("a", converged=False)), spec, state, 0.5)
    assert after_configure(state, decision.configure, {"a": True}, {}, {}, spec, T0) != []
    decision, state = decide(obs(node("a", converged=False), at=T0 + 60), spec, state, 0.5)
    assert decision.configure == {"a": Reason.DRIFT}  # fixed again,
    assert after_configure(state, decision.configure, {"a": True}, {}, {}, spec, T0 + 60) == []  # told once
    assert kinds(after_configure(state, {"a": Reason.DRIFT}, {"a": True}, {}, {}, spec, T0 + 700)) == [
        ("drift_fixed", "a")]
    # Two preemptions of one region within the cool-down are two heals: both are told.
    _, state = decide(obs(node("a"), node("b"), at=T0 + 800), spec, state, 0.5)
    first, state = decide(obs(node("a"), at=T0 + 810, action=HEAL2), spec, state, 0.5)
    second, state = decide(obs(node("b"), at=T0 + 900, action=HEAL2), spec, state, 0.5)
    assert ("heal_started", "r1") in kinds(first.alerts) and ("heal_started", "r1") in kinds(second.alerts)


def test_state_survives_a_restart_and_stays_bounded(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "watch-state.json"
    state = WatchState()
    for tick in range(2 * 24 * 20):  # two days of one tick every three minutes
        _, state = decide(obs(node("a"), at=T0 + 180 * tick), SPEC, state, 0.5)
    assert len(state.history) == 24 * 20  # a day of samples, no more
    save_state(path, state)
    assert path.stat().st_mode & 0o777 == 0o600
    loaded, why = load_state(path)
    assert why == "" and loaded == state
    path.write_text("{not json")
    fresh, why = load_state(path)
    assert fresh == WatchState() and "unreadable" in why


def test_a_spot_interruption_notice_is_alerted_once() -> None:
    warned = replace(node("a"), interruption="terminate at 2026-12-06T10:02:00Z")
    decision, state = decide(obs(warned), SPEC, WatchState(), 0.5)
    assert kinds(decision.alerts) == [("interruption_notice", "a")]
    decision, _ = decide(obs(warned, at=T0 + 5), SPEC, state, 0.5)
    assert decision.alerts == []


def test_status_shows_a_notice_only_from_a_recent_tick(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from pathlib import Path
    from types import SimpleNamespace

    from fleetdeploy.operations.commands import NOTICE_FRESH_S, _recent_notices

    state_root = Path(str(tmp_path))
    monkeypatch.setenv("FLEETDEPLOY_STATE_DIR", str(state_root))
    warned = replace(node("a"), interruption="terminate at 2026-12-06T10:02:00Z")
    _, state = decide(obs(warned, node("b"), at=time.time()), SPEC, WatchState(), 0.5)
    assert [n.interruption for n in state.nodes] == ["terminate at 2026-12-06T10:02:00Z", ""]
    ctx = SimpleNamespace(fleet=SimpleNamespace(name="f"))
    state.last_good_tick = time.time()
    save_state(state_root / "f" / "watch-state.json", state)
    assert _recent_notices(ctx) == {"a": "terminate at 2026-12-06T10:02:00Z"}  # type: ignore[arg-type]
    state.last_good_tick = time.time() - NOTICE_FRESH_S - 1
    save_state(state_root / "f" / "watch-state.json", state)
    assert _recent_notices(ctx) == {}  # type: ignore[arg-type]
