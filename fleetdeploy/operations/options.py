"""Typed options of each command. cli.py builds them from argparse; each checks its own values when it is made
(InputError, exit 2, before anything is read or started), so commands never see an argparse Namespace."""

from __future__ import annotations

import datetime
import enum
import math
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.fleet.configure_spec import ConfigureMode
from fleetdeploy.fleet.rolling_spec import DEFAULT_BATCH as DEFAULT_BATCH
from fleetdeploy.fleet.rolling_spec import RollingSpec, batch_shape

DEFAULT_JOIN_TIMEOUT_S = 180.0
# How long up, configure and down wait for the fleet lock (a watcher's tick, another command) before giving up.
DEFAULT_LOCK_WAIT_S = 300.0
MAX_JOIN_TIMEOUT_S = 3600.0


def batch_size(spec: str, total: int) -> int:
    """`N` nodes or `N%` of the fleet (rounded up, at least 1). InputError for anything else."""
    shape = batch_shape(spec)
    if shape is None:
        raise InputError(f"--batch {spec!r}: give a node count (e.g. 2) or a percentage from 1% to 100% (e.g. 25%)")
    number, percent = shape
    if percent:
        return max(1, math.ceil(total * number / 100))
    return number


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass(frozen=True)
class GlobalOptions:
    fleet_file: Path
    local: bool = False  # use the local provider whatever the fleet file says
    output: OutputFormat = OutputFormat.TABLE


def _join_timeout(value: float) -> None:
    if not 0 < value <= MAX_JOIN_TIMEOUT_S:
        raise InputError(f"--join-timeout must be more than 0 and at most {MAX_JOIN_TIMEOUT_S:g} seconds")


def _lock_wait(value: float) -> None:
    if not 0 <= value <= MAX_JOIN_TIMEOUT_S:
        raise InputError(f"--lock-wait must be 0 to {MAX_JOIN_TIMEOUT_S:g} seconds")


def _names(limit: tuple[str, ...]) -> tuple[str, ...]:
    """`--limit a,b --limit c` -> ("a", "b", "c")."""
    return tuple(item.strip() for entry in limit for item in entry.split(",") if item.strip())


@dataclass(frozen=True)
class UpOptions:
    reconfigure_all: bool = False
    skip_health: bool = False
    join_timeout: float = DEFAULT_JOIN_TIMEOUT_S
    lock_wait: float = DEFAULT_LOCK_WAIT_S
    configure_mode: ConfigureMode | None = None  # None: the fleet file's configure.mode

    def __post_init__(self) -> None:
        _join_timeout(self.join_timeout)
        _lock_wait(self.lock_wait)


@dataclass(frozen=True)
class PlanOptions:
    pass


@dataclass(frozen=True)
class StatusOptions:
    pass


@dataclass(frozen=True)
class RollingOptions:
    """--batch and --max-unhealthy as given; None means the fleet file's `rolling:` value (or its default)."""

    batch: str | None = None  # a node count or a share of the fleet ("25%")
    max_unhealthy: int | None = None

    def __post_init__(self) -> None:
        if self.batch is not None:
            batch_size(self.batch, 1)  # the shape; the size follows from the fleet later
        if self.max_unhealthy is not None and self.max_unhealthy < 0:
            raise InputError("--max-unhealthy must be 0 or more")

    def over(self, spec: RollingSpec) -> tuple[str, int]:
        """The batch and the unhealthy allowance: each flag given wins over the fleet file's `rolling:`."""
        batch = spec.batch if self.batch is None else self.batch
        return batch, spec.max_unhealthy if self.max_unhealthy is None else self.max_unhealthy


@dataclass(frozen=True)
class ConfigureOptions:
    check: bool = False
    full: bool = False
    limit: tuple[str, ...] = ()  # node names, instance ids or unique prefixes
    rolling: RollingOptions | None = None
    join_timeout: float = DEFAULT_JOIN_TIMEOUT_S
    lock_wait: float = DEFAULT_LOCK_WAIT_S
    configure_mode: ConfigureMode | None = None  # None: the fleet file's configure.mode

    def __post_init__(self) -> None:
        _join_timeout(self.join_timeout)
        _lock_wait(self.lock_wait)
        object.__setattr__(self, "limit", _names(self.limit))


@dataclass(frozen=True)
class HealthOptions:
    limit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _names(self.limit))


@dataclass(frozen=True)
class CanaryOptions:
    limit: tuple[str, ...] = ()
    timeout: float | None = None  # None: the fleet file's canary.timeout_seconds

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _names(self.limit))
        if self.timeout is not None and not 0 < self.timeout <= MAX_JOIN_TIMEOUT_S:
            raise InputError(f"--timeout must be more than 0 and at most {MAX_JOIN_TIMEOUT_S:g} seconds")


@dataclass(frozen=True)
class SshOptions:
    node: str
    command: tuple[str, ...] = ()  # empty: a login shell


class Service(enum.StrEnum):
    BACALHAU = "bacalhau"
    SENSOR = "sensor"


@dataclass(frozen=True)
class LogsOptions:
    node: str
    service: Service = Service.BACALHAU
    tail: int = 100

    def __post_init__(self) -> None:
        if self.tail < 1:
            raise InputError("--tail must be at least 1")


@dataclass(frozen=True)
class ExecOptions:
    target: str  # a node, or "all"
    command: tuple[str, ...]
    sudo: bool = False

    def __post_init__(self) -> None:
        if not self.command:
            raise InputError("exec needs a command to run, e.g. `deploy.py exec all uptime`")


@dataclass(frozen=True)
class InventoryOptions:
    print_it: bool = False  # the YAML itself on stdout, nothing else


@dataclass(frozen=True)
class DownOptions:
    yes: bool = False
    lock_wait: float = DEFAULT_LOCK_WAIT_S

    def __post_init__(self) -> None:
        _lock_wait(self.lock_wait)


@dataclass(frozen=True)
class WatchOptions:
    interval: int | None = None  # seconds between ticks (default: the fleet file's watch.interval_seconds)
    once: bool = False  # one tick, then exit 0 (all well) or 1 (something still wrong)
    metrics_port: int | None = None  # serve /metrics on 127.0.0.1:PORT

    def __post_init__(self) -> None:
        if self.interval is not None and not 1 <= self.interval <= 86400:
            raise InputError("--interval must be 1 to 86400 seconds")
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise InputError("--metrics-port must be 1 to 65535")


@dataclass(frozen=True)
class ReportOptions:
    file: Path | None = None  # default: report.html in the fleet's state dir (the one `watch` refreshes)


DEFAULT_COST_DAYS = 30  # SkyPilot's own default window for its cost report


@dataclass(frozen=True)
class CostOptions:
    days: int = DEFAULT_COST_DAYS

    def __post_init__(self) -> None:
        if self.days < 1:
            raise InputError(f"--days must be at least 1 (got {self.days})")


@dataclass(frozen=True)
class ImportLegacyOptions:
    config: Path  # the legacy deployer's config.yaml
    files_dir: Path | None = None  # where its orchestrator_endpoint / orchestrator_token are, if not the usual places
    name: str | None = None  # the fleet's name (default: the config's tags.Project, else its directory's name)


@dataclass(frozen=True)
class EventsOptions:
    since: datetime.datetime | None = None  # only events at or after this time (UTC)


CommandOptions = (UpOptions | PlanOptions | StatusOptions | ConfigureOptions | HealthOptions | SshOptions
                  | LogsOptions | ExecOptions | InventoryOptions | DownOptions | WatchOptions | EventsOptions
                  | ReportOptions | ImportLegacyOptions | CostOptions | CanaryOptions)


def parse_since(text: str, now: datetime.datetime) -> datetime.datetime:
    """`--since`: an ISO-8601 time (UTC unless it says otherwise) or a duration back from now (90s, 30m, 2h, 7d)."""
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return now - datetime.timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--since {text!r}: give an ISO-8601 time (2026-12-06T10:00:00Z) or a duration "
                         "(30m, 2h, 7d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
