"""The fleet file's `canary:` section: the job `deploy.py canary` runs on every node through the orchestrator."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from fleetdeploy.fleet.files import check_readable_file, resolve_path
from fleetdeploy.fleet.fleetfile import KeyPathError
from fleetdeploy.fleet.image_ref import check_image
from fleetdeploy.fleet.regions import StrictModel

# Any image with python3 (its sqlite3 module) will do; the job runs without network, so nothing else is fetched.
DEFAULT_CANARY_IMAGE = "docker.io/library/python:3.12-slim"


class CanarySpec(StrictModel):
    image: str = DEFAULT_CANARY_IMAGE
    # A `docker save` archive holding the image, loaded on every node by the bacalhau role (air-gapped nodes,
    # local fleets); without it the node's Bacalhau pulls the image when the job runs.
    archive: Path | None = None
    # How long `canary` waits for every node's job before it reports the rest as not finished.
    timeout_seconds: int = Field(default=120, ge=10, le=3600)
    # A node's sensor must have written within this long before its job ran (else: is the sensor running?).
    max_data_age_seconds: int = Field(default=120, ge=5, le=86400)

    _resolve = field_validator("archive", mode="before")(resolve_path)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        return check_image(value)

    @model_validator(mode="after")
    def _archive(self) -> CanarySpec:
        if self.archive is not None:
            try:
                check_readable_file(self.archive)
            except ValueError as exc:
                raise KeyPathError("archive", str(exc)) from None
        return self
