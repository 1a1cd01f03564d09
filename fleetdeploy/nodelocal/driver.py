"""The node's side of a node-local configure: runs as root under the node's own python3 (3.10 or newer, stdlib
only), started by the controller over SSH as `python3 -c <this file's text>`. Never imported on the controller.

Protocol (the controller's side: nodelocal/session.py). This side first prints `FLEET-PLATFORM {python, machine}`
so the controller sends the bundle built for this node's Python and CPU. Then on stdin:
  1. one JSON line: run id, base directory, bundle size, secrets (name -> text), image archives the run may need
     (each with the images it holds), the node's inventory text and the ansible-playbook arguments;
  2. the bundle (tar.gz: ansible-core and its libraries, the collections, playbooks/ and roles/), that many bytes;
  3. after this side prints `FLEET-NEED [indexes]`: for each archive asked for, one JSON line {"size": n} and its
     bytes.
Stdout carries the playbook's FLEET-EVENT lines (callback_plugins/fleet_events.py), then `FLEET-RC <rc>`;
`FLEET-ERROR <text>` says why the run could not start. Secrets only ever reach 0600 files in the run's 0700
directory, never argv, environment or file names; the whole directory is removed when the run ends, however it
ends. The controller keeps stdin open to the end: when it closes (the controller was cancelled, or the connection
was lost) the playbook is stopped at once and the run removed; a module already running (an apt install, a docker
load) is let finish, for up to the header's `stop_grace_s`, with the node's lock held. One run at a time per node
(a lock file); a directory left by a run that could not clean up (the node lost power) is removed by the next.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from typing import IO, TypedDict, cast

PLATFORM = "FLEET-PLATFORM "
NEED = "FLEET-NEED "
RC = "FLEET-RC "
ERROR = "FLEET-ERROR "
CHUNK = 1 << 20
MIN_PYTHON = (3, 10)
LOCK_WAIT_S = 120
PLAYBOOK_STOP_S = 15  # ansible-playbook's own stop after SIGINT: it waits briefly for its workers, then ends them
ASK_TIMEOUT_S = 30  # a hung engine must not hold the run: its images count as missing


class Archive(TypedDict):
    file: str  # its name in the run directory
    images: list[str]  # what it holds: sent only when one of them is missing here


class Header(TypedDict):
    run: str
    base: str
    bundle_size: int
    secrets: dict[str, str]  # file name in the run's secrets/ -> content
    archives: list[Archive]
    inventory: str
    args: list[str]  # ansible-playbook's arguments beyond the inventory and the playbook
    stop_grace_s: float  # how long a module left running by a stopped playbook may take to finish


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def read_exact(stream: IO[bytes], size: int, sink: IO[bytes] | None = None) -> None:
    left = size
    while left > 0:
        chunk = stream.read(min(CHUNK, left))
        if not chunk:
            raise RuntimeError("the controller's stream ended early")
        if sink is not None:
            sink.write(chunk)
        left -= len(chunk)


def private_file(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def take_lock(base: str) -> IO[str]:
    """This node's configure lock: a run still stopping (its session just lost) is waited for, briefly."""
    handle = open(os.path.join(base, "lock"), "w", encoding="utf-8")  # noqa: SIM115 - held until the process ends
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"another configure has held this node for over {LOCK_WAIT_S} s") from None
            time.sleep(1)


def remove_other_runs(base: str) -> None:
    """With the lock held no other run is live: what another run left (secrets included) goes."""
    for entry in os.listdir(base):
        path = os.path.join(base, entry)
        if entry.startswith("run-") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


def kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


class Stop:
    """How the playbook's processes end when nobody reads the run any more (its session ended first).

    A SIGKILL of the whole group would cut a module mid-way: a dpkg killed while it unpacks leaves the node needing
    `dpkg --configure -a` by hand, and the next run's apt fails. So ansible-playbook alone gets SIGINT (a terminal's
    Ctrl-C): it starts no further task and ends its workers, and the module a worker had started runs on in the
    group (ansible-core 2.17's workers and their modules share it). After the playbook, `let_modules_finish` waits
    for the group to empty, up to the grace, with the node's lock held, and kills what is left.
    """

    def __init__(self, process: subprocess.Popen[bytes], grace_s: float) -> None:
        self.process = process
        self.grace_s = grace_s
        self.requested = threading.Event()

    def gently(self) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        try:
            os.kill(self.process.pid, signal.SIGINT)
            self.process.wait(PLAYBOOK_STOP_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            kill_group(self.process.pid)

    def at_once(self) -> None:
        """The node is going down (SIGTERM, SIGHUP): nothing would be left to finish anyway."""
        kill_group(self.process.pid)

    def let_modules_finish(self) -> None:
        if not self.requested.is_set():
            return
        # Nobody reads this side any more: let go of the session's pipes, so that it ends now, not with the module.
        quiet = os.open(os.devnull, os.O_WRONLY)
        for stream in (1, 2):
            os.dup2(quiet, stream)
        os.close(quiet)
        deadline = time.monotonic() + self.grace_s
        try:
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.process.pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.5)
        finally:
            kill_group(self.process.pid)

    def when_the_session_ends(self, stream: IO[bytes]) -> None:
        """The controller keeps stdin open for the whole run: its end means nobody reads the run any more."""
        def wait() -> None:
            while stream.read(CHUNK):
                pass
            self.gently()

        threading.Thread(target=wait, daemon=True).start()


def engine_running() -> bool:
    """Whether the Docker engine runs, asked of systemd: any docker call, even a read, would start a stopped engine
    through docker.socket, and a drift check must find it stopped (as site.yml's probe does)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or not os.path.isdir("/run/systemd/system"):  # not booted with systemd (sd_booted)
        return shutil.which("docker") is not None  # and so no socket activation to fear
    return _succeeds([systemctl, "is-active", "--quiet", "docker.service"])


def has_image(image: str) -> bool:
    return _succeeds(["docker", "image", "inspect", "--format", "{{.Id}}", image])


def _succeeds(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=ASK_TIMEOUT_S, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def extract(stream: IO[bytes], size: int, target: str) -> None:
    archive = os.path.join(target, "bundle.tar.gz")
    with open(archive, "wb") as handle:
        read_exact(stream, size, handle)
    with tarfile.open(archive, "r:gz") as bundle:
        for member in bundle.getmembers():
            if member.name.startswith(("/", "..")) or "/../" in member.name or not (member.isfile() or member.isdir()):
                raise RuntimeError(f"unexpected bundle member {member.name!r}")
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(target, filter="data")
        else:
            bundle.extractall(target)
    os.unlink(archive)


def receive_archives(stream: IO[bytes], run_dir: str, archives: list[Archive], check: bool = False) -> None:
    """Ask for the archives whose images this node lacks; write each (or an empty stand-in: the role only loads an
    archive when its image is missing, and then it has the real one)."""
    # A stopped engine is not asked (nor started): its images are taken as missing, and the archives sent. A check
    # run loads nothing, so it is sent nothing: the role reports the load it would do from the stand-in as well.
    running = bool(archives) and not check and engine_running()
    needed = [] if check else [index for index, entry in enumerate(archives)
                               if not (running and all(has_image(i) for i in entry["images"]))]
    say(NEED + json.dumps(needed))
    for index, entry in enumerate(archives):
        path = os.path.join(run_dir, entry["file"])
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "wb") as handle:
            if index in needed:
                size = int(json.loads(stream.readline())["size"])
                read_exact(stream, size, handle)


def run_playbook(stream: IO[bytes], run_dir: str, header: Header, lock: IO[str], stops: list[Stop]) -> int:
    """Run site.yml, its events to stdout; the run's Stop is appended to `stops` as soon as the playbook starts."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": run_dir,
        "LANG": "C.UTF-8",
        # Bytecode goes beside the bundle's sources (removed with them): each of the run's workers imports its
        # plugins after forking, and compiles them only once.
        "PYTHONPATH": os.path.join(run_dir, "site"),
        "ANSIBLE_CONFIG": os.path.join(run_dir, "project", "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(run_dir, "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "fleet_events",
        "ANSIBLE_LOCAL_TEMP": os.path.join(run_dir, "tmp"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(run_dir, "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        # ansible.cfg turns pipelining on for ssh only; without it every module run on the local connection is a
        # temp file and four more shells.
        "ANSIBLE_PIPELINING": "True",
    }
    argv = [sys.executable, "-m", "ansible", "playbook", "-i", os.path.join(run_dir, "inventory.yml"),
            os.path.join(run_dir, "project", "playbooks", "site.yml"), *header["args"]]
    with open(os.path.join(run_dir, "stderr"), "w+b") as errors:
        # The playbook holds the node's lock too: were this driver killed, no next run starts beside it.
        process = subprocess.Popen(argv, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=errors, start_new_session=True, pass_fds=(lock.fileno(),))
        stop = Stop(process, float(header["stop_grace_s"]))
        stops.append(stop)
        stop.when_the_session_ends(stream)
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            rc = process.wait()
        except BrokenPipeError:  # the controller is gone: as when stdin ends
            stop.gently()
            process.wait()
            raise
        except BaseException:
            stop.at_once()
            process.wait()
            raise
        if rc != 0:
            errors.seek(0)
            lines = [text.strip() for text in errors.read().decode(errors="replace").splitlines() if text.strip()]
            if lines:
                say(ERROR + lines[-1][:400])
    return rc


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        say(ERROR + f"the node's python3 is {sys.version_info[0]}.{sys.version_info[1]}; ansible-core on the node "
            "needs 3.10 or newer (use configure.mode: controller)")
        return 3
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    say(PLATFORM + json.dumps({"python": python, "machine": os.uname().machine}))
    stream = sys.stdin.buffer
    header = cast(Header, json.loads(stream.readline()))
    base = header["base"]
    os.makedirs(base, mode=0o700, exist_ok=True)
    lock = take_lock(base)
    remove_other_runs(base)
    run_dir = os.path.join(base, "run-" + header["run"])
    os.mkdir(run_dir, 0o700)
    stops: list[Stop] = []
    try:
        os.mkdir(os.path.join(run_dir, "secrets"), 0o700)
        os.mkdir(os.path.join(run_dir, "tmp"), 0o700)
        extract(stream, int(header["bundle_size"]), run_dir)
        for name, text in header["secrets"].items():
            private_file(os.path.join(run_dir, "secrets", name), text.encode())
        private_file(os.path.join(run_dir, "inventory.yml"), header["inventory"].encode())
        receive_archives(stream, run_dir, header["archives"], check="--check" in header["args"])
        rc = run_playbook(stream, run_dir, header, lock, stops)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # secrets first: a module still finishing needs none of them
        try:
            for stop in stops:
                stop.let_modules_finish()
        finally:
            # Again, now that none of the run's processes is left: a module that finished late may have made its
            # temporary directory under the run's (Ansible's remote_tmp) after the first removal.
            shutil.rmtree(run_dir, ignore_errors=True)
            lock.close()
    say(RC + str(rc))
    return 0


if __name__ == "__main__":
    # SIGPIPE stays ignored (Python's default): a closed session (the controller was cancelled) raises
    # BrokenPipeError at the next write, which stops the playbook and removes the run directory. SIGTERM and
    # SIGHUP (the node shutting down) do the same through SystemExit.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))
    try:
        sys.exit(main())
    except Exception as exc:  # noqa: BLE001 - one line for the controller, never a traceback
        say(ERROR + f"{type(exc).__name__}: {exc}"[:400])
        sys.exit(3)
