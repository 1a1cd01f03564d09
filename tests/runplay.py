"""Run a playbook with the real ansible-playbook and read what it did from its JSON (the json stdout callback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class PlayRun:
    rc: int
    stdout: str
    stderr: str
    document: dict[str, Any]

    def _tasks(self, name: str) -> list[dict[str, Any]]:
        found = [task for play in self.document.get("plays", []) for task in play.get("tasks", [])
                 if task["task"]["name"] == name]
        assert found, f"no task named {name!r} ran"
        return found

    def result(self, task: str) -> dict[str, Any]:
        """The result of a task that ran once (run_once): the one host's result."""
        hosts = self._tasks(task)[0]["hosts"]
        assert len(hosts) == 1, f"{task!r} ran on {sorted(hosts)}"
        return dict(next(iter(hosts.values())))

    def facts(self, host: str, task: str) -> dict[str, Any]:
        return dict(self._tasks(task)[0]["hosts"][host].get("ansible_facts") or {})

    def skipped(self, task: str) -> bool:
        return all(result.get("skipped") for result in self._tasks(task)[0]["hosts"].values())


def run_playbook(playbook: Path, inventory: Path | None, *args: str, timeout: int = 600,
                 env: dict[str, str] | None = None) -> PlayRun:
    """ansible-playbook from this venv with the repo's ansible.cfg (its inventory/ when `inventory` is None)."""
    bin_dir = Path(sys.executable).parent
    base = dict(env if env is not None else os.environ)
    base.update(PATH=f"{bin_dir}{os.pathsep}{base.get('PATH', '')}", ANSIBLE_STDOUT_CALLBACK="json",
                ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    where = ["-i", str(inventory)] if inventory is not None else []
    proc = subprocess.run([str(bin_dir / "ansible-playbook"), *where, str(playbook), *args],
                          cwd=REPO, env=base, capture_output=True, text=True, timeout=timeout)
    try:
        document = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"ansible-playbook printed no JSON (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}") from None
    return PlayRun(proc.returncode, proc.stdout, proc.stderr, document)
