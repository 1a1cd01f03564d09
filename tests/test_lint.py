"""The Ansible content passes ansible-lint (production profile) and yamllint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_yamllint() -> None:
    result = _run(str(BIN / "yamllint"), "-s", "playbooks", "roles", "inventory", "requirements.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile() -> None:
    result = _run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", "playbooks", "roles")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


def test_mypy_strict_on_the_package() -> None:
    result = _run(str(BIN / "mypy"))  # settings in pyproject.toml: strict on fleetdeploy/
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_ruff() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-cache", "fleetdeploy", "playbooks", "scripts")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
