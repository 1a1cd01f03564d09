"""One SSH exchange per node: its convergence check and its health check, read together without Ansible.

What `watch` reads from every node each tick. Both halves are the very code the Ansible side runs: the
convergence probe is playbooks/module_utils/fleet_state.py (what the fleet_convergence action plugin sends to the
node's python3), judged by the rule in playbooks/vars/convergence.yml, and the health half runs the node's
`fleet-health-check --json` as the fleet_health action plugin does and reads its answer the same way
(health.exchange.facts_from). A tick then costs the controller one ssh client per node (over a ControlMaster
that outlives the tick), not an ansible-playbook start-up and a worker per node.

The nodes' answers arrive as the same facts the plugins set (fleet_report_*), so the verdict stays
health.verdict's. Nothing here changes a node: the probe only measures, and the health check writes only its
own status file, as cron's runs do.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fleetdeploy.health.exchange import DEFAULT_SCRIPT, NOT_CONFIGURED, facts_from
from fleetdeploy.jsondoc import JSON, JSONObject, as_object
from fleetdeploy.paths import PLAYBOOKS_DIR
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.processes import allow_open_files, kill_group
from fleetdeploy.runs.ssh import host_key_changed, ssh_argv

STATE_SOURCE = PLAYBOOKS_DIR / "module_utils" / "fleet_state.py"
CONVERGENCE_RULE = PLAYBOOKS_DIR / "vars" / "convergence.yml"
CONVERGED_FACT = "fleet_report_converged"
DRIFT_FACT = "fleet_report_drift"
# Between the probe's answer and the health check's in the node's output.
_SEPARATOR = "FLEET-EXCHANGE-HEALTH-FOLLOWS"
_HEALTH_RC = "FLEET-EXCHANGE-HEALTH-RC="
NODE_PYTHON = "/usr/bin/python3"
# Every node at once up to this many (as node-local configure's sessions): an exchange is one short ssh client,
# and at 300 nodes rounds of 50 made a health read or a watcher tick six readings intervals long.
MAX_PARALLEL = 300
TIMEOUT_S = 120.0  # the health check's readings check waits up to its interval; a hung node must not hold a tick
CONNECT_TIMEOUT_S = 20  # as ansible.cfg's timeout: a busy spot node is slow to finish the handshake
SSH_FAILED = 255  # ssh's own exit code: the connection failed or was lost


@dataclass(frozen=True)
class ExchangeResult:
    """What one node answered, as the facts the Ansible plugins would set; or why it could not be asked."""

    facts: JSONObject = field(default_factory=dict)
    unreachable: bool = False
    message: str = ""


def convergence_rule(path: Path = CONVERGENCE_RULE) -> JSONObject:
    """The stamp file, roles and base roles site.yml checks a node with."""
    return as_object(yaml.safe_load(path.read_text(encoding="utf-8")))


def node_script(digest: str, rule: JSONObject | None, health_script: str = DEFAULT_SCRIPT,
                health: bool = True) -> str:
    """The shell script the node runs as root: the convergence probe (none without a `rule`: `health` asks only
    for health), then its health check (none without `health`: a node-local configure asks only the probe)."""
    quoted = shlex.quote(health_script)
    if rule is None:
        first = "echo\n"  # no probe: no convergence facts, as when a node's probe cannot run
    else:
        params = {"path": rule["fleet_stamp_file"], "digest": digest, "roles": rule["fleet_site_roles"],
                  "base_roles": rule["fleet_base_roles"]}
        probe = STATE_SOURCE.read_text(encoding="utf-8") + f"\nprobe({json.dumps(params)!r})\n"
        # The heredoc's quoted delimiter keeps the shell away from the probe's text, and the probe's errors stay in
        # its half of the answer. The interpreter is the inventory's ansible_python_interpreter, as the
        # fleet_convergence plugin uses.
        first = f"{NODE_PYTHON} - 2>&1 <<'FLEET_PROBE_END'\n{probe}FLEET_PROBE_END\n"
    if not health:
        return first + f"echo; echo {_SEPARATOR}\n"
    # The health check gets no stdin: the rest of this script is still arriving there.
    return (first + f"echo; echo {_SEPARATOR}\n"
            f"if [ -x {quoted} ]; then {quoted} --json </dev/null; rc=$?; echo; echo \"{_HEALTH_RC}$rc\"; "
            f"else echo {NOT_CONFIGURED}; fi\n")


def parse_answer(returncode: int, stdout: str, stderr: str) -> ExchangeResult:
    """The facts from one node's output. ssh's own failure (exit 255: not connected, or the connection lost) is
    unreachable, as Ansible would say."""
    if returncode == SSH_FAILED:
        lines = [line for line in stderr.splitlines() if line.strip()]
        return ExchangeResult(unreachable=True, message=" ".join(lines[-1].split()) if lines else "ssh failed")
    if _SEPARATOR not in stdout:
        detail = " ".join((stderr.strip().splitlines() or ["no output"])[-1].split())
        return ExchangeResult(facts={"fleet_report_health_error": f"exit {returncode}: {detail}"[:400]})
    probe_text, health_text = stdout.split(_SEPARATOR, 1)
    facts: JSONObject = {}
    try:
        verdict: JSON = json.loads(probe_text.strip())
    except ValueError:
        verdict = None  # no python3, or the probe crashed: not known converged; its health is still read
    if isinstance(verdict, dict) and isinstance(verdict.get("converged"), bool):
        facts[CONVERGED_FACT] = verdict["converged"]
        facts[DRIFT_FACT] = verdict.get("drift") or []
    lines = health_text.strip().splitlines()
    health_rc = -1  # no exit code printed: the check was cut short
    if lines and lines[-1].startswith(_HEALTH_RC) and lines[-1][len(_HEALTH_RC):].isdigit():
        health_rc = int(lines.pop()[len(_HEALTH_RC):])
    facts.update(facts_from(health_rc, "\n".join(lines), stderr))
    return ExchangeResult(facts=facts)


class Exchanges:
    """Runs the exchange on many nodes at once; `cancel` (from another thread, or on Ctrl-C) ends them all."""

    def __init__(self, argv_for: Callable[[Node], list[str]], script: str, timeout_s: float = TIMEOUT_S) -> None:
        self._argv_for = argv_for
        self._script = script.encode()
        self._timeout_s = timeout_s
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def run(self, nodes: dict[str, Node],
            done: Callable[[str, ExchangeResult], None] | None = None) -> dict[str, ExchangeResult]:
        """Every node's answer; `done` hears each one as it arrives (live progress)."""
        if not nodes:
            return {}
        allow_open_files(min(MAX_PARALLEL, len(nodes)))
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(nodes))) as pool:
            try:
                futures = {pool.submit(self._one, node): name for name, node in nodes.items()}
                answers = {}
                for future in as_completed(futures):
                    answers[futures[future]] = future.result()
                    if done is not None:
                        done(futures[future], answers[futures[future]])
                return {name: answers[name] for name in nodes}
            except BaseException:
                self.cancel()
                raise

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            for process in self._running:
                kill_group(process)

    def _one(self, node: Node) -> ExchangeResult:
        try:
            return self._ask(node)
        except Exception as exc:  # noqa: BLE001 - one node's trouble is that node's, never the whole tick's
            return ExchangeResult(facts={"fleet_report_health_error": f"exchange failed: {exc}"[:400]})

    def _ask(self, node: Node) -> ExchangeResult:
        if self._cancelled.is_set():
            return ExchangeResult(message="cancelled")
        # A session of its own: a cancel ends whatever the command started too (an SSH master detaches by itself).
        process = subprocess.Popen(self._argv_for(node), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
        with self._lock:
            self._running.add(process)
            if self._cancelled.is_set():  # cancelled while it was starting
                kill_group(process)
        try:
            stdout, stderr = process.communicate(self._script, timeout=self._timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(process)
            process.communicate()
            return ExchangeResult(unreachable=True, message=f"no answer within {self._timeout_s:g} s")
        finally:
            with self._lock:
                self._running.discard(process)
        if self._cancelled.is_set():
            return ExchangeResult(message="cancelled")
        return parse_answer(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def control_path(node: Node, control_dir: Path) -> str:
    """A short socket path per node, as Ansible makes its own (a 10-character hash): ssh's %C is 40 characters, and
    with the 17 ssh adds while it creates the socket, a deep HOME would pass the 107 bytes a socket path may have."""
    digest = hashlib.sha256(f"{node.user}@{node.host}:{node.port}/{node.instance_id}".encode()).hexdigest()[:10]
    return f"{control_dir}/fx-{digest}"


def exchange_argv(node: Node, known_hosts: Path, control_dir: Path,
                  command: tuple[str, ...] = ("sudo", "-n", "/bin/sh", "-s")) -> list[str]:
    """ssh to the node (host key pinned as for every other connection) running `command`: a root shell reading its
    script, or a node-local configure's driver. `control_dir` must exist (the caller makes it once)."""
    argv = ssh_argv(node.identity_files, node.host, node.port, *command, alias=node.instance_id,
                    known_hosts=known_hosts, user=node.user, batch=True)
    # A master per node outlives the tick (as Ansible's do), so the next tick costs no key exchange.
    multiplex = ["-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
                 "-o", f"ControlPath={control_path(node, control_dir)}",
                 "-o", "ServerAliveInterval=15", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
    return [argv[0], *multiplex, *argv[1:]]


def refused(result: ExchangeResult) -> bool:
    return result.unreachable and host_key_changed(result.message)
