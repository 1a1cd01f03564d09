"""The fleet file's `skypilot:` section (provider skypilot only): which SkyPilot API server keeps the fleet's state."""

from __future__ import annotations

from pydantic import field_validator

from fleetdeploy.fleet.orchestrator_spec import normalize_api_url
from fleetdeploy.fleet.regions import StrictModel


class SkyPilotSpec(StrictModel):
    # A team's shared API server (`sky api login -e URL` logs this machine in). It wins over the environment's
    # SKYPILOT_API_SERVER_ENDPOINT; without either, SkyPilot's own choice (its config, else a local server).
    api_server: str | None = None

    @field_validator("api_server")
    @classmethod
    def _api_server(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip() == "local":
            raise ValueError("must be the server's URL (http(s)://host[:port]); leave it out for a local server")
        if "@" in value:
            # A URL's user:password would sit in the fleet file and every process list: SkyPilot's login keeps them.
            raise ValueError("must not contain credentials: run `sky api login -e URL` once on this machine instead")
        return normalize_api_url(value)
