"""A configure run where each node runs site.yml itself (`configure.mode: node`): the controller streams the same
bundle to every node over one SSH session each, and reads their events into the collector a controller-side run
uses (runs/runner.py), so the result is the same RunResult: per-node counts, changed tasks, diffs, the drift
report and the convergence stamp's facts.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.nodelocal.bundle import bundle
from fleetdeploy.nodelocal.node_inventory import node_files, read_inventory
from fleetdeploy.nodelocal.session import Session, SessionOutcome, driver_command, read_secrets
from fleetdeploy.nodelocal.wheels import wheels
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import CONVERGED_FACT, DRIFT_FACT, NODE_PYTHON, ExchangeResult, exchange_argv
from fleetdeploy.runs.processes import allow_open_files
from fleetdeploy.runs.runner import EventCollector, HostResult, RunObserver, RunResult, extra_var_args
from fleetdeploy.runs.ssh import CONTROL_DIR, host_key_changed, refused_message

# Sessions at once: each is an ssh client (and its node's SSH master) and a mostly idle thread here, the work
# being on the nodes: ~10 MB and 3 file descriptors each (docs/scale.md). 300, the fleets' largest, in one wave;
# a larger fleet starts its next nodes as the first finish.
MAX_SESSIONS = 300
TIMEOUT_S = 3600.0  # a first configure installs the engine and loads images: slow, but never forever


def session_argv(node: Node, known_hosts: Path) -> list[str]:
    """ssh to the node as the exchange does (pinned host key, the same per-node ControlMaster), running the driver."""
    return exchange_argv(node, known_hosts, CONTROL_DIR, tuple(driver_command(NODE_PYTHON)))


def playbook_args(check: bool, extra_vars: dict[str, bool | int | str] | None) -> list[str]:
    """As the controller-side run's command line: --diff always, --check for a drift check, flag-only extra vars."""
    return (["--check", "--diff"] if check else ["--diff"]) + extra_var_args(extra_vars)


def run_on_nodes(observer: RunObserver, inventory_file: Path, nodes: dict[str, Node], known_hosts: Path, *,
                 check: bool = False, extra_vars: dict[str, bool | int | str] | None = None,
                 run_log: Path | None = None, verdicts: dict[str, ExchangeResult] | None = None) -> RunResult:
    """site.yml on each of `nodes` (inventory host name -> node), by the node itself. `verdicts`: the nodes'
    answers to site.yml's convergence probe, asked just before (none for --full); a converged node ends there, an
    unreachable one is reported so, and the others run."""
    ended = _ended_by_probe(observer, verdicts or {})
    nodes = {name: node for name, node in nodes.items() if name not in ended}
    if run_log is not None and ended:
        with run_log.open("a", encoding="utf-8") as handle:
            handle.writelines(f"{r.state}: [{name}] {r.message or 'the convergence stamp holds'}\n"
                           for name, r in ended.items())
    if not nodes:
        return RunResult(rc=4 if any(r.unreachable for r in ended.values()) else 0, hosts=ended, finished=True)
    bundles: dict[str, Path] = {}
    building = threading.Lock()

    def bundle_for(tag: str) -> Path:
        with building:  # built once per platform and run, whichever node asks first
            if tag not in bundles:
                bundles[tag] = bundle(tag)
            return bundles[tag]

    wheels()  # fetched once (scripts/setup.sh does it): here only when missing, failing in one line, nodes untouched
    inventory = read_inventory(inventory_file)
    run_id = uuid.uuid4().hex[:12]
    try:
        secrets = read_secrets(node_files(inventory, next(iter(nodes)), run_id))
    except OSError as exc:
        raise InputError(f"cannot read a secret file for the nodes: {exc}") from None
    args = playbook_args(check, extra_vars)
    CONTROL_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    allow_open_files(min(MAX_SESSIONS, len(nodes)))
    lock = threading.Lock()
    log = run_log.open("a", encoding="utf-8") if run_log is not None else None
    collector = EventCollector(observer, log)
    finished: set[str] = set()

    def heard(event: JSONObject) -> None:
        with lock:
            collector(event)

    def one(name: str) -> Session:
        files = node_files(inventory, name, run_id)
        return Session(session_argv(nodes[name], known_hosts), files, secrets, bundle_for, run_id, args, heard,
                       TIMEOUT_S)

    sessions = {name: one(name) for name in nodes}
    outcomes: dict[str, SessionOutcome] = {}
    try:
        with ThreadPoolExecutor(max_workers=min(MAX_SESSIONS, len(nodes))) as pool:
            try:
                futures = {pool.submit(_run_one, session): name for name, session in sessions.items()}
                for future in as_completed(futures):
                    name = futures[future]
                    outcomes[name] = future.result()
                    with lock:
                        _settle(collector, observer, name, nodes[name], outcomes[name], known_hosts, finished)
            except BaseException:
                for session in sessions.values():
                    session.cancel()
                raise
    finally:
        if log is not None:
            log.close()
    for name in nodes:
        collector.hosts.setdefault(name, HostResult(host=name))
    collector.hosts.update(ended)
    failed = any(not r.state.ok for r in collector.hosts.values())
    unreachable = any(r.unreachable for r in collector.hosts.values())
    rc = 4 if unreachable else (2 if failed else 0)
    return RunResult(rc=rc, hosts=collector.hosts, finished=len(finished) == len(nodes))


def _run_one(session: Session) -> SessionOutcome:
    try:
        return session.run()
    except Exception as exc:  # noqa: BLE001 - one node's trouble is that node's, never the whole run's
        return SessionOutcome(message=f"the session failed: {type(exc).__name__}: {exc}"[:400])


def _ended_by_probe(observer: RunObserver, verdicts: dict[str, ExchangeResult]) -> dict[str, HostResult]:
    """The nodes the probe settles, as site.yml's first task would: converged (its stamp holds), or unreachable.
    A node whose probe could not run or found drift is left to its run."""
    ended: dict[str, HostResult] = {}
    for name, got in verdicts.items():
        if got.unreachable:
            ended[name] = HostResult(host=name, unreachable=True, message=got.message)
            observer.update(name, "unreachable", got.message)
        elif got.facts.get(CONVERGED_FACT) is True:
            ended[name] = HostResult(host=name, ok=1, reports={CONVERGED_FACT: True, DRIFT_FACT: []})
            observer.update(name, "converged", "1 ok, 0 changed")
    return ended


def _settle(collector: EventCollector, observer: RunObserver, name: str, node: Node, outcome: SessionOutcome,
            known_hosts: Path, finished: set[str]) -> None:
    """One node's session has ended: take its own recap, or say why it has none."""
    host = collector.hosts.setdefault(name, HostResult(host=name))
    stats = collector.stats.pop(name, None)
    if stats is not None:
        collector.finish({key: {name: count} for key, count in stats.items()}, only=name)
        finished.add(name)
    if outcome.unreachable:
        host.unreachable = True
        message = outcome.message
        if host_key_changed(message):
            message = refused_message(name, node.instance_id, known_hosts)
        host.message = host.message or message
        observer.update(name, "unreachable", host.message)
    elif outcome.rc is None or (outcome.rc != 0 and not host.failed):
        host.failed = host.failed or 1
        host.message = host.message or outcome.message or f"ansible-playbook ended with exit code {outcome.rc}"
        observer.update(name, "failed", host.message)
