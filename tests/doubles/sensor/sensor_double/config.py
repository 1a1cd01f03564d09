"""The simulator's config keys that matter to a deployment (facts.md: Sensor); other keys are ignored, like upstream."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SensorConfigError(Exception):
    """The simulator would stop on this config (and exit 0: its quirk)."""


@dataclass(frozen=True)
class SensorConfig:
    database_path: str
    log_level: str
    run_time_seconds: float
    readings_per_second: float
    monitor_host: str
    monitor_port: int


def _positive(section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SensorConfigError(f"simulation.{key} must be a positive number")
    return float(value)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise SensorConfigError(f"{key} must be a mapping")
    return value


def load_config(path: str) -> SensorConfig:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise SensorConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SensorConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SensorConfigError(f"config file {path} must contain a mapping")

    database = _section(data, "database")
    db_path = database.get("path")
    if not isinstance(db_path, str) or not db_path:
        raise SensorConfigError("database.path is required")
    # Relative to the working directory, which is /app in the image (upstream behaviour).
    db_path = os.path.abspath(db_path)

    level = _section(data, "logging").get("level", "INFO")
    if level not in LEVELS:
        # Upstream passes the name to logging.setLevel, which only knows upper-case names.
        raise SensorConfigError(f"logging.level {level!r} is not one of {', '.join(LEVELS)}")

    simulation = _section(data, "simulation")
    monitoring = _section(data, "monitoring")
    port = monitoring.get("port", 8080)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise SensorConfigError("monitoring.port must be a port number")
    return SensorConfig(
        database_path=db_path,
        log_level=level,
        run_time_seconds=_positive(simulation, "run_time_seconds", 3600),
        readings_per_second=_positive(simulation, "readings_per_second", 1),
        monitor_host=str(monitoring.get("host", "0.0.0.0")),
        monitor_port=port,
    )
