"""The fleet file's `watch:` section: how `deploy.py watch` supervises the fleet (defaults in fleet.example.yaml)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from fleetdeploy.fleet.files import resolve_path
from fleetdeploy.fleet.fleetfile import KeyPathError
from fleetdeploy.fleet.regions import StrictModel


class WatchSpec(StrictModel):
    interval_seconds: int = Field(default=60, ge=1, le=86400)
    # Ticks in a row a node must be unhealthy (its checks, or the orchestrator's view) before it is configured.
    unhealthy_ticks: int = Field(default=3, ge=1, le=1000)
    # A region whose launch failed waits this long before the next try, doubling (with jitter) up to the max.
    backoff_min_seconds: int = Field(default=60, ge=1, le=86400)
    backoff_max_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    # The same alert (kind and subject) is not sent again within this time.
    alert_cooldown_seconds: int = Field(default=1800, ge=0, le=7 * 86400)
    max_launches_per_hour: int = Field(default=10, ge=0, le=10000)
    # USD per hour for the whole fleet, checked against the catalog price before any launch (none: no cap).
    max_hourly_price: float | None = Field(default=None, gt=0)
    # JSON POST (with a Slack-compatible `text`) on every transition; the URL may hold a secret: never logged.
    webhook_url: str | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # node_exporter textfile collector file (*.prom), written atomically every tick.
    metrics_textfile: Path | None = None

    _resolve = field_validator("metrics_textfile", mode="before")(resolve_path)

    @field_validator("max_hourly_price", mode="before")
    @classmethod
    def _price(cls, value: object) -> object:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s):// URL")
        return value.strip()

    @field_validator("metrics_textfile")
    @classmethod
    def _textfile(cls, value: Path | None) -> Path | None:
        if value is not None and value.suffix != ".prom":
            raise ValueError("must end in .prom (node_exporter's textfile collector reads only those)")
        if value is not None and not value.parent.is_dir():
            raise ValueError(f"{value.parent}: directory not found")
        return value

    @model_validator(mode="after")
    def _backoff(self) -> WatchSpec:
        if self.backoff_max_seconds < self.backoff_min_seconds:
            raise KeyPathError("backoff_max_seconds", "must be >= backoff_min_seconds")
        return self
