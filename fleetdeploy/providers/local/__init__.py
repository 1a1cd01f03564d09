"""The local provider: fleet nodes are systemd containers on this machine's Docker engine."""

from fleetdeploy.providers.registry import ProviderEntry, register

register(ProviderEntry(
    name="local",
    factory="fleetdeploy.providers.local.provider:make",
    summary="container nodes on this machine's Docker engine (no cloud account)",
    settings_key="local",
    runs_local_orchestrator=True,
))
