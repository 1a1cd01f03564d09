"""The fleet file's `rolling:` section: the defaults of `configure --rolling` (its flags win)."""

from __future__ import annotations

from pydantic import Field, field_validator

from fleetdeploy.fleet.regions import StrictModel

DEFAULT_BATCH = "25%"


def batch_shape(spec: str) -> tuple[int, bool] | None:
    """`"3"` -> (3, False), `"25%"` -> (25, True); None unless a count >= 1 or a share of 1% to 100%."""
    text = spec.strip()
    percent = text.endswith("%")
    number = text[:-1] if percent else text
    if not number.isdigit() or int(number) < 1 or (percent and int(number) > 100):
        return None
    return int(number), percent


class RollingSpec(StrictModel):
    # Nodes per batch: a count or a share of the nodes being configured, rounded up.
    batch: str = DEFAULT_BATCH
    # Unhealthy nodes tolerated (over all batches so far) before the roll stops.
    max_unhealthy: int = Field(default=0, ge=0, le=100000)

    @field_validator("batch", mode="before")
    @classmethod
    def _batch(cls, value: object) -> object:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or batch_shape(text) is None:
            raise ValueError("give a node count (e.g. 2) or a percentage from 1% to 100% (e.g. 25%)")
        return text.strip()
