"""The SkyPilot provider: one cluster per region on AWS spot instances, through the SkyPilot SDK."""

from fleetdeploy.providers.registry import ProviderEntry, register

register(ProviderEntry(
    name="skypilot",
    factory="fleetdeploy.providers.skypilot.provider:make",
    summary="AWS spot instances through SkyPilot, one cluster per region",
))
