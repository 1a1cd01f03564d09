"""The CLI through a real subprocess: exit codes, one-line errors, and no SkyPilot import where it isn't needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Runs deploy.py in-process under a tiny harness that reports whether `sky` got imported.
HARNESS = textwrap.dedent(
    """
    import runpy, sys
    sys.argv = ["deploy.py", *sys.argv[1:]]
    code = 0
    try:
        runpy.run_path("deploy.py", run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    print("SKY-IMPORTED" if "sky" in sys.modules else "SKY-NOT-IMPORTED", file=sys.stderr)
    sys.exit(code)
    """
)


def deploy(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HARNESS, *args], cwd=cwd, capture_output=True, text=True,
                          env=env or dict(os.environ, COLUMNS="200"), timeout=120)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line and not line.startswith("SKY-")]


@pytest.fixture()
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "orchestrator.token"
    path.write_text("cli-test-token\n")
    path.chmod(0o600)
    return path


def write_fleet(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(body))
    return path


GOOD = """
name: clitest
regions:
  us-east-1: {count: 2}
  eu-west-1: {count: 1, zone: eu-west-1a}
orchestrator:
  endpoint: orch.example.com
  token_file: orchestrator.token
bacalhau: {version: v1.9.3}
sensor: {version: v1.17.0}
"""


def test_help_answers_without_importing_skypilot() -> None:
    result = deploy("--help")
    assert result.returncode == 0
    assert "exit codes" in result.stdout and "SKY-NOT-IMPORTED" in result.stderr


def test_every_command_has_help() -> None:
    for command in ("up", "plan", "status", "configure", "health", "ssh", "logs", "exec", "inventory", "down",
                    "watch", "events", "report", "cost", "import-legacy", "canary"):
        result = deploy(command, "--help")
        assert result.returncode == 0, command
        assert "SKY-NOT-IMPORTED" in result.stderr


def test_cost_needs_a_positive_window(tmp_path: Path, token_file: Path) -> None:
    fleet = write_fleet(tmp_path, GOOD)
    result = deploy("-f", str(fleet), "cost", "--days", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == "error: --days must be at least 1 (got 0)", result.stderr


def test_canary_without_the_orchestrators_api_is_refused_before_anything_runs(tmp_path: Path, token_file: Path) -> None:
    fleet = write_fleet(tmp_path, GOOD)
    result = deploy("-f", str(fleet), "--local", "canary")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0].startswith("error: canary needs orchestrator.api in the fleet file")
    assert "SKY-NOT-IMPORTED" in result.stderr
    bad = deploy("-f", str(fleet), "canary", "--timeout", "0")
    assert bad.returncode == 2 and "error: --timeout must be more than 0" in bad.stderr


def test_local_plan_does_not_import_skypilot(tmp_path: Path, token_file: Path) -> None:
    # The SkyPilot plan reads cluster state from SkyPilot's API server: tests/sky_real covers it.
    fleet = write_fleet(tmp_path, GOOD)
    result = deploy("-f", str(fleet), "--local", "plan")
    assert result.returncode == 0, result.stderr
    assert "clitest-us-east-1" in result.stdout and "clitest-eu-west-1" in result.stdout
    assert "cli-test-token" not in result.stdout + result.stderr
    assert "SKY-NOT-IMPORTED" in result.stderr


@pytest.mark.parametrize(
    ("args", "body", "phrase"),
    [
        (("plan",), None, "fleet.yaml"),  # missing fleet file
        (("plan",), GOOD.replace("count: 2", "cont: 2"), "did you mean 'count'"),
        (("plan",), GOOD.replace("count: 2", "count: 0"), "count"),
        (("plan",), GOOD.replace("us-east-1", "us-east-9"), "us-east-9"),
        (("plan",), GOOD.replace("orch.example.com", "http://orch.example.com"), "endpoint"),
        (("plan",), GOOD.replace("orchestrator.token", "missing.token"), "missing.token"),
        (("up",), GOOD.replace("count: 2", "count: -1"), "count"),
        (("down",), GOOD, "--yes"),  # no terminal to confirm on
        (("logs", "node1", "--tail", "0"), GOOD, "--tail"),
        (("exec", "all"), GOOD, "exec needs a command"),
        (("frobnicate",), GOOD, "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, token_file: Path, args: tuple[str, ...],
                                          body: str | None, phrase: str) -> None:
    fleet = tmp_path / "fleet.yaml"
    if body is not None:
        write_fleet(tmp_path, body)
    result = deploy("-f", str(fleet), *args)
    lines = error_lines(result)
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, lines
    assert phrase in lines[0]
    assert "SKY-NOT-IMPORTED" in result.stderr


def test_empty_token_file_is_refused(tmp_path: Path, token_file: Path) -> None:
    token_file.write_text("  \n")
    result = deploy("-f", str(write_fleet(tmp_path, GOOD)), "up")
    assert result.returncode == 2
    assert "empty" in error_lines(result)[0]


def test_local_provider_without_docker_is_exit_2(tmp_path: Path, token_file: Path) -> None:
    fleet = write_fleet(tmp_path, GOOD.replace("orch.example.com", "local").replace("name: clitest",
                                                                                     "name: clitest\nprovider: local"))
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    env = dict(os.environ, PATH=str(bare_path), FLEETDEPLOY_STATE_DIR=str(tmp_path / "state"))
    result = deploy("-f", str(fleet), "up", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = error_lines(result)
    assert len(lines) == 1 and "docker" in lines[0]
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*"))


def test_piped_output_is_never_cut_or_wrapped(tmp_path: Path, token_file: Path) -> None:
    name = "a-very-long-fleet-name-for-wide-columns1"  # 40 characters, the longest allowed
    fleet = write_fleet(tmp_path, GOOD.replace("name: clitest", f"name: {name}"))
    result = deploy("-f", str(fleet), "--local", "plan", env=dict(os.environ, COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    # The local plan names every node container in one line longer than 80 columns.
    assert any(f"fleet-{name}-eu-west-1-lc-" in line and len(line) > 80 for line in result.stdout.splitlines())
    assert f"{name}-us-east-1" in result.stdout


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"  leading-space-token\n", "one line without spaces"),
        (b"two\nlines\n", "one line without spaces"),
        (b"\n\n", "file is empty"),
    ],
)
def test_token_rule_is_the_roles_rule(tmp_path: Path, content: bytes, phrase: str) -> None:
    # The role reads the token with lookup('file'), which strips the end only: anything else would differ.
    (tmp_path / "orchestrator.token").write_bytes(content)
    (tmp_path / "orchestrator.token").chmod(0o600)
    result = deploy("-f", str(write_fleet(tmp_path, GOOD)), "--local", "plan")
    assert result.returncode == 2 and phrase in error_lines(result)[0] and len(error_lines(result)) == 1


def test_group_readable_token_is_refused(tmp_path: Path, token_file: Path) -> None:
    token_file.chmod(0o640)
    result = deploy("-f", str(write_fleet(tmp_path, GOOD)), "plan")
    assert result.returncode == 2 and "chmod 600" in error_lines(result)[0]


@pytest.mark.parametrize(("source", "phrase"), [("/dev/zero", "larger than 1024 KiB"), ("nul", "NUL byte at line 2")])
def test_endless_or_binary_fleet_file_is_one_line(tmp_path: Path, source: str, phrase: str) -> None:
    path = Path(source)
    if source == "nul":
        path = tmp_path / "fleet.yaml"
        path.write_bytes(b"name: x\nregions: \0\n")
    result = deploy("-f", str(path), "plan")
    assert result.returncode == 2 and len(error_lines(result)) == 1 and phrase in error_lines(result)[0]
    assert "Traceback" not in result.stderr


def test_no_arguments_shows_usage_and_commands() -> None:
    result = deploy()
    assert result.returncode == 2
    assert "usage: deploy.py" in result.stderr and "commands:" in result.stderr and "inventory" in result.stderr


def test_options_are_accepted_after_the_command(tmp_path: Path, token_file: Path) -> None:
    fleet = write_fleet(tmp_path, GOOD)
    result = deploy("plan", "-f", str(fleet), "--local", "--output", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["provider"] == "local" and [c["cluster"] for c in data["clusters"]] == [
        "clitest-eu-west-1", "clitest-us-east-1"]


def test_ssh_without_a_node_says_the_node_is_required() -> None:
    result = deploy("ssh")
    assert result.returncode == 2
    assert error_lines(result) == ["deploy.py ssh: error: the following arguments are required: node"]


def test_every_subcommand_and_argument_has_help() -> None:
    from fleetdeploy.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]  # noqa: SLF001
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:  # noqa: SLF001
            assert action.help, f"{name} {action.dest}"


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4, 0.8])
def test_ctrl_c_while_starting_is_interrupted_never_a_traceback(tmp_path: Path, token_file: Path,
                                                                delay: float) -> None:
    # Early enough to land in imports or argument parsing; a signal before Python itself runs kills it by SIGINT.
    fleet = write_fleet(tmp_path, GOOD)
    proc = subprocess.Popen([sys.executable, "deploy.py", "-f", str(fleet), "--local", "plan"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    if proc.returncode == 130:
        assert err.strip().splitlines()[-1] == "interrupted"
    else:
        assert proc.returncode in (0, -signal.SIGINT), (proc.returncode, err)  # finished first, or pre-Python


def test_entry_point_is_executable_and_the_example_shows_the_real_command() -> None:
    entry = REPO / "deploy.py"
    assert entry.read_text().startswith("#!/usr/bin/env python3\n") and os.access(entry, os.X_OK)
    assert "python deploy.py -f fleet.yaml up" in (REPO / "fleet.example.yaml").read_text().splitlines()[0]


def test_unconfirmed_down_says_so_on_stderr(tmp_path: Path, token_file: Path) -> None:
    import pty

    fleet = write_fleet(tmp_path, GOOD)
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin is the terminal; stderr goes to a file the parent reads
        err = os.open(tmp_path / "stderr", os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(err, 2)
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "deploy.py", "-f", str(fleet), "--local", "down"])
    os.write(fd, b"not-the-fleet-name\n")
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    assert "not confirmed: nothing was removed" in (tmp_path / "stderr").read_text()
    assert b"not confirmed" not in seen  # the terminal (stdout) never gets it


def test_run_logs_are_private_and_only_the_last_twenty_are_kept(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetdeploy.runs.runlog import RUNS_KEPT, RunLog

    monkeypatch.setenv("FLEETDEPLOY_STATE_DIR", str(tmp_path))
    runs = tmp_path / "demo" / "runs"
    runs.mkdir(parents=True)
    for index in range(RUNS_KEPT + 5):
        (runs / f"20200101-0000{index:02d}-1-old.log").write_text("old")
    with RunLog.open("demo", "Configuring nodes") as log:
        assert log.path.stat().st_mode & 0o777 == 0o600 and log.path.name.endswith("-configuring-nodes.log")
    kept = sorted(runs.glob("*.log"))
    assert len(kept) == RUNS_KEPT and log.path in kept


def test_down_tears_down_despite_an_unrelated_mistake_in_the_fleet_file(tmp_path: Path, token_file: Path) -> None:
    """A broken version or token file must not keep a fleet running: down needs only name, provider, regions."""
    body = GOOD.replace("name: clitest", "name: clitest\nprovider: local").replace("v1.9.3", "v1.5.1")
    fleet = write_fleet(tmp_path, body)
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(tmp_path / "state"))
    result = deploy("-f", str(fleet), "down", "--yes", "-o", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    warning = [line for line in error_lines(result) if line.startswith("warning:")]
    assert warning and "bacalhau.version" in warning[0] and "tearing down anyway" in warning[0]
    assert json.loads(result.stdout)["ok"] is True  # nothing of this fleet existed: nothing to remove

    bad_region = write_fleet(tmp_path, body.replace("us-east-1", "us-east-9"))
    refused = deploy("-f", str(bad_region), "down", "--yes", env=env)
    assert refused.returncode == 2 and "regions.us-east-9: unknown region (not an AWS, GCP or Azure region name)" in error_lines(refused)[0]


@pytest.mark.parametrize("template", ["dev.yaml", "prod.yaml"])
def test_the_scenario_templates_pass_plan(tmp_path: Path, template: str) -> None:
    """examples/dev.yaml and prod.yaml, copied beside their token files as a user would, pass `plan`."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text((REPO / "examples" / template).read_text())
    for name in ("orchestrator_token", "orchestrator_api_key"):
        (tmp_path / name).write_text("a-long-enough-example-secret-0123456789\n")
        (tmp_path / name).chmod(0o600)
    result = deploy("-f", str(fleet), "plan", "-o", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    clusters = {c["cluster"]: c for c in plan["clusters"]}
    if template == "dev.yaml":
        assert list(clusters) == ["dev-us-east-1"] and clusters["dev-us-east-1"]["nodes"] == 1
        candidates = clusters["dev-us-east-1"]["candidates"]
        assert candidates == [f"{t} {m} any" for m in ("spot", "on-demand") for t in ("t3.medium", "t3a.medium")]
    else:
        assert sorted(clusters) == ["prod-eu-west-1", "prod-us-east-1", "prod-us-west-2"]
        assert sum(c["nodes"] for c in clusters.values()) == 10
        europe = clusters["prod-eu-west-1"]["candidates"]
        assert europe[:3] == [f"t3.large spot eu-west-1{z}" for z in "abc"] and len(europe) == 9
