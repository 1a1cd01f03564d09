"""`deploy.py watch`: one supervisor per fleet. Every tick: observe → decide → act → record.

Shaped like SkyPilot's managed-jobs controller: a fixed gap between ticks, recovery through one strategy (the
provider's own `up`), backoff and budgets kept as data in the persisted state, so a restarted watcher resumes.
Stopping: SIGTERM ends with exit 0, Ctrl-C with 130; either one cancels the step under way the way Ctrl-C does in
any command (an Ansible run is stopped and its nodes are not counted as converged; node containers being created
finish or are removed), and the state is saved first.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.text import Text

from fleetdeploy.errors import InputError, Terminated
from fleetdeploy.fleet.model import Fleet, load_fleet
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.lock import LockBusy, fleet_lock_path, held, watcher_lock_path
from fleetdeploy.operations.options import DEFAULT_COST_DAYS, OutputFormat, WatchOptions
from fleetdeploy.paths import state_dir
from fleetdeploy.providers.base import ActionKind
from fleetdeploy.providers.registry import LOCAL_PROVIDER
from fleetdeploy.watch.act import act
from fleetdeploy.watch.alerts import WebhookSender, payload
from fleetdeploy.watch.decide import FLEET_FILE, close_problem, decide, problem_alert
from fleetdeploy.watch.events import EventLog
from fleetdeploy.watch.metrics import Metrics
from fleetdeploy.watch.model import Alert, AlertKind
from fleetdeploy.watch.observe import observe
from fleetdeploy.watch.report import REPORT_FILE, write_report
from fleetdeploy.watch.state import WatchState, load_state, save_state

FAILED_ALERTS = frozenset({AlertKind.HEAL_FAILED, AlertKind.CONFIGURE_FAILED})
COST_REFRESH_S = 600


@dataclass(frozen=True)
class TickResult:
    well: bool  # nothing is wrong any more, after acting
    line: str


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated in the main thread for the block (a KeyboardInterrupt: every cleanup applies)."""
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Supervisor:
    def __init__(self, fleet_file: Path, options: WatchOptions, local: bool, console: Console,
                 err_console: Console) -> None:
        self.fleet_file = fleet_file
        self.options = options
        self.local = local
        self.console = console
        self.err_console = err_console
        self.fleet = self._load()  # bad input stops here (exit 2), before any lock or state is touched
        self.dir = state_dir() / self.fleet.name
        self.events = EventLog(self.dir / "events.jsonl")
        self.state = WatchState()
        self.random = random.Random()
        self.sender: WebhookSender | None = None
        self.webhook = ""
        self.metrics: Metrics | None = None

    def _load(self) -> Fleet:
        fleet = load_fleet(self.fleet_file)
        if self.local and fleet.provider != LOCAL_PROVIDER:
            fleet = fleet.model_copy(update={"provider": LOCAL_PROVIDER})
        return fleet

    def say(self, line: str) -> None:
        self.console.print(Text(f"{time.strftime('%H:%M:%S')} {line}"), highlight=False)

    # ---- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> int:
        name = self.fleet.name
        with ExitStack() as stack:
            try:
                stack.enter_context(held(watcher_lock_path(state_dir(), name), "watch", what=f"fleet '{name}'"))
            except LockBusy as busy:
                who = busy.holder.describe() if busy.holder else "another process"
                raise InputError(f"a watcher already runs for fleet '{name}': {who}") from None
            stack.enter_context(sigterm_raises())
            self.state, why = load_state(self.dir / "watch-state.json")
            if why:
                self.say(why)
            self.metrics = Metrics(name, self.fleet.watch.metrics_textfile, self.options.metrics_port)
            self.metrics.publish(self.state, 0.0)  # the counters of earlier runs, before the first tick ends
            stack.callback(self._close)
            interval = self.options.interval or self.fleet.watch.interval_seconds
            self.events.append(time.time(), "watch_started", name, f"watching every {interval} s"
                               + (" (once)" if self.options.once else ""))
            try:
                while True:
                    result = self.tick()
                    self.say(result.line)
                    if self.options.once:
                        return 0 if result.well else 1
                    time.sleep(self.options.interval or self.fleet.watch.interval_seconds)
            except Terminated:
                self.say("terminated: state saved, stopping")
                self.events.append(time.time(), "watch_stopped", name, "SIGTERM")
                return 0
            except KeyboardInterrupt:
                self.events.append(time.time(), "watch_stopped", name, "interrupted")
                raise
        raise AssertionError("the watch loop ends only by returning or raising")

    def _close(self) -> None:
        save_state(self.dir / "watch-state.json", self.state)
        if self.sender is not None:
            self.sender.close(self.fleet.watch.webhook_timeout_seconds)
        if self.metrics is not None:
            self.metrics.close()

    # ---- one tick ---------------------------------------------------------------------------------------------
    def _reload(self, now: float) -> list[Alert]:
        """Read the fleet file again; keep the last good one (and alert once) when it is not valid."""
        spec = self.fleet.watch
        try:
            fleet = self._load()
            if fleet.name != self.fleet.name:
                raise InputError(f"{self.fleet_file}: name: a running watcher's fleet cannot be renamed")
        except InputError as exc:
            alert = Alert(AlertKind.FLEET_FILE_INVALID, FLEET_FILE, f"{exc}; still using the last valid file")
            return problem_alert(self.state, alert, now, spec.alert_cooldown_seconds)
        self.fleet = fleet
        return close_problem(self.state, AlertKind.FLEET_FILE_INVALID, FLEET_FILE, "valid again", now,
                             spec.alert_cooldown_seconds)

    def _publish(self, alerts: list[Alert], now: float) -> None:
        url = self.fleet.watch.webhook_url or ""
        if url != self.webhook:
            if self.sender is not None:
                self.sender.close(0)
            self.sender = WebhookSender(url, self.fleet.watch.webhook_timeout_seconds,
                                        lambda line: self.events.append(time.time(), "webhook_failed", "webhook",
                                                                        line)) if url else None
            self.webhook = url
        for alert in alerts:
            self.say(f"alert {alert.kind}: {alert.text}")
            self.events.append(now, str(alert.kind), alert.subject, alert.text)
            self.state.count("fleet_watch_alerts_total", str(alert.kind))
            if self.sender is not None:
                self.sender.send(payload(self.fleet.name, alert, now))

    def tick(self) -> TickResult:
        started, now = time.monotonic(), time.time()
        self._publish(self._reload(now), now)
        ctx = Context(fleet=self.fleet, output=OutputFormat.TABLE, console=self.console,
                      err_console=self.err_console)
        self.state.ticks += 1
        try:
            with held(fleet_lock_path(state_dir(), self.fleet.name), "watch tick", what=f"fleet '{self.fleet.name}'"):
                line, well = self._observe_decide_act(ctx, now)
        except LockBusy as busy:
            line, well = f"skipped: {busy}", False
        except Exception as exc:  # noqa: BLE001 - a supervisor outlives a failed tick; the next one tries again
            problem = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
            self.events.append(time.time(), "tick_failed", self.fleet.name, problem)
            line, well = f"failed: {problem} (the next tick tries again)", False
        finally:
            save_state(self.dir / "watch-state.json", self.state)
            if self.metrics is not None:
                self.metrics.publish(self.state, time.monotonic() - started)
            write_report(self.dir / REPORT_FILE, self.fleet.name, self.fleet.provider, self.state, self.events,
                         time.time())
        return TickResult(well, f"tick {self.state.ticks}: {line} ({time.monotonic() - started:.1f} s)")

    def _refresh_cost(self, ctx: Context, now: float) -> None:
        """The fleet's cost so far for the report page, read at most every COST_REFRESH_S (SkyPilot reads it from
        its API server; the figure moves slowly)."""
        if now - self.state.cost_at < COST_REFRESH_S:
            return
        self.state.note_cost(ctx.provider.costs(DEFAULT_COST_DAYS), now)

    def _observe_decide_act(self, ctx: Context, now: float) -> tuple[str, bool]:
        spec = self.fleet.watch
        observation, nodes = observe(ctx)
        decision, self.state = decide(observation, spec, self.state, self.random.random())
        self._refresh_cost(ctx, now)
        self._publish(decision.alerts, now)
        save_state(self.dir / "watch-state.json", self.state)  # before acting: a launch counts even if we die in it
        for note in decision.notes:
            self.say(note)
        if not observation.provider_error:
            self.state.last_good_tick = time.time()
        up, wanted = len(observation.nodes), sum(r.wanted for r in observation.regions)
        healthy = sum(1 for n in observation.nodes if n.health is not None and n.health.health.ok)
        seen = f"{up}/{wanted} nodes up, {healthy} healthy"
        if decision.hold:
            return f"{seen}; {decision.hold}", False
        if not decision.acts:
            return f"{seen}; nothing to do", self._well(observation.provider_error) and not decision.notes
        acted = act(ctx, decision, nodes, spec, self.state, now, self.random.random(), self.say)
        self._publish(acted, time.time())
        did = "; ".join([*([f"heal {', '.join(h.region for h in decision.heal)}"] if decision.heal else []),
                         *([f"configure {', '.join(sorted(decision.configure))}"] if decision.configure else [])])
        if any(a.kind in FAILED_ALERTS for a in acted) or not self.options.once:
            return f"{seen}; {did}", not any(a.kind in FAILED_ALERTS for a in acted) and self._well("")
        # --once answers for the fleet after acting: look again (changing nothing) before saying all is well.
        after, _ = observe(ctx)
        fine = (all(r.action is not None and r.action.kind is ActionKind.NOTHING for r in after.regions)
                and all(n.health is not None and n.health.health.ok and n.converged is not False
                        for n in after.nodes)
                and (after.orchestrator is None or not after.orchestrator.error))
        return f"{seen}; {did}; after: {'all well' if fine else 'still not well'}", fine and not after.provider_error

    def _well(self, provider_error: str) -> bool:
        backing_off = any(m.next_try_at > time.time() for m in self.state.regions.values())
        return not (provider_error or self.state.problems or self.state.unhealthy_ticks or backing_off)
