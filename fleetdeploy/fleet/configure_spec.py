"""The fleet file's `configure:` section: how nodes are configured (`--configure-mode` wins for one run)."""

from __future__ import annotations

import enum
from typing import Literal

from fleetdeploy.fleet.regions import StrictModel


class ConfigureMode(enum.StrEnum):
    # ansible-playbook on the controller runs every task over SSH (the design card's path: playbooks/site.yml).
    CONTROLLER = "controller"
    # Each node runs the same playbook itself from a bundle the controller streams over one SSH session.
    NODE = "node"


class ConfigureSpec(StrictModel):
    # Strict models take YAML's own types: the text, turned into the enum by `configure_mode`. The default is the
    # benchmark's choice (issue 20): node mode's first configure costs the controller ~50x less CPU per node at
    # N = 20, for the same wall time at N = 5 (docs/benchmark.md).
    mode: Literal["controller", "node"] = "node"

    @property
    def configure_mode(self) -> ConfigureMode:
        return ConfigureMode(self.mode)
