"""configure.mode: node, below the local fleet (tests/e2e proves it on real nodes): the bundle, each node's own
inventory, and the session protocol against the real driver, run here under this machine's python3.

The bundle's ansible-core 2.17 and the driver run here under every Python a node may have: pyenv's 3.10 (Ubuntu
22.04's, the oldest supported), this machine's /usr/bin/python3 (3.11: Debian 12, a bookworm node), pyenv's 3.12
and 3.13. The E2E fleet's nodes are trixie, Python 3.13.
"""

from __future__ import annotations

import gzip
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from fleetdeploy.cli import build_parser, options
from fleetdeploy.fleet.configure_spec import ConfigureMode, ConfigureSpec
from fleetdeploy.fleet.model import load_fleet
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.nodelocal import wheels
from fleetdeploy.nodelocal.bundle import bundle, members, used_general_plugins
from fleetdeploy.nodelocal.node_inventory import node_files
from fleetdeploy.nodelocal.run import playbook_args
from fleetdeploy.nodelocal.session import DRIVER_SOURCE, Session, SessionOutcome, header, read_secrets
from fleetdeploy.operations.options import ConfigureOptions, UpOptions
from fleetdeploy.paths import PLAYBOOKS_DIR, ROLES_DIR
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.inventory import build_inventory

TOKEN = "tok-NODELOCAL-5e1f0a"
AWS_SECRET = "aws-secret-nodelocal-77"
OTHER_SECRET = "aws-secret-of-another-profile-12"
SYSTEM_PYTHON = "/usr/bin/python3"
# Interpreters themselves (pyenv's shims would need a version set).
PYENV = {minor: sorted(Path("/root/.pyenv/versions").glob(f"3.{minor}.*/bin/python3.{minor}"))
         for minor in (10, 12, 13)}
PYTHONS = [SYSTEM_PYTHON, *(str(found[-1]) for found in PYENV.values() if found)]
OLDEST = str(PYENV[10][-1]) if PYENV[10] else SYSTEM_PYTHON


def _node(instance_id: str, region: str) -> Node:
    return Node(instance_id=instance_id, cluster=f"edge-{region}", region=region, zone=None, host="10.0.0.1",
                port=22, user="ubuntu", key_file="/keys/sky-key", spot=True)


@pytest.fixture()
def inventory(tmp_path: Path) -> JSONObject:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "creds").write_text(f"[default]\naws_access_key_id = AKIAX\naws_secret_access_key = {AWS_SECRET}\n"
                                    "role_arn = arn:aws:iam::1:role/x\n"
                                    f"[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = {OTHER_SECRET}\n")
    for secret in ("token", "creds"):
        (tmp_path / secret).chmod(0o600)
    (tmp_path / "images.tar").write_bytes(b"archive")
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump({
        "name": "edge", "regions": {"us-east-1": {"count": 2}, "eu-west-1": {"count": 1}},
        "orchestrator": {"endpoint": "orch.example.com", "token_file": "token", "api": "https://orch.example.com",
                         "api_token_file": "token"},
        "aws_credentials": {"file": "creds"}, "sensor": {"version": "1.0.0"},
        "images": {"source": "archive", "bacalhau_archive": "images.tar", "sensor_archive": "images.tar"},
    }))
    fleet = load_fleet(tmp_path / "fleet.yaml")
    nodes = [_node("i-a", "us-east-1"), _node("i-b", "us-east-1"), _node("i-c", "eu-west-1")]
    return build_inventory(fleet, nodes, known_hosts=tmp_path / "known_hosts")


def test_a_node_inventory_holds_that_node_alone_with_a_local_connection_and_no_secret(
        inventory: JSONObject, tmp_path: Path) -> None:
    files = node_files(inventory, "edge-i-b", "r1")
    document = yaml.safe_load(files.inventory)
    group = document["all"]["children"]["fleet_edge"]
    hosts = {name: values for region in group["children"].values() for name, values in region["hosts"].items()}
    assert list(hosts) == ["edge-i-b"]
    assert hosts["edge-i-b"]["ansible_connection"] == "local"
    assert not {"ansible_host", "ansible_ssh_private_key_file", "ansible_ssh_extra_args"} & set(hosts["edge-i-b"])
    assert set(group["children"]) == {"edge_us_east_1", "edge_eu_west_1"}  # --limit names still exist
    variables = group["vars"]
    # Secrets: the node's own 0600 copies in the run directory; the controller's paths only on this side.
    assert variables["bacalhau_orchestrator_token_file"] == "/var/lib/fleetdeploy/run-r1/secrets/orchestrator-token"
    assert variables["aws_credentials_source_file"] == "/var/lib/fleetdeploy/run-r1/secrets/aws-credentials"
    assert files.secrets == {"orchestrator-token": tmp_path / "token", "aws-credentials": tmp_path / "creds"}
    # One archive for both images (the same file, under its own name), sent only when the node lacks one of them.
    assert variables["bacalhau_image_archive"] == variables["sensor_image_archive"] == \
        "/var/lib/fleetdeploy/run-r1/archives/0/images.tar"
    assert list(files.archives) == ["archives/0/images.tar"]
    assert files.archives["archives/0/images.tar"][0] == tmp_path / "images.tar"
    # Only the controller reads the orchestrator's API; the digest is the controller's, unchanged.
    assert not any(key.startswith("fleet_orchestrator_api") for key in variables)
    assert variables["fleet_config_digest"] == inventory["all"]["children"]["fleet_edge"]["vars"]["fleet_config_digest"]
    assert TOKEN not in files.inventory and AWS_SECRET not in files.inventory
    with pytest.raises(KeyError):
        node_files(inventory, "edge-i-zzz", "r1")


def test_the_header_carries_secrets_as_text_and_the_playbook_args_carry_none(inventory: JSONObject) -> None:
    files = node_files(inventory, "edge-i-a", "r2")
    sent = json.loads(header("r2", files, read_secrets(files), 123, playbook_args(True, {"fleet_full_run": True})))
    assert sent["secrets"]["orchestrator-token"] == TOKEN  # on stdin only
    # The AWS file as the role copies it: the fleet's profile and its keys, never another profile's.
    assert sent["secrets"]["aws-credentials"] == \
        f"[default]\naws_access_key_id = AKIAX\naws_secret_access_key = {AWS_SECRET}\n"
    assert OTHER_SECRET not in json.dumps(sent)
    assert sent["args"] == ["--check", "--diff", "-e", "fleet_full_run=true"]
    assert sent["archives"] == [{"file": "archives/0/images.tar", "images": ["ghcr.io/bacalhau-project/bacalhau:v1.9.3",
                                                                      sent["archives"][0]["images"][1]]}]
    assert TOKEN not in DRIVER_SOURCE  # the remote command line is the driver's code alone


def test_the_bundle_holds_what_a_node_runs_and_nothing_per_fleet() -> None:
    names = [name for name, _ in members("cp311-x86_64")]
    assert "site/ansible/__main__.py" in names and "site/jinja2/__init__.py" in names
    assert any(n.startswith("site/yaml/_yaml.cpython-311-x86_64") for n in names)
    assert not any(n.startswith("site/ansible_test/") for n in names)
    assert "collections/ansible_collections/community/docker/plugins/modules/docker_compose_v2.py" in names
    assert "collections/ansible_collections/community/general/plugins/filter/from_ini.py" in names
    assert used_general_plugins(ROLES_DIR, PLAYBOOKS_DIR) == {"from_ini"}  # all of community.general it takes
    assert {"project/ansible.cfg", "project/playbooks/site.yml", "group_vars/all.yml",
            "project/playbooks/callback_plugins/fleet_events.py"} <= set(names)
    assert not any("molecule" in n or n.startswith("inventory") or n.endswith((".pyc", ".token")) for n in names)
    # Each node gets its own CPU's and Python's extension; any other platform, the pure-Python fallback.
    assert any(".cpython-310-x86_64" in n for n, _ in members("cp310-x86_64"))
    assert not any(n.endswith(".so") for n, _ in members("any"))


def test_the_bundle_is_built_once_and_the_same_for_the_same_inputs(tmp_path: Path) -> None:
    first = bundle("any", tmp_path)
    stamp = first.stat().st_mtime_ns
    again = bundle("any", tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert gzip.decompress(first.read_bytes())  # a real tar.gz
    assert wheels.platform_tag("3.9", "x86_64") == "any" and wheels.platform_tag("3.12", "aarch64") == "cp312-aarch64"


@pytest.mark.parametrize("python", PYTHONS)
def test_the_bundled_ansible_runs_the_collections_and_the_event_callback_on_the_nodes_python(
        python: str, tmp_path: Path) -> None:
    root = tmp_path / "run"
    with tarfile.open(bundle(_tag(python)), "r:gz") as tar:
        tar.extractall(root, filter="data")
    playbook = root / "project" / "playbooks" / "probe.yml"
    playbook.write_text("""
- hosts: all
  gather_facts: false
  tasks:
    - name: Parse an ini file with community.general
      ansible.builtin.set_fact:
        fleet_report_parsed: "{{ '[default]\\nkey = v' | community.general.from_ini }}"
    - name: Reach community.docker
      community.docker.docker_host_info:
        docker_host: unix:///nonexistent.sock
      ignore_errors: true
""")
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "PYTHONPATH": str(root / "site"),
           "ANSIBLE_CONFIG": str(root / "project" / "ansible.cfg"),
           "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"), "ANSIBLE_STDOUT_CALLBACK": "fleet_events",
           "ANSIBLE_LOCAL_TEMP": str(root / "tmp")}
    proc = subprocess.run([python, "-m", "ansible", "playbook", "-i", "n1,", "-c", "local", "-e",
                           f"ansible_python_interpreter={python}", str(playbook)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    events = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines()
              if line.startswith("FLEET-EVENT ")]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    by_task = {e["event_data"]["task"]: e for e in events if e["event"] in ("runner_on_ok", "runner_on_failed")}
    parsed = by_task["Parse an ini file with community.general"]["event_data"]["res"]["ansible_facts"]
    assert parsed["fleet_report_parsed"] == {"default": {"key": "v"}}
    docker = by_task["Reach community.docker"]
    # The module ran (it could not reach an engine), so the collection resolved under this ansible-core.
    assert docker["event"] == "runner_on_failed" and docker["event_data"]["ignore_errors"] is True
    assert "nonexistent.sock" in json.dumps(docker["event_data"]["res"])
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]["stats"]
    assert stats["ok"]["n1"] == 2 and stats["failures"].get("n1", 0) == 0  # an ignored failure counts as ok


def _tag(python: str) -> str:
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    return wheels.platform_tag(version, os.uname().machine)


SITE = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Read the secret where the inventory points
      ansible.builtin.stat:
        path: "{{ bacalhau_orchestrator_token_file }}"
      register: token
    - name: Check the secret file and the archive
      ansible.builtin.assert:
        that:
          - token.stat.mode == '0600'
          - lookup('ansible.builtin.file', bacalhau_orchestrator_token_file) == expected_token
          - (lookup('ansible.builtin.file', bacalhau_image_archive) | length) == expected_archive_size | int
    - name: Wait
      # Then what a module's lazily made temporary directory does: a directory under the run's (HOME).
      ansible.builtin.shell: >-
        sleep {{ wait | default(0) }} && touch {{ marker | default('/dev/null') }}
        && mkdir -p {{ lookup('ansible.builtin.env', 'HOME') }}/tmp/made-late
      changed_when: true
    - name: Report
      ansible.builtin.set_fact:
        fleet_report_complete: true
"""


def _project_bundle(tmp_path: Path, site: str = SITE) -> Path:
    """A bundle with the real ansible-core and callback, and a small site.yml that checks what the driver set up."""
    real = bundle("any")
    out = tmp_path / "test-bundle.tar.gz"
    with tarfile.open(real, "r:gz") as source, tarfile.open(out, "w:gz") as target:
        for member in source.getmembers():
            if member.name == "project/playbooks/site.yml":
                data = site.encode()
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
            elif not member.name.startswith("project/roles/"):
                target.addfile(member, source.extractfile(member))
    return out


def _session(inventory: JSONObject, test_bundle: Path, image: str, extra: list[str], events: list[JSONObject],
             base: Path, wrapper: tuple[str, ...] = (), stop_grace_s: float = 60) -> Session:
    files = node_files(inventory, "edge-i-a", "t1", base=str(base))
    name = next(iter(files.archives))
    files.archives[name] = (files.archives[name][0], [image])
    args = ["-e", f"expected_token={TOKEN}", "-e", f"expected_archive_size={len('archive')}", *extra]
    return Session([*wrapper, OLDEST, "-c", DRIVER_SOURCE], files, read_secrets(files),
                   lambda tag: test_bundle, "t1", args, events.append, timeout_s=300, base=str(base),
                   stop_grace_s=stop_grace_s)


def test_a_session_runs_the_playbook_on_the_node_and_leaves_nothing_there(
        inventory: JSONObject, tmp_path: Path) -> None:
    test_bundle, base, events = _project_bundle(tmp_path), tmp_path / "node", []
    (base / "run-left-by-a-power-loss" / "secrets").mkdir(parents=True)
    outcome = _session(inventory, test_bundle, "localhost/no-such-image:never", [], events, base).run()
    assert outcome.rc == 0 and outcome.message == "", outcome
    tasks = [e["event_data"]["task"] for e in events if e["event"] == "runner_on_ok"]
    assert tasks == ["Read the secret where the inventory points", "Check the secret file and the archive", "Wait",
                     "Report"]
    assert [e["event_data"]["task"] for e in events if e["event"] == "runner_on_start"][0] == tasks[0]
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]["stats"]
    assert stats["changed"] == {"edge-i-a": 1}
    assert os.listdir(base) == ["lock"]  # the run directory, secrets included, is gone; so is what another left


def test_an_archive_is_sent_only_to_a_node_that_lacks_its_image(inventory: JSONObject, tmp_path: Path) -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "image", "inspect", "localhost/fleet-python:trixie"],
                                                        capture_output=True, check=False).returncode != 0:
        pytest.skip("needs the local images (scripts/build-images.sh)")
    events: list[JSONObject] = []
    # The image is here: the archive stays on the controller and the node gets an empty stand-in.
    outcome = _session(inventory, _project_bundle(tmp_path), "localhost/fleet-python:trixie", [], events,
                       tmp_path / "node").run()
    failed = [e for e in events if e["event"] == "runner_on_failed"]
    assert outcome.rc == 2 and "expected_archive_size" in json.dumps(failed[0]["event_data"]["res"])


def test_a_check_run_is_sent_no_archive(inventory: JSONObject, tmp_path: Path) -> None:
    """It loads nothing: at 300 new nodes a dry run would otherwise move an image archive to each."""
    events: list[JSONObject] = []
    outcome = _session(inventory, _project_bundle(tmp_path), "x/none:1", ["--check", "-e", "expected_archive_size=0"],
                       events, tmp_path / "node").run()
    assert outcome.rc == 0, [e["event_data"].get("res") for e in events if e["event"] == "runner_on_failed"]


def _cancel_during_wait(inventory: JSONObject, tmp_path: Path, wait: int, grace: float) -> tuple[Path, float]:
    """Cancel a session while its playbook runs `sleep <wait> && touch marker`; returns the node's base directory
    and when the session was cancelled. As over ssh: cancelling kills the controller's client (setsid -w here),
    while the driver lives on as on a node and only sees its session end."""
    test_bundle, base, events = _project_bundle(tmp_path), tmp_path / "node", []
    session = _session(inventory, test_bundle, "x/none:1", ["-e", f"wait={wait}", "-e", f"marker={tmp_path}/done"],
                       events, base, ("setsid", "-w"), stop_grace_s=grace)
    ended: list[SessionOutcome] = []
    runner = threading.Thread(target=lambda: ended.append(session.run()))
    runner.start()
    deadline = time.monotonic() + 120
    while not _running(f"sleep {wait}") and time.monotonic() < deadline:  # the module has started
        time.sleep(0.2)
    started = time.monotonic()
    session.cancel()
    runner.join(30)
    assert not runner.is_alive() and time.monotonic() - started < 10
    assert ended[0].message == "cancelled"
    # The playbook stops at once and the run directory (secrets and all) goes.
    while (os.listdir(base) != ["lock"] or _running(f"wait={wait}")) and time.monotonic() - started < 25:
        time.sleep(0.2)
    assert os.listdir(base) == ["lock"] and not _running(f"wait={wait}")
    return base, started


def _lock_held(base: Path) -> bool:
    with (base / "lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_a_cancelled_session_stops_the_playbook_at_once_and_lets_a_running_module_finish(
        inventory: JSONObject, tmp_path: Path) -> None:
    """A module killed mid-way (dpkg unpacking) would leave the node for a person to mend: it finishes, with the
    node's lock held so that the next run waits for it."""
    base, _ = _cancel_during_wait(inventory, tmp_path, wait=14, grace=60)
    assert not (tmp_path / "done").exists() and _running("sleep 14") and _lock_held(base)
    deadline = time.monotonic() + 30
    while (_running("sleep 14") or _lock_held(base)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "done").exists() and not _lock_held(base)
    assert os.listdir(base) == ["lock"]  # what the module made in the run's directory after the first removal too


def test_a_module_still_running_after_the_grace_is_killed(inventory: JSONObject, tmp_path: Path) -> None:
    base, started = _cancel_during_wait(inventory, tmp_path, wait=61, grace=3)
    while (_running("sleep 61") or _lock_held(base)) and time.monotonic() - started < 40:
        time.sleep(0.2)
    assert not _running("sleep 61") and not _lock_held(base) and not (tmp_path / "done").exists()


def _running(needle: str) -> bool:
    return subprocess.run(["pgrep", "-f", needle], capture_output=True, check=False).returncode == 0


def test_a_broken_bundle_or_a_lost_connection_is_that_nodes_failure_in_one_line(
        inventory: JSONObject, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tar")
    outcome = _session(inventory, broken, "x/none:1", [], [], tmp_path / "node").run()
    assert outcome.rc is None and not outcome.unreachable and "ReadError" in outcome.message, outcome
    assert os.listdir(tmp_path / "node") == ["lock"]
    # An archive this side cannot read ends that node's session in one line, at once (the node is not left waiting).
    gone = _session(inventory, _project_bundle(tmp_path), "x/none:1", [], [], tmp_path / "node")
    gone._files.archives = {name: (tmp_path / "vanished.tar", images)  # noqa: SLF001
                            for name, (_, images) in gone._files.archives.items()}  # noqa: SLF001
    started = time.monotonic()
    missing = gone.run()
    assert missing.rc is None and missing.message.startswith("cannot read ") and "vanished.tar" in missing.message
    assert time.monotonic() - started < 60

    def no_bundle(tag: str) -> Path:
        raise RuntimeError(f"nothing for {tag}")

    files = node_files(inventory, "edge-i-a", "t2", base=str(tmp_path / "node"))
    started = time.monotonic()
    unbuilt = Session([SYSTEM_PYTHON, "-c", DRIVER_SOURCE], files, {}, no_bundle, "t2", [], lambda event: None,
                      timeout_s=300, base=str(tmp_path / "node")).run()
    assert unbuilt.message.startswith("no bundle for the node: nothing for cp") and time.monotonic() - started < 30
    lost = Session(["sh", "-c", "echo 'ssh: connect to host 10.0.0.1 port 22: Connection refused' >&2; exit 255"],
                   files, {}, lambda tag: broken, "t2", [], lambda event: None, timeout_s=30).run()
    assert lost.unreachable and lost.message == "ssh: connect to host 10.0.0.1 port 22: Connection refused"


def test_the_driver_refuses_a_python_older_than_ansible_cores(tmp_path: Path) -> None:
    code = DRIVER_SOURCE.replace("MIN_PYTHON = (3, 10)", "MIN_PYTHON = (9, 0)")
    proc = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True, timeout=30, check=False)
    assert proc.returncode == 3
    assert b"FLEET-ERROR the node's python3 is" in proc.stdout and b"configure.mode: controller" in proc.stdout


def test_the_mode_comes_from_the_fleet_file_and_the_flag_wins(tmp_path: Path) -> None:
    assert ConfigureSpec().configure_mode is ConfigureMode.NODE  # the benchmark's choice (docs/benchmark.md)
    assert ConfigureSpec.model_validate({"mode": "controller"}).configure_mode is ConfigureMode.CONTROLLER
    for bad in ("nodes", True, None):
        with pytest.raises(ValueError):
            ConfigureSpec.model_validate({"mode": bad})
    with pytest.raises(ValueError):
        ConfigureSpec.model_validate({"mode": "node", "forks": 10})
    _, up = options(build_parser().parse_args(["up", "--configure-mode", "controller"]))
    assert isinstance(up, UpOptions) and up.configure_mode is ConfigureMode.CONTROLLER
    _, configure = options(build_parser().parse_args(["configure", "--check", "--configure-mode", "node"]))
    assert isinstance(configure, ConfigureOptions) and configure.configure_mode is ConfigureMode.NODE
    _, plain = options(build_parser().parse_args(["configure"]))
    assert isinstance(plain, ConfigureOptions) and plain.configure_mode is None  # the fleet file's then


def test_a_typo_in_the_mode_is_one_line_and_exit_2(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    (tmp_path / "token").write_text("t\n")
    (tmp_path / "token").chmod(0o600)
    fleet.write_text("name: x\nprovider: local\nregions: {us-east-1: {count: 1}}\n"
                     "orchestrator: {endpoint: local, token_file: token}\nsensor: {version: v1.17.0}\n"
                     "configure: {mode: nodes}\n")
    repo = Path(__file__).parent.parent
    proc = subprocess.run([sys.executable, "deploy.py", "-f", str(fleet), "configure"], cwd=repo,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "configure.mode" in proc.stderr, proc.stderr
    flag = subprocess.run([sys.executable, "deploy.py", "-f", str(fleet), "up", "--configure-mode", "nodes"],
                          cwd=repo, capture_output=True, text=True, timeout=60, check=False)
    assert flag.returncode == 2 and "invalid choice: 'nodes'" in flag.stderr
