"""What the watcher remembers between ticks and across restarts: backoff per region, launches in the last hour,
unhealthy streaks, alerts sent, open problems, the nodes seen last tick, counters and a day of samples.

Kept as one JSON file in the fleet's state dir (0600, replaced atomically after every tick), so a restarted watcher
resumes where it stopped: no relaunch storm, no repeated alerts. Every collection in it is bounded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import TypeAdapter

from fleetdeploy.private_files import write_private
from fleetdeploy.providers.base import FleetCost

STATE_VERSION = 1
HISTORY_SECONDS = 24 * 3600
SAMPLE_GAP_SECONDS = 60.0  # at most one timeline sample a minute, whatever the interval
MAX_ALERT_KEYS = 1000


@dataclass
class RegionMemory:
    failures: int = 0  # launches failed in a row
    next_try_at: float = 0.0  # no launch before this time (epoch seconds)
    last_error: str = ""
    failure_kind: str = ""


@dataclass
class Sample:
    at: float
    regions: dict[str, list[int]]  # region -> [up, wanted, healthy]


@dataclass
class NodeSnapshot:
    """One node as the last tick saw it (what the report page shows)."""

    node: str
    region: str
    health: str
    failing: list[str] = field(default_factory=list)
    orchestrator: str = "-"  # "CONNECTED APPROVED", "DISCONNECTED APPROVED", "not listed", "-" (no API)
    bacalhau: str = ""
    sensor: str = ""
    interruption: str = ""  # a spot interruption notice ("" when none)


@dataclass
class WatchState:
    version: int = STATE_VERSION
    regions: dict[str, RegionMemory] = field(default_factory=dict)
    launches: list[float] = field(default_factory=list)  # when launches were submitted (the last hour)
    unhealthy_ticks: dict[str, int] = field(default_factory=dict)  # node -> unhealthy ticks in a row
    repair_tried: list[str] = field(default_factory=list)  # nodes configured for being unhealthy (this streak)
    alerts_sent: dict[str, float] = field(default_factory=dict)  # alert key -> when last sent
    problems: dict[str, str] = field(default_factory=dict)  # open problem key -> its text (for "recovered")
    known_nodes: dict[str, str] = field(default_factory=dict)  # node -> region, as seen by the last tick
    counters: dict[str, float] = field(default_factory=dict)  # "<metric>|<region>" -> total
    history: list[Sample] = field(default_factory=list)
    nodes: list[NodeSnapshot] = field(default_factory=list)  # the last tick's nodes
    prices: dict[str, float | None] = field(default_factory=dict)  # region -> $/h as wanted (None: unknown)
    last_good_tick: float = 0.0
    ticks: int = 0
    cost: float | None = None  # dollars so far (the provider's figure), None: not read yet or unreadable
    cost_basis: str = ""  # what `cost` is, e.g. an estimate at list prices
    cost_at: float = 0.0  # when `cost` was read

    def region(self, name: str) -> RegionMemory:
        return self.regions.setdefault(name, RegionMemory())

    def count(self, metric: str, label: str = "", by: float = 1.0) -> None:
        key = f"{metric}|{label}"
        self.counters[key] = self.counters.get(key, 0.0) + by

    def prune(self, now: float) -> None:
        """Drop what is too old to matter, so the state (and the process) stays the same size for weeks."""
        self.launches = [t for t in self.launches if now - t < 3600]
        self.history = [s for s in self.history if now - s.at < HISTORY_SECONDS]
        if len(self.alerts_sent) > MAX_ALERT_KEYS:
            newest = sorted(self.alerts_sent.items(), key=lambda item: item[1])[-MAX_ALERT_KEYS:]
            self.alerts_sent = dict(newest)

    def note_cost(self, found: FleetCost, at: float) -> None:
        """The fleet's cost so far as read at `at` (the report page shows it), or why it is unknown."""
        self.cost, self.cost_basis = found.summary()
        self.cost_at = at

    def add_sample(self, sample: Sample) -> None:
        if self.history and sample.at - self.history[-1].at < SAMPLE_GAP_SECONDS:
            self.history[-1] = sample  # the newest sample of the minute stands for it
        else:
            self.history.append(sample)


def load_state(path: Path) -> tuple[WatchState, str]:
    """The saved state, or a fresh one and why the saved one could not be used ("" when there was none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return WatchState(), ""
    except (OSError, ValueError) as exc:
        return WatchState(), f"{path}: unreadable ({type(exc).__name__}); starting afresh"
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        return WatchState(), f"{path}: written by another version; starting afresh"
    try:
        return TypeAdapter(WatchState).validate_python(data), ""
    except ValueError as exc:  # pydantic's ValidationError is one
        return WatchState(), f"{path}: malformed ({type(exc).__name__}); starting afresh"


def save_state(path: Path, state: WatchState) -> None:
    write_private(path, json.dumps(asdict(state), sort_keys=True) + "\n")
