"""Runs Ansible through the ansible-runner Python API, reporting per-host progress to an observer.

Secrets never travel through here: the inventory holds only paths of secret files, roles read them with no_log.
The private data dir (artifacts, event JSON) is a temporary directory removed after every run.
"""

from __future__ import annotations

import difflib
import enum
import os
import signal
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from fleetdeploy.paths import ANSIBLE_CFG, REPO_ROOT, ROLES_DIR

MAX_FORKS = 50


class NodeState(enum.StrEnum):
    """One node's result in an Ansible run (configure, drift check, exec)."""

    OK = "ok"
    CHANGED = "changed"  # configure: changes made; --check: changes that would be made (drift)
    CONVERGED = "converged"  # up: the node's stamp matched, nothing was run
    FAILED = "failed"
    UNREACHABLE = "unreachable"

    @property
    def ok(self) -> bool:
        return self not in (NodeState.FAILED, NodeState.UNREACHABLE)



@dataclass
class HostResult:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: bool = False
    message: str = ""
    changed_tasks: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    # Facts named fleet_report_* that the playbook set for the controller (site.yml: complete / converged).
    reports: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> NodeState:
        if self.unreachable:
            return NodeState.UNREACHABLE
        if self.failed:
            return NodeState.FAILED
        if self.reports.get("fleet_report_converged"):
            return NodeState.CONVERGED
        return NodeState.CHANGED if self.changed else NodeState.OK


class RunObserver(Protocol):
    """Told about every host as the run goes (the CLI shows it live; ProgressBoard is one)."""

    def update(self, item: str, state: str, detail: str = "") -> None: ...

    def count(self, item: str, key: str) -> None: ...


@dataclass
class RunResult:
    rc: int
    hosts: dict[str, HostResult]
    # Ansible printed its recap: the run went to its end (an interrupted or killed run never does).
    finished: bool = False
    run_log: str | None = None

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, r in self.hosts.items() if r.unreachable or r.failed)


def _one_line(text: object) -> str:
    """A message's lines joined: Ansible's own (e.g. 'Validation of arguments failed:' and the reason on the next
    line) must reach the table whole, never cut after its first line."""
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _last_line(text: object) -> str:
    """A command's or a module's output: its last line says what went wrong (a traceback ends with the error)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _failure_message(res: dict[str, Any]) -> str:
    if "censored" in res:
        return "a task with no_log failed (output hidden to protect secrets)"
    if res.get("msg"):
        return _one_line(res["msg"])
    for key in ("stderr", "module_stderr", "stdout"):
        if res.get(key):
            return _last_line(res[key])
    return "failed"


def render_diff(diff: object) -> str:
    """Turn Ansible's `diff` result (a dict or a list of dicts) into unified diff text."""
    parts = diff if isinstance(diff, list) else [diff]
    chunks: list[str] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if "prepared" in part:
            chunks.append(str(part["prepared"]).rstrip())
            continue
        before, after = part.get("before", ""), part.get("after", "")
        if not isinstance(before, str) or not isinstance(after, str):
            before, after = repr(before), repr(after)
        chunks.append(
            "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=str(part.get("before_header", "before")),
                    tofile=str(part.get("after_header", "after")),
                )
            ).rstrip()
        )
    return "\n".join(chunk for chunk in chunks if chunk)


class EventCollector:
    """Turns ansible-runner events into per-host results and live board updates."""

    def __init__(self, board: RunObserver, log: TextIO | None = None) -> None:
        self.board = board
        self.log = log
        self.hosts: dict[str, HostResult] = {}
        self.finished = False
        # Per-host recaps carried by the events themselves (a node-local run's callback sends them; ansible-runner's
        # come from runner.stats instead): host -> {"ok": n, "changed": n, ...}.
        self.stats: dict[str, dict[str, int]] = {}

    def _host(self, name: str) -> HostResult:
        return self.hosts.setdefault(name, HostResult(host=name))

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if self.log is not None and event.get("stdout"):
            # Ansible's own display text: no_log tasks are already censored in it.
            self.log.write(str(event["stdout"]) + "\n")
        if kind == "playbook_on_stats":
            self.finished = True
            for key, per_host in (data.get("stats") or {}).items():
                for name, count in per_host.items():
                    self.stats.setdefault(name, {})[key] = count
        host_name = data.get("host")
        if not host_name or not kind.startswith("runner_"):
            return True
        host = self._host(host_name)
        res = data.get("res") or {}
        task = str(data.get("task", ""))
        if kind == "runner_on_start":
            if not host.failed and not host.unreachable:
                self.board.update(host_name, "running", task)
        elif kind == "runner_on_ok":
            host.ok += 1
            self.board.count(host_name, "ok")
            if res.get("changed"):
                host.changed += 1
                host.changed_tasks.append(task)
                if res.get("diff"):
                    rendered = render_diff(res["diff"])
                    if rendered:
                        host.diffs.append(f"--- task: {task}\n{rendered}")
            if "stdout" in res and data.get("task_action") in ("ansible.builtin.command", "ansible.builtin.shell",
                                                               "command", "shell"):
                host.outputs.append(str(res.get("stdout", "")))
            facts = res.get("ansible_facts") or {}
            host.reports.update({k: v for k, v in facts.items() if k.startswith("fleet_report_")})
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                host.ok += 1
            else:
                host.failed += 1
                host.message = host.message or f"{task}: {_failure_message(res)}"
                if "stdout" in res:
                    host.outputs.append(str(res.get("stdout", "")))
                self.board.update(host_name, "failed", host.message)
        elif kind == "runner_on_unreachable":
            host.unreachable = True
            host.message = host.message or _failure_message(res)
            self.board.update(host_name, "unreachable", host.message)
        elif kind == "runner_on_skipped":
            host.skipped += 1
        return True

    def finish(self, stats: dict[str, dict[str, int]] | None, only: str | None = None) -> None:
        """Take the counts from Ansible's own recap: events of no_log tasks don't say whether they changed.
        `only`: settle that host alone (a node-local run's nodes end one by one)."""
        for key, attribute in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("skipped", "skipped")):
            for name, count in (stats or {}).get(key, {}).items():
                setattr(self._host(name), attribute, count)
        for name, host in self.hosts.items():
            if only is not None and name != only:
                continue
            hidden = host.changed - len(host.changed_tasks)
            if hidden > 0:
                host.changed_tasks.append(f"{hidden} task(s) whose output is hidden (no_log: they handle secrets)")
            if not host.failed and not host.unreachable:
                self.board.update(name, host.state, f"{host.ok} ok, {host.changed} changed")


def _environment() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        # Another ansible.cfg only on purpose (scripts/benchmark.py's stock mode): the repo's is what is tested.
        "ANSIBLE_CONFIG": os.environ.get("FLEETDEPLOY_ANSIBLE_CONFIG") or str(ANSIBLE_CFG),
        "ANSIBLE_ROLES_PATH": str(ROLES_DIR),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-runner turns host key checking off unless told otherwise; the inventory pins keys per instance.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # ansible-runner starts ansible-playbook by name: it must be the one beside this interpreter.
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


def extra_var_args(extra_vars: dict[str, bool | int | str] | None) -> list[str]:
    """`-e key=value` for each flag (both configure modes). Flags only: extra vars are visible on the command line,
    so nothing secret may ever pass here."""
    args: list[str] = []
    for key, value in (extra_vars or {}).items():
        args += ["-e", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return args


def forks_for(host_count: int) -> int:
    return max(1, min(host_count, MAX_FORKS))


def run_ansible(
    observer: RunObserver,
    inventory_file: Path,
    hosts: Iterable[str],
    *,
    playbook: str | None = None,
    module: str | None = None,
    module_args: str | None = None,
    limit: list[str] | None = None,
    check: bool = False,
    become: bool | None = None,
    extra_vars: dict[str, bool | int | str] | None = None,
    run_log: Path | None = None,
) -> RunResult:
    """Run a playbook (path relative to the repo) or an ad-hoc module on the inventory's hosts."""
    import ansible_runner  # imported here: costs ~0.3 s and only runs that configure nodes need it

    targets = sorted(set(limit) if limit else set(hosts))
    cmdline = "--check --diff" if check else ("--diff" if playbook else "")
    if become is not None:
        # The inventory's group_vars turn become on for the roles; ad-hoc commands choose for themselves.
        cmdline += f" -e ansible_become={str(become).lower()}"
    if extra_vars:
        cmdline += " " + " ".join(extra_var_args(extra_vars))
    marker = uuid.uuid4().hex  # every process of this run inherits it: how a cancel finds them all
    with tempfile.TemporaryDirectory(prefix="fleetdeploy-runner-") as private_dir:
        Path(private_dir).chmod(0o700)
        log = run_log.open("a", encoding="utf-8") if run_log is not None else None
        collector = EventCollector(observer, log)
        kwargs: dict[str, Any] = dict(
            private_data_dir=private_dir,
            project_dir=str(REPO_ROOT),
            inventory=str(inventory_file),
            envvars=_environment() | {RUN_MARKER: marker},
            forks=forks_for(len(targets)),
            event_handler=collector,
            suppress_env_files=True,
            quiet=True,
            cmdline=cmdline.strip() or None,
            limit=",".join(targets) if limit else None,
        )
        if playbook:
            kwargs["playbook"] = str(REPO_ROOT / playbook)
        else:
            kwargs.update(module=module, module_args=module_args, host_pattern=",".join(targets) or "all")
        signals = _signals_cancel()
        try:
            with signals as cancelled:
                runner = ansible_runner.run(**kwargs, cancel_callback=cancelled.is_set)
        finally:
            if log is not None:
                log.close()
        if cancelled.is_set() or runner.status == "canceled":
            kill_marked(marker)  # the workers the process-group kill cannot reach
            signals.reraise()
        collector.finish(runner.stats)
    for name in targets:
        collector.hosts.setdefault(name, HostResult(host=name))
    rc = runner.rc if isinstance(runner.rc, int) else 1
    if not collector.finished and rc == 0:
        rc = 1  # Ansible never reached its recap: whatever it did is not a success
    return RunResult(rc=rc, hosts=collector.hosts, finished=collector.finished)


RUN_MARKER = "FLEETDEPLOY_RUN_ID"


def kill_marked(marker: str) -> int:
    """SIGKILL every process that carries this run's marker in its environment; returns how many.

    ansible-runner kills the playbook's process group when a run is cancelled, but ansible-core's workers each
    start a session of their own (setsid): once their parent is gone they would wait forever. They, and the ssh
    clients under them, inherited the marker from the run's environment (Linux /proc; nothing elsewhere).
    """
    needle = f"{RUN_MARKER}={marker}".encode()
    killed = 0
    try:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            continue
    return killed


class _signals_cancel:  # noqa: N801 - used like a function: `with _signals_cancel() as cancelled`
    """While Ansible runs, Ctrl-C (and SIGTERM, where the process turned it into an exception: `watch`) asks
    ansible-runner to stop it, which kills the playbook's process group; then the signal is raised here as it
    would have been anywhere else (KeyboardInterrupt, or the process's SIGTERM exception).

    ansible-runner would otherwise install its own SIGINT handler and never give the old one back, so later
    Ctrl-C presses would be ignored. Only the main thread may set handlers; elsewhere this does nothing.
    """

    def __enter__(self) -> threading.Event:
        self.event = threading.Event()
        self.received: int | None = None
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            wanted = [signal.SIGINT]
            if callable(signal.getsignal(signal.SIGTERM)):
                wanted.append(signal.SIGTERM)
            for signum in wanted:
                self.previous[signum] = signal.signal(signum, self._cancel)
        return self.event

    def _cancel(self, signum: int, _frame: object) -> None:
        self.received = self.received or signum
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def reraise(self) -> None:
        """Raise what the signal that cancelled the run raises outside a run."""
        handler = self.previous.get(self.received or signal.SIGINT)
        if self.received == signal.SIGTERM and callable(handler):
            handler(signal.SIGTERM, None)
        raise KeyboardInterrupt
