"""Which providers exist and how to make one. Each provider package registers itself in its `__init__.py` (one
ProviderEntry); its implementation module is imported only when a command needs the provider, so validating a
fleet file never imports SkyPilot. A new provider is one package plus its line in BUILTIN_PACKAGES."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetdeploy.fleet.model import Fleet
    from fleetdeploy.providers.base import Provider

BUILTIN_PACKAGES = ("fleetdeploy.providers.local", "fleetdeploy.providers.skypilot")
# What `--local` switches a fleet to.
LOCAL_PROVIDER = "local"
# Called with (fleet, state dir, notice) to make the provider.
ProviderFactory = Callable[["Fleet", Path, Callable[[str], None]], "Provider"]


@dataclass(frozen=True)
class ProviderEntry:
    name: str  # what the fleet file's `provider:` says
    factory: str  # "package.module:function", imported on first use
    summary: str
    # The fleet file's section that only this provider reads (e.g. `local:`), if any.
    settings_key: str | None = None
    # May run the fleet's orchestrator itself (`orchestrator.endpoint: local`).
    runs_local_orchestrator: bool = False


_ENTRIES: dict[str, ProviderEntry] = {}


def register(entry: ProviderEntry) -> None:
    if entry.name in _ENTRIES and _ENTRIES[entry.name] != entry:
        raise ValueError(f"provider '{entry.name}' is registered twice")
    _ENTRIES[entry.name] = entry


def entries() -> dict[str, ProviderEntry]:
    """Every registered provider by name (importing the built-in packages registers them)."""
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    return dict(_ENTRIES)


def entry(name: str) -> ProviderEntry:
    return entries()[name]


def make_provider(fleet: Fleet, state_dir: Path, notice: Callable[[str], None]) -> Provider:
    """The fleet's provider, its module imported now (SkyPilot's still imports `sky` only when it talks to it)."""
    module_name, _, attribute = entry(fleet.provider).factory.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module_name), attribute)
    return factory(fleet, state_dir, notice)
