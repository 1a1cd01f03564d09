"""Each role's molecule scenario (create, prepare, converge, idempotence, verify, destroy) on a local node image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent.parent.name for p in REPO.glob("roles/*/molecule/default/molecule.yml"))

pytestmark = pytest.mark.molecule


def test_every_role_has_a_molecule_scenario() -> None:
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_scenario(role: str) -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("a Docker engine is required for the molecule scenarios (run scripts/setup.sh)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               ANSIBLE_NOCOLOR="1", PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(["molecule", "test"], cwd=REPO / "roles" / role, env=env,
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"molecule test failed for {role}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
