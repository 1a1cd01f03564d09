"""The SkyPilot provider: one cluster per region on AWS, GCP or Azure spot instances, through the SkyPilot SDK."""

from fleetdeploy.providers.registry import ProviderEntry, register

register(ProviderEntry(
    name="skypilot",
    factory="fleetdeploy.providers.skypilot.provider:make",
    summary="spot instances on AWS, GCP or Azure through SkyPilot, one cluster per region",
    settings_key="skypilot",
))
