"""The watcher's decisions: pure functions of what a tick observed, the fleet file's `watch:` settings and the
persisted history. No I/O, no clock, no randomness of their own (the caller passes `now` in the observation and a
jitter in [0, 1)), so every rule is unit-tested without Docker.

Rules, in the order they apply:
- The provider's state could not be read: one alert; nothing is taken as lost.
- Nodes seen last tick and gone now: one `node_lost` alert each.
- The orchestrator unreadable, or listing none of the fleet's nodes as CONNECTED: one alert, and the tick holds
  (nothing is configured or launched because of it; its symptoms on the nodes are not counted).
- Drifted nodes are configured; never-configured nodes too. A node unhealthy for `unhealthy_ticks` ticks in a row
  is configured once; if it is still unhealthy after that, an alert. A node is never terminated.
- A cluster short of its count (or resized in the fleet file) is healed, unless a launch for it is in flight, it is
  backing off after a failure, the launch budget for the hour is spent, or the spend cap is exceeded or cannot be
  checked (price unknown).
- After a heal: a success resets the region; a failure backs it off (doubling from backoff_min_seconds, with
  jitter, up to backoff_max_seconds; credential and cloud-access failures go straight to the maximum).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

from fleetdeploy.fleet.watch_spec import WatchSpec
from fleetdeploy.health.verdict import Health
from fleetdeploy.orchestrator.api import CONNECTED
from fleetdeploy.providers.base import ActionKind, ClusterOutcome, FailureKind
from fleetdeploy.watch.model import Alert, AlertKind, Decision, Observation, Reason, RegionHeal
from fleetdeploy.watch.state import NodeSnapshot, Sample, WatchState

PROVIDER = "provider"
ORCHESTRATOR = "orchestrator"
FLEET = "fleet"
FLEET_FILE = "fleet file"


def _emit(state: WatchState, alerts: list[Alert], alert: Alert, now: float, cooldown: float) -> None:
    """Send `alert` unless the same one (kind and subject) went out within the cool-down."""
    last = state.alerts_sent.get(alert.key)
    if last is not None and now - last < cooldown:
        return
    state.alerts_sent[alert.key] = now
    alerts.append(alert)


def _open(state: WatchState, alerts: list[Alert], alert: Alert, now: float, cooldown: float) -> None:
    """A problem starts (or goes on): alert on the transition only."""
    if alert.key not in state.problems:
        state.problems[alert.key] = alert.text
        _emit(state, alerts, alert, now, cooldown)


def _close(state: WatchState, alerts: list[Alert], kind: AlertKind, subject: str, what: str, now: float,
           cooldown: float) -> None:
    key = f"{kind}:{subject}"
    if key in state.problems:
        del state.problems[key]
        _emit(state, alerts, Alert(AlertKind.RECOVERED, subject, f"{subject}: {what}"), now, cooldown)


def problem_alert(state: WatchState, alert: Alert, now: float, cooldown: float) -> list[Alert]:
    """Open a problem outside a tick's observation (e.g. the fleet file became invalid)."""
    alerts: list[Alert] = []
    _open(state, alerts, alert, now, cooldown)
    return alerts


def close_problem(state: WatchState, kind: AlertKind, subject: str, what: str, now: float,
                  cooldown: float) -> list[Alert]:
    alerts: list[Alert] = []
    _close(state, alerts, kind, subject, what, now, cooldown)
    return alerts


def _orchestrator_hold(obs: Observation) -> str:
    """Why the orchestrator's view makes this tick hold, or ""."""
    if obs.orchestrator is None:
        return ""
    if obs.orchestrator.error:
        return obs.orchestrator.error
    ours = [n.node for n in obs.nodes]
    if ours and not any((node := obs.orchestrator.nodes.get(name)) is not None and node.connection == CONNECTED
                        for name in ours):
        return "the orchestrator lists none of the fleet's nodes as CONNECTED"
    return ""


def decide(obs: Observation, spec: WatchSpec, previous: WatchState, jitter: float) -> tuple[Decision, WatchState]:
    """What to do this tick, and the state to remember. `previous` is not changed."""
    state = copy.deepcopy(previous)
    state.prune(obs.at)
    now, cooldown = obs.at, float(spec.alert_cooldown_seconds)
    decision = Decision()
    alerts = decision.alerts

    provider_known = bool(obs.regions) and all(r.action is not None for r in obs.regions)
    if obs.provider_error:
        _open(state, alerts, Alert(AlertKind.PROVIDER_UNREADABLE, PROVIDER, obs.provider_error), now, cooldown)
    else:
        _close(state, alerts, AlertKind.PROVIDER_UNREADABLE, PROVIDER, "its state can be read again", now, cooldown)

    seen = {n.node: n.region for n in obs.nodes}
    if provider_known:
        for node, region in sorted(state.known_nodes.items()):
            if node not in seen:
                _emit(state, alerts, Alert(AlertKind.NODE_LOST, node, f"{node} ({region}) is gone"), now, cooldown)
                state.unhealthy_ticks.pop(node, None)
                state.repair_tried = [n for n in state.repair_tried if n != node]
                state.problems.pop(f"{AlertKind.UNHEALTHY}:{node}", None)  # gone, not recovered
        state.known_nodes = seen
    _record_sample(state, obs)

    hold = _orchestrator_hold(obs)
    if hold:
        _open(state, alerts, Alert(AlertKind.ORCHESTRATOR_UNREADABLE, ORCHESTRATOR, hold), now, cooldown)
        decision.hold = f"holding (nothing is configured or launched): {hold}"
        return decision, state
    if obs.orchestrator is not None:
        _close(state, alerts, AlertKind.ORCHESTRATOR_UNREADABLE, ORCHESTRATOR, "readable, nodes CONNECTED again",
               now, cooldown)

    _decide_nodes(obs, spec, state, decision)
    _decide_regions(obs, spec, state, decision)
    return decision, state


def _decide_nodes(obs: Observation, spec: WatchSpec, state: WatchState, decision: Decision) -> None:
    now, cooldown = obs.at, float(spec.alert_cooldown_seconds)
    for node in obs.nodes:
        if node.interruption:
            _emit(state, decision.alerts, Alert(AlertKind.INTERRUPTION_NOTICE, node.node,
                                                f"{node.node}: spot interruption notice ({node.interruption})"),
                  now, cooldown)
        verdict = node.health.health if node.health is not None else None
        if verdict is Health.NOT_CONFIGURED:
            decision.configure[node.node] = Reason.NEW
            continue
        if node.converged is False:
            decision.configure[node.node] = Reason.DRIFT
        if verdict is None:
            continue
        if verdict.ok:
            state.unhealthy_ticks.pop(node.node, None)
            state.repair_tried = [n for n in state.repair_tried if n != node.node]
            _close(state, decision.alerts, AlertKind.UNHEALTHY, node.node, "healthy again", now, cooldown)
            continue
        streak = state.unhealthy_ticks[node.node] = state.unhealthy_ticks.get(node.node, 0) + 1
        if streak < spec.unhealthy_ticks:
            decision.notes.append(f"{node.node}: {verdict} ({streak}/{spec.unhealthy_ticks} ticks)")
        elif node.node not in state.repair_tried:
            decision.configure.setdefault(node.node, Reason.UNHEALTHY)
            state.repair_tried.append(node.node)
        else:
            failing = "; ".join(node.health.failing) if node.health is not None else ""
            text = f"{node.node}: still {verdict} after configure" + (f" ({failing})" if failing else "")
            _open(state, decision.alerts, Alert(AlertKind.UNHEALTHY, node.node, text), now, cooldown)


def _decide_regions(obs: Observation, spec: WatchSpec, state: WatchState, decision: Decision) -> None:
    now, cooldown = obs.at, float(spec.alert_cooldown_seconds)
    candidates = []
    for region in obs.regions:
        memory = state.region(region.region)
        if region.action is None:
            decision.notes.append(f"{region.region}: state unknown")
        elif region.action.kind is ActionKind.NOTHING:
            continue
        elif region.in_flight:
            decision.notes.append(f"{region.region}: a launch is still in flight")
        elif now < memory.next_try_at:
            decision.notes.append(f"{region.region}: backing off for {memory.next_try_at - now:.0f} s more "
                                  f"({memory.failure_kind or 'failed'}: {memory.last_error})")
        else:
            candidates.append(region)
    if not candidates:
        return
    cap = spec.max_hourly_price
    prices = obs.prices
    if cap is not None and prices is not None:
        if prices.per_hour is None:
            text = f"no launch: the fleet's price is unknown ({prices.unknown}) and max_hourly_price is set"
            _emit(state, decision.alerts, Alert(AlertKind.PRICE_CAP, FLEET, text), now, cooldown)
            decision.notes.append(text)
            return
        if prices.per_hour > cap:
            text = f"no launch: the fleet costs ${prices.per_hour:.4f}/h, over max_hourly_price ${cap:.4f}/h"
            _emit(state, decision.alerts, Alert(AlertKind.PRICE_CAP, FLEET, text), now, cooldown)
            decision.notes.append(text)
            return
    for region in candidates:
        if len(state.launches) >= spec.max_launches_per_hour:
            text = (f"no launch for {region.region}: {len(state.launches)} launch(es) in the last hour "
                    f"(max_launches_per_hour {spec.max_launches_per_hour})")
            _emit(state, decision.alerts, Alert(AlertKind.LAUNCH_BUDGET, FLEET, text), now, cooldown)
            decision.notes.append(text)
            continue
        assert region.action is not None
        decision.heal.append(RegionHeal(region.region, region.cluster, region.action))
        state.launches.append(now)
        if state.region(region.region).failures == 0:
            # Each heal is news; a retry after a failure is not (the open heal_failed problem covers it).
            decision.alerts.append(Alert(AlertKind.HEAL_STARTED, region.region,
                                         f"{region.region}: {region.action.describe()}"))


def _snapshot(obs: Observation) -> list[NodeSnapshot]:
    found = []
    for node in obs.nodes:
        health = node.health
        view = health.orchestrator if health is not None else None
        orchestrator = "-" if view is None else f"{view.connection} {view.approval or ''}".strip()
        images = health.images if health is not None else {}
        found.append(NodeSnapshot(node.node, node.region, str(health.health) if health else "not checked",
                                  list(health.failing) if health else [], orchestrator,
                                  images.get("bacalhau", ""), images.get("sensor", ""), node.interruption))
    return found


def _record_sample(state: WatchState, obs: Observation) -> None:
    state.nodes = _snapshot(obs)
    if obs.prices is not None:
        regions = {r.cluster: r.region for r in obs.regions}
        state.prices = {regions.get(c.cluster, c.cluster): c.per_hour for c in obs.prices.clusters}
    healthy: dict[str, int] = {}
    up: dict[str, int] = {}
    for node in obs.nodes:
        up[node.region] = up.get(node.region, 0) + 1
        if node.health is not None and node.health.health.ok:
            healthy[node.region] = healthy.get(node.region, 0) + 1
    state.add_sample(Sample(obs.at, {r.region: [up.get(r.region, 0), r.wanted, healthy.get(r.region, 0)]
                                     for r in obs.regions}))


def backoff_seconds(spec: WatchSpec, failures: int, kind: FailureKind | None, jitter: float) -> float:
    """How long a region waits after `failures` failed launches in a row (jitter in [0, 1))."""
    if kind is FailureKind.CREDENTIALS:
        return float(spec.backoff_max_seconds)  # a person must act: retrying sooner changes nothing
    exponential = min(float(spec.backoff_max_seconds), spec.backoff_min_seconds * 2.0 ** max(0, failures - 1))
    return max(float(spec.backoff_min_seconds), exponential * (0.5 + 0.5 * jitter))


def after_heal(state: WatchState, outcomes: Iterable[ClusterOutcome], spec: WatchSpec, now: float,
               jitter: float) -> list[Alert]:
    """Remember what the heal did (backoff on failure, reset on success); the alerts it causes. Changes `state`."""
    alerts: list[Alert] = []
    cooldown = float(spec.alert_cooldown_seconds)
    for outcome in outcomes:
        memory = state.region(outcome.region)
        state.count("fleet_watch_launches_total", outcome.region)
        if outcome.ok:
            state.regions[outcome.region] = type(memory)()
            state.count("fleet_watch_heals_total", outcome.region)
            state.problems.pop(f"{AlertKind.HEAL_FAILED}:{outcome.region}", None)  # heal_done says it
            continue
        memory.failures += 1
        delay = backoff_seconds(spec, memory.failures, outcome.failure, jitter)
        memory.next_try_at = now + delay
        memory.last_error = outcome.error or "failed"
        memory.failure_kind = str(outcome.failure or FailureKind.UNKNOWN)
        state.count("fleet_watch_launch_failures_total", outcome.region)
        text = f"{outcome.region}: {memory.last_error} (next try in {delay:.0f} s)"
        _open(state, alerts, Alert(AlertKind.HEAL_FAILED, outcome.region, text), now, cooldown)
    return alerts


def after_configure(state: WatchState, reasons: dict[str, Reason], ok: dict[str, bool], messages: dict[str, str],
                    healed: dict[str, tuple[str, list[str]]], spec: WatchSpec, now: float) -> list[Alert]:
    """Alerts and counters for the nodes the watcher configured, and `heal_done` for each healed region
    (`healed`: region -> (what the provider did, its new nodes)). Changes `state`."""
    alerts: list[Alert] = []
    cooldown = float(spec.alert_cooldown_seconds)
    for region, (outcome, new_nodes) in sorted(healed.items()):
        configured = [n for n in new_nodes if ok.get(n)]
        text = f"{region}: {outcome}; {len(new_nodes)} new node(s), {len(configured)} configured"
        if new_nodes:
            text += f" ({', '.join(new_nodes)})"
        alerts.append(Alert(AlertKind.HEAL_DONE, region, text))  # each heal is news: never held back
    for node, reason in sorted(reasons.items()):
        if node not in ok:
            continue
        if not ok[node]:
            text = f"{node}: configure ({reason}) failed: {messages.get(node) or 'see the run log'}"
            _emit(state, alerts, Alert(AlertKind.CONFIGURE_FAILED, node, text), now, cooldown)
            continue
        state.count("fleet_watch_configures_total", str(reason))
        if reason is Reason.DRIFT:
            state.count("fleet_watch_drift_fixes_total")
            _emit(state, alerts, Alert(AlertKind.DRIFT_FIXED, node, f"{node}: drift fixed"), now, cooldown)
    return alerts

