"""The controller's side of one node's node-local configure: one SSH session that carries the bundle, the node's
inventory and secrets in, and the run's events out (the node's side and the protocol: driver.py).

A session costs the controller one ssh client and a thread reading lines, whatever the playbook does on the node.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from fleetdeploy.jsondoc import JSONObject, as_object
from fleetdeploy.nodelocal import driver
from fleetdeploy.nodelocal.node_inventory import NODE_BASE, SECRET_FILES, NodeFiles, credentials_for_node
from fleetdeploy.nodelocal.wheels import platform_tag
from fleetdeploy.runs.exchange import SSH_FAILED
from fleetdeploy.runs.processes import kill_group

EVENT = "FLEET-EVENT "  # callback_plugins/fleet_events.py's prefix
DRIVER_SOURCE = Path(driver.__file__).read_text(encoding="utf-8")
_CHUNK = 1 << 20
AWS_SECRET = SECRET_FILES["aws_credentials_source_file"]
# A module a cancelled run left running (an apt install, a docker load) may finish for this long on the node, with
# its lock held: below the driver's LOCK_WAIT_S, so the next run waits for it instead of failing.
STOP_GRACE_S = 100.0


@dataclass
class SessionOutcome:
    """How one node's session ended: the playbook's exit code (None: it never ended), or why it could not run."""

    rc: int | None = None
    unreachable: bool = False
    message: str = ""


def driver_command(python: str) -> list[str]:
    """The remote command: the driver's text as python3's -c argument (it holds no secret, only code)."""
    return ["sudo", "-n", python, "-c", shlex.quote(DRIVER_SOURCE)]


def read_secrets(files: NodeFiles) -> dict[str, str]:
    """The secret files' texts as a node may have them, read once per run on the controller (OSError when one is
    unreadable): the AWS credentials file cut down to the fleet's profile, as the role copies it."""
    texts = {name: path.read_text(encoding="utf-8") for name, path in files.secrets.items()}
    if AWS_SECRET in texts:
        texts[AWS_SECRET] = credentials_for_node(texts[AWS_SECRET], files.aws_profile)
    return texts


class LocalFileError(Exception):
    """A file this side sends could not be read whole: that node's failure, told in one line."""


def header(run_id: str, files: NodeFiles, secrets: dict[str, str], bundle_size: int, args: list[str],
           base: str = NODE_BASE, stop_grace_s: float = STOP_GRACE_S) -> bytes:
    archives = [{"file": name, "images": images} for name, (_, images) in files.archives.items()]
    document = {"run": run_id, "base": base, "bundle_size": bundle_size, "secrets": secrets,
                "archives": archives, "inventory": files.inventory, "args": args, "stop_grace_s": stop_grace_s}
    return json.dumps(document).encode() + b"\n"


class Session:
    """One node's run. `on_event` hears each of the playbook's events as it arrives; `cancel` ends the session
    (from any thread)."""

    def __init__(self, argv: list[str], files: NodeFiles, secrets: dict[str, str],
                 bundle_for: Callable[[str], Path], run_id: str, args: list[str],
                 on_event: Callable[[JSONObject], None], timeout_s: float, base: str = NODE_BASE,
                 stop_grace_s: float = STOP_GRACE_S) -> None:
        self._argv = argv
        self._stop_grace_s = stop_grace_s
        self._files = files
        self._secrets = secrets
        self._bundle_for = bundle_for
        self._run_id = run_id
        self._args = args
        self._on_event = on_event
        self._timeout_s = timeout_s
        self._base = base
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._timed_out = False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._process is not None:
                kill_group(self._process)
                _close(self._process.stdin)  # the end of the session for the node, however the client went

    def run(self) -> SessionOutcome:
        with tempfile.TemporaryFile() as errors:
            with self._lock:
                if self._cancelled:
                    return SessionOutcome(message="cancelled")
                # A session of its own: a cancel ends ssh and whatever it started (an SSH master detaches itself).
                process = subprocess.Popen(self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=errors, start_new_session=True)
                self._process = process
            watchdog = threading.Timer(self._timeout_s, self._expire)
            watchdog.daemon = True
            watchdog.start()
            try:
                outcome = self._converse(process)
                process.wait()
            finally:
                watchdog.cancel()
                kill_group(process)
                process.wait()
                _close(process.stdin)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        return self._ending(outcome, process.returncode, stderr)

    def _converse(self, process: subprocess.Popen[bytes]) -> SessionOutcome:
        assert process.stdin is not None and process.stdout is not None
        outcome = SessionOutcome()
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(driver.PLATFORM):
                try:
                    platform = as_object(json.loads(line[len(driver.PLATFORM):]))
                    bundle = self._bundle_for(platform_tag(str(platform.get("python")), str(platform.get("machine"))))
                except Exception as exc:  # noqa: BLE001 - this node's failure, never a hung session
                    outcome.message = f"no bundle for the node: {exc}"[:400]
                    kill_group(process)
                    break
                if not self._send(process, functools.partial(self._send_start, process.stdin, bundle), outcome):
                    break
            elif line.startswith(EVENT):
                try:
                    event = as_object(json.loads(line[len(EVENT):]))
                except (ValueError, TypeError):
                    continue
                self._on_event(event)
            elif line.startswith(driver.NEED):
                wanted = json.loads(line[len(driver.NEED):])
                if not self._send(process, functools.partial(self._send_archives, process.stdin, wanted), outcome):
                    break
            elif line.startswith(driver.ERROR):
                outcome.message = line[len(driver.ERROR):].strip()
            elif line.startswith(driver.RC) and line[len(driver.RC):].strip().lstrip("-").isdigit():
                outcome.rc = int(line[len(driver.RC):])
        return outcome

    @staticmethod
    def _send(process: subprocess.Popen[bytes], send: Callable[[], None], outcome: SessionOutcome) -> bool:
        """Run one send; False (the session ended here, the node told) when a file of this side failed."""
        try:
            send()
        except LocalFileError as exc:
            outcome.message = str(exc)
            kill_group(process)
            return False
        except (OSError, ValueError):
            pass  # the node went away, or a cancel closed the stream: its exit code and stderr say why
        return True

    def _send_start(self, stdin: IO[bytes] | None, bundle: Path) -> None:
        assert stdin is not None
        with _opened(bundle) as (source, size):
            stdin.write(header(self._run_id, self._files, self._secrets, size, self._args, self._base,
                               self._stop_grace_s))
            _copy(source, size, stdin, bundle)
        stdin.flush()

    def _send_archives(self, stdin: IO[bytes] | None, wanted: list[int]) -> None:
        assert stdin is not None
        entries = list(self._files.archives.values())
        for index in wanted:
            path = entries[index][0]
            with _opened(path) as (source, size):
                stdin.write(json.dumps({"size": size}).encode() + b"\n")
                _copy(source, size, stdin, path)
        stdin.flush()  # and open to the end: the node stops its run when this stream closes

    def _expire(self) -> None:
        self._timed_out = True
        self.cancel()

    def _ending(self, outcome: SessionOutcome, returncode: int, stderr: str) -> SessionOutcome:
        if self._timed_out:
            return SessionOutcome(unreachable=True, message=f"no end within {self._timeout_s:g} s")
        if self._cancelled:
            return SessionOutcome(message="cancelled")
        if returncode == SSH_FAILED and outcome.rc is None:
            lines = [line for line in stderr.splitlines() if line.strip()]
            return SessionOutcome(unreachable=True, message=" ".join(lines[-1].split()) if lines else "ssh failed")
        if outcome.rc is None and not outcome.message:
            lines = [line for line in stderr.splitlines() if line.strip()]
            detail = " ".join(lines[-1].split()) if lines else "no output"
            outcome.message = f"the node-local run ended without a result (exit {returncode}): {detail}"[:400]
        return outcome


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[IO[bytes], int]]:
    try:
        source = path.open("rb")
        size = os.fstat(source.fileno()).st_size
    except OSError as exc:
        raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    with source:
        yield source, size


def _copy(source: IO[bytes], size: int, stdin: IO[bytes], path: Path) -> None:
    """Exactly `size` bytes (what the node was told), or a LocalFileError: never a stream the node waits on."""
    left = size
    while left > 0:
        try:
            chunk = source.read(min(_CHUNK, left))
        except OSError as exc:
            raise LocalFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not chunk:
            raise LocalFileError(f"{path} shrank while it was sent")
        stdin.write(chunk)
        left -= len(chunk)


def _close(stream: IO[bytes] | None) -> None:
    if stream is not None:
        try:
            stream.close()
        except (OSError, ValueError):
            pass  # the other end is gone already, or a write on another thread just failed
