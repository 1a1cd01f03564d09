"""The canary's job, its judgement of a node's answer, and the runner's bookkeeping (timeouts, refusals).

The job's real run is proven on the E2E fleet (tests/e2e/test_local_fleet_canary.py) and against the orchestrator
and compute doubles (tests/doubles). Here the job's program runs for real on sensor-shaped SQLite files in WAL
mode; the API is a scripted stand-in of Bacalhau's job endpoints (a test double at the orchestrator boundary,
answering in v1.9.3's shapes as tests/doubles/bacalhau implements them).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetdeploy.canary.job import CANARY_LABEL, SENSOR_DATABASE, canary_job, judge_output
from fleetdeploy.canary.run import CanarySettings, CanaryTarget, run_canary
from fleetdeploy.orchestrator.api import OrchestratorApi, OrchestratorApiError


def _program(job: dict[str, Any]) -> list[str]:
    return list(job["Tasks"][0]["Engine"]["Params"]["Entrypoint"])


def test_the_job_is_pinned_to_the_node_and_reads_the_data_read_only() -> None:
    job = canary_job("demo", "demo-i-1", "i-1", "localhost/fleet-python:trixie", "/opt/sensor/data", 60)
    assert job["Type"] == "batch" and job["Count"] == 1 and job["Namespace"] == "default"
    assert job["Constraints"] == [{"Key": "instance-id", "Operator": "=", "Values": ["i-1"]}]
    assert job["Labels"] == {"fleet": "demo", "purpose": CANARY_LABEL}
    (task,) = job["Tasks"]
    assert task["Engine"]["Type"] == "docker" and task["Engine"]["Params"]["Image"] == "localhost/fleet-python:trixie"
    (source,) = task["InputSources"]
    assert source["Source"] == {"Type": "localDirectory",
                                "Params": {"SourcePath": "/opt/sensor/data", "ReadWrite": False}}
    assert task["Network"] == {"Type": "None"} and task["Timeouts"] == {"ExecutionTimeout": 60}


def _sensor_database(directory: Path, rows: int) -> sqlite3.Connection:
    """A database like the sensor's: WAL mode, readings still in the WAL (the writer keeps it open)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SENSOR_DATABASE
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, timestamp TEXT)")
    for index in range(rows):
        connection.execute("INSERT INTO sensor_readings (timestamp) VALUES (?)", (str(index),))
    connection.commit()
    return connection


def _run_program(data: Path) -> subprocess.CompletedProcess[str]:
    job = canary_job("demo", "n", "i", "img:1", str(data), 60)
    argv = _program(job)
    # The job's mount is the data directory itself: run the program against it as the container would.
    return subprocess.run([sys.executable, *argv[1:-3], str(data), *argv[-2:]], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_program_counts_rows_still_in_the_wal_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer = _sensor_database(data, 5)  # open while the job reads, as the sensor's
    assert (data / f"{SENSOR_DATABASE}-wal").stat().st_size > 0  # the rows are in the WAL, not in the file
    data.chmod(0o555)  # read-only, as the job's mount
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in data.iterdir()}
    try:
        done = _run_program(data)
    finally:
        data.chmod(0o755)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["rows"] == 5 and 0 <= answer["age_seconds"] < 30
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in data.iterdir()} == before
    assert judge_output(done.stdout, 0, "", 120).right
    writer.close()


def test_the_program_names_a_missing_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    done = _run_program(tmp_path / "data")
    assert done.returncode == 1
    verdict = judge_output(done.stdout, done.returncode, done.stderr, 120)
    assert not verdict.right
    assert verdict.reason == f"the job failed: no sensor database at {tmp_path / 'data' / SENSOR_DATABASE} on the node"


@pytest.mark.parametrize(
    ("stdout", "exit_code", "stderr", "right", "reason"),
    [
        ('{"rows": 12, "age_seconds": 1.5}\n', 0, "", True, ""),
        ('{"rows": 0, "age_seconds": 1.5}', 0, "", False, "the sensor database has no readings"),
        ('{"rows": 12, "age_seconds": 600}', 0, "", False, "no new reading for 600 s (is the sensor running?)"),
        ("", 1, "Traceback ...\nsqlite3.DatabaseError: file is not a database\n", False,
         "the job failed: sqlite3.DatabaseError: file is not a database"),
        ("", 137, "", False, "the job failed: exit code 137"),
        ("hello", 0, "", False, "output not understood: 'hello'"),
    ],
)
def test_judgement(stdout: str, exit_code: int, stderr: str, right: bool, reason: str) -> None:
    verdict = judge_output(stdout, exit_code, stderr, 120)
    assert (verdict.right, verdict.reason) == (right, reason)


class ScriptedJobsApi(OrchestratorApi):
    """TEST DOUBLE of Bacalhau's job endpoints (v1.9.3 shapes): each job ends as its node's script says."""

    def __init__(self, endings: dict[str, dict[str, Any] | None], refuse: frozenset[str] = frozenset()) -> None:
        super().__init__("http://orchestrator.test")
        object.__setattr__(self, "_endings", endings)
        object.__setattr__(self, "_refuse", refuse)
        object.__setattr__(self, "_jobs", {})

    def call(self, path: str, method: str = "GET", payload: Any = None, expected: str = "JSON") -> object:
        jobs: dict[str, str] = self._jobs  # type: ignore[attr-defined]
        if method == "PUT":
            instance = payload["Job"]["Constraints"][0]["Values"][0]
            if instance in self._refuse:  # type: ignore[attr-defined]
                raise OrchestratorApiError("orchestrator API http://orchestrator.test answered 403 Request Forbidden")
            job_id = f"j-{instance}"
            jobs[job_id] = instance
            return {"JobID": job_id, "EvaluationID": "e", "Warnings": None}
        job_id = path.split("/")[5]
        ending = self._endings[jobs[job_id]]  # type: ignore[attr-defined]
        if path.endswith("/executions"):
            return {"Items": [] if ending is None else [ending["execution"]], "NextToken": ""}
        state = {"StateType": "Running"} if ending is None else {"StateType": ending["state"]}
        return {"Job": {"ID": job_id, "State": state}}


def _execution(state: int, stdout: str = "", exit_code: int = 0, message: str = "") -> dict[str, Any]:
    compute: dict[str, Any] = {"StateType": state}
    if message:
        compute["Message"] = message
    return {"ComputeState": compute, "RunOutput": {"Stdout": stdout, "StdoutTruncated": False, "stderr": "",
                                                    "StderrTruncated": False, "ExitCode": exit_code, "ErrorMsg": ""}}


def test_the_runner_reports_each_node_and_never_waits_past_its_bound() -> None:
    endings: dict[str, dict[str, Any] | None] = {
        "i-good": {"state": "Completed", "execution": _execution(9, '{"rows": 3, "age_seconds": 1}')},
        "i-denied": {"state": "Failed", "execution": _execution(
            10, message="path /opt/sensor/data is not allowed")},
        "i-slow": None,
        "i-refused": None,
    }
    api = ScriptedJobsApi(endings, refuse=frozenset({"i-refused"}))
    now = [0.0]
    seen: list[tuple[str, str]] = []
    results = run_canary(
        api, CanarySettings("demo", "img:1", "/opt/sensor/data", 5.0, 120.0),
        [CanaryTarget(f"demo-{i}", i) for i in endings],
        lambda node, state, detail: seen.append((node, state)),
        clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    by = {r.node: r for r in results}
    assert [r.node for r in results] == [f"demo-{i}" for i in endings]
    assert by["demo-i-good"].ok and by["demo-i-good"].rows == 3
    assert not by["demo-i-denied"].ran and by["demo-i-denied"].reason == (
        "execution Failed: path /opt/sensor/data is not allowed")
    assert by["demo-i-slow"].reason == "did not finish within 5 s (job Running)" and by["demo-i-slow"].seconds is None
    assert by["demo-i-refused"].job_id == "" and by["demo-i-refused"].reason.startswith("not submitted: ")
    assert now[0] <= 6.0  # bounded: one poll interval past the timeout at most
    assert ("demo-i-good", "ok") in seen and ("demo-i-slow", "failed") in seen


def test_the_program_is_plain_python_the_job_image_runs() -> None:
    # No third-party module: any image with python3 (and its sqlite3 module) runs it.
    program = _program(canary_job("demo", "n", "i", "img:1", "/d", 60))[2]
    imports = {word.strip(",") for line in program.splitlines() if line.startswith("import ")
               for word in line.split()[1:]}
    assert imports == {"json", "os", "shutil", "sqlite3", "sys", "tempfile", "time"}
