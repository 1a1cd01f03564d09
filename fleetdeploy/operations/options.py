"""Typed options of each command. cli.py builds them from argparse; each checks its own values when it is made
(InputError, exit 2, before anything is read or started), so commands never see an argparse Namespace."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path

from fleetdeploy.errors import InputError

DEFAULT_BATCH = "25%"
DEFAULT_JOIN_TIMEOUT_S = 180.0
MAX_JOIN_TIMEOUT_S = 3600.0


def batch_size(spec: str, total: int) -> int:
    """`N` nodes or `N%` of the fleet (rounded up, at least 1). InputError for anything else."""
    text = spec.strip()
    percent = text.endswith("%")
    number = text[:-1] if percent else text
    if not number.isdigit() or int(number) < 1 or (percent and int(number) > 100):
        raise InputError(f"--batch {spec!r}: give a node count (e.g. 2) or a percentage from 1% to 100% (e.g. 25%)")
    if percent:
        return max(1, math.ceil(total * int(number) / 100))
    return int(number)


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


def _names(limit: tuple[str, ...]) -> tuple[str, ...]:
    """`--limit a,b --limit c` -> ("a", "b", "c")."""
    return tuple(item.strip() for entry in limit for item in entry.split(",") if item.strip())


@dataclass(frozen=True)
class UpOptions:
    reconfigure_all: bool = False
    skip_health: bool = False
    join_timeout: float = DEFAULT_JOIN_TIMEOUT_S

    def __post_init__(self) -> None:
        _join_timeout(self.join_timeout)


@dataclass(frozen=True)
class PlanOptions:
    pass


@dataclass(frozen=True)
class StatusOptions:
    pass


@dataclass(frozen=True)
class RollingOptions:
    batch: str = DEFAULT_BATCH  # a node count or a share of the fleet ("25%")
    max_unhealthy: int = 0

    def __post_init__(self) -> None:
        batch_size(self.batch, 1)  # the shape; the size follows from the fleet later
        if self.max_unhealthy < 0:
            raise InputError("--max-unhealthy must be 0 or more")


@dataclass(frozen=True)
class ConfigureOptions:
    check: bool = False
    full: bool = False
    limit: tuple[str, ...] = ()  # node names, instance ids or unique prefixes
    rolling: RollingOptions | None = None
    join_timeout: float = DEFAULT_JOIN_TIMEOUT_S

    def __post_init__(self) -> None:
        _join_timeout(self.join_timeout)
        object.__setattr__(self, "limit", _names(self.limit))


@dataclass(frozen=True)
class HealthOptions:
    limit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit", _names(self.limit))


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


CommandOptions = (UpOptions | PlanOptions | StatusOptions | ConfigureOptions | HealthOptions | SshOptions
                  | LogsOptions | ExecOptions | InventoryOptions | DownOptions)
