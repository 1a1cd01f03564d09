"""Unit tests for roles/health_check/files/fleet-health-check.py against local fakes on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import http.server
import importlib.util
import json
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "roles" / "health_check" / "files" / "fleet-health-check.py"
ORCHESTRATORS = ["nats://orchestrator.example:4222"]


@pytest.fixture(scope="module")
def hc() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_health_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fleet_health_check"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


class FakeNode:
    """What the fake HTTP endpoints answer; tests mutate it to break one thing at a time."""

    def __init__(self) -> None:
        self.alive: tuple[int, Any] = (200, {"Status": "OK"})
        self.config: tuple[int, Any] = (200, {"config": {"Compute": {"Enabled": True, "Orchestrators": ORCHESTRATORS}}})
        self.statusz: tuple[int, Any] = (200, {"status": "running"})


def _handler(node: FakeNode) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            routes = {
                "/api/v1/agent/alive": node.alive,
                "/api/v1/agent/config": node.config,
                "/statusz": node.statusz,
                "/healthz": (503, {"database_healthy": False}),
            }
            status, body = routes.get(self.path, (404, {"error": "not found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@pytest.fixture()
def node() -> Iterator[tuple[FakeNode, str]]:
    state = FakeNode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _fake_docker(tmp_path: Path, info_rc: int, states: dict[str, dict[str, Any]]) -> str:
    """A stand-in docker CLI: `info` answers with info_rc, `inspect` prints the given .State or fails."""
    script = tmp_path / "docker"
    script.write_text(
        "#!" + sys.executable + "\n"
        "import json, sys\n"
        f"states = {json.dumps(states)!r}\n"
        "states = json.loads(states)\n"
        "args = sys.argv[1:]\n"
        "if args[0] == 'info':\n"
        f"    if {info_rc}:\n"
        "        print('Cannot connect to the Docker daemon', file=sys.stderr); sys.exit(1)\n"
        "    print('26.1.5'); sys.exit(0)\n"
        "if args[0] == 'inspect':\n"
        "    name = args[-1]\n"
        "    if name not in states:\n"
        "        print('Error: No such container: ' + name, file=sys.stderr); sys.exit(1)\n"
        "    print(json.dumps(states[name])); print('localhost/' + name + ':v1'); sys.exit(0)\n"
        "sys.exit(2)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


HEALTHY_STATES = {
    "bacalhau": {"Status": "running", "Running": True, "ExitCode": 0},
    "sensor": {"Status": "running", "Running": True, "ExitCode": 0, "Health": {"Status": "healthy"}},
}


def _make_db(path: Path, rows: int) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")  # like the simulator
    connection.execute("CREATE TABLE sensor_readings (id INTEGER PRIMARY KEY, temperature REAL)")
    connection.executemany("INSERT INTO sensor_readings (temperature) VALUES (?)", [(20.0,)] * rows)
    connection.commit()
    connection.close()


class Writer:
    """Inserts a row every 50 ms, like a running simulator."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path)
        while not self.stop.is_set():
            connection.execute("INSERT INTO sensor_readings (temperature) VALUES (21.0)")
            connection.commit()
            time.sleep(0.05)
        connection.close()

    def __enter__(self) -> "Writer":
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _settings(hc: ModuleType, tmp_path: Path, url: str, docker: str, **changes: Any) -> Any:
    base = hc.Settings(
        status_file=str(tmp_path / "state" / "status.json"),
        log_file=str(tmp_path / "fleet-health.log"),
        docker_command=docker,
        bacalhau_api_url=url,
        bacalhau_orchestrators=tuple(ORCHESTRATORS),
        sensor_url=url,
        sensor_db_path=str(tmp_path / "sensor_data.db"),
        readings_interval_seconds=0.5,
        disk_paths=(str(tmp_path),),
        disk_min_free_percent=0.0,
        memory_min_available_percent=0.0,
        http_timeout_seconds=2.0,
    )
    return dataclasses.replace(base, **changes)


def _by_name(checks: list[Any]) -> dict[str, Any]:
    return {check.name: check for check in checks}


def _write_settings(tmp_path: Path, settings: Any) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(dataclasses.asdict(settings)))
    return path


def test_healthy_node_end_to_end(hc: ModuleType, node: tuple[FakeNode, str], tmp_path: Path) -> None:
    _state, url = node
    _make_db(tmp_path / "sensor_data.db", 10)
    settings = _settings(hc, tmp_path, url, _fake_docker(tmp_path, 0, HEALTHY_STATES))
    with Writer(tmp_path / "sensor_data.db"):
        rc = hc.main(["--settings", str(_write_settings(tmp_path, settings)), "--quiet"])
    status = json.loads(Path(settings.status_file).read_text())
    assert rc == 0, status
    assert status["healthy"] is True and status["failing"] == []
    names = [c["name"] for c in status["checks"]]
    assert names == [
        "docker", "container:bacalhau", "container:sensor", "bacalhau:alive", "bacalhau:config",
        "sensor:statusz", "sensor:readings", f"disk:{tmp_path}", "memory",
    ]
    assert all(c["ok"] and c["detail"] for c in status["checks"])
    assert "healthy" in Path(settings.log_file).read_text()
    # Atomic write leaves no temporary files behind.
    assert [p.name for p in Path(settings.status_file).parent.iterdir()] == ["status.json"]


def test_unhealthy_node_exits_1_and_names_the_failures(
    hc: ModuleType, node: tuple[FakeNode, str], tmp_path: Path
) -> None:
    state, url = node
    state.statusz = (500, {"error": "boom"})
    _make_db(tmp_path / "sensor_data.db", 10)  # and no writer: readings do not grow
    settings = _settings(hc, tmp_path, url, _fake_docker(tmp_path, 0, HEALTHY_STATES))
    settings_file = _write_settings(tmp_path, settings)
    assert hc.main(["--settings", str(settings_file), "--quiet"]) == 1
    assert hc.main(["--settings", str(settings_file), "--quiet"]) == 1
    status = json.loads(Path(settings.status_file).read_text())
    assert status["healthy"] is False
    assert status["failing"] == ["sensor:statusz", "sensor:readings"]
    log_lines = Path(settings.log_file).read_text().splitlines()
    assert len(log_lines) == 2 and all("UNHEALTHY failing=sensor:statusz,sensor:readings" in x for x in log_lines)


def test_json_prints_the_status_it_writes_and_nothing_else(
    hc: ModuleType, node: tuple[FakeNode, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = node
    state.statusz = (500, {"error": "boom"})
    _make_db(tmp_path / "sensor_data.db", 10)
    settings = _settings(hc, tmp_path, url, _fake_docker(tmp_path, 0, HEALTHY_STATES))
    assert hc.main(["--settings", str(_write_settings(tmp_path, settings)), "--json"]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one line: the document, no human-readable lines
    assert json.loads(out) == json.loads(Path(settings.status_file).read_text())
    assert json.loads(out)["failing"] == ["sensor:statusz", "sensor:readings"]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"sensor": HEALTHY_STATES["sensor"]}, {"container:bacalhau": "absent"}),
        (
            {**HEALTHY_STATES, "sensor": {"Status": "exited", "Running": False, "ExitCode": 0}},
            {"container:sensor": "not running"},
        ),
        (
            {**HEALTHY_STATES, "sensor": {"Status": "running", "Running": True, "Health": {"Status": "unhealthy"}}},
            {"container:sensor": "unhealthy"},
        ),
    ],
)
def test_container_problems(
    hc: ModuleType, tmp_path: Path, states: dict[str, Any], expected: dict[str, str]
) -> None:
    settings = _settings(hc, tmp_path, "http://127.0.0.1:9", _fake_docker(tmp_path, 0, states))
    checks = {name: hc.check_container(settings, name.split(":")[1]) for name in expected}
    for name, words in expected.items():
        assert not checks[name].ok and words in checks[name].detail
        # The image it runs is reported (rolling upgrades list versions per node); an absent one has none.
        assert checks[name].image == ("" if words == "absent" else f"localhost/{name.split(':')[1]}:v1")
    assert hc.check_docker(settings).ok


def test_docker_engine_down(hc: ModuleType, tmp_path: Path) -> None:
    settings = _settings(hc, tmp_path, "http://127.0.0.1:9", _fake_docker(tmp_path, 1, {}))
    check = hc.check_docker(settings)
    assert not check.ok and "Cannot connect" in check.detail
    missing = dataclasses.replace(settings, docker_command=str(tmp_path / "no-such-docker"))
    assert not hc.check_docker(missing).ok


@pytest.mark.parametrize(
    ("field", "answer", "check", "words"),
    [
        ("alive", (200, {"Status": "NOT_OK"}), "bacalhau:alive", "unexpected"),
        ("alive", (503, {}), "bacalhau:alive", "HTTP 503"),
        ("config", (200, {"config": {"Compute": {"Enabled": False}}}), "bacalhau:config", "Enabled"),
        (
            "config",
            (200, {"config": {"Compute": {"Enabled": True, "Orchestrators": ["nats://other:4222"]}}}),
            "bacalhau:config",
            "nats://other:4222",
        ),
        ("config", (200, {"config": {"Orchestrator": {"Enabled": True}}}), "bacalhau:config", "Enabled"),
        ("statusz", (503, {}), "sensor:statusz", "HTTP 503"),
    ],
)
def test_http_problems(
    hc: ModuleType, node: tuple[FakeNode, str], tmp_path: Path, field: str, answer: Any, check: str, words: str
) -> None:
    state, url = node
    settings = _settings(hc, tmp_path, url, "docker")
    functions = {
        "bacalhau:alive": hc.check_bacalhau_alive,
        "bacalhau:config": hc.check_bacalhau_config,
        "sensor:statusz": hc.check_sensor_status,
    }
    assert functions[check](settings).ok  # healthy before the fault
    setattr(state, field, answer)
    result = functions[check](settings)
    assert not result.ok and words in result.detail


def test_nothing_listening(hc: ModuleType, tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    server.server_close()
    settings = _settings(hc, tmp_path, url, "docker")
    for function in (hc.check_bacalhau_alive, hc.check_bacalhau_config, hc.check_sensor_status):
        result = function(settings)
        assert not result.ok and "HTTP 0" in result.detail


def test_readings_growing_and_not(hc: ModuleType, tmp_path: Path) -> None:
    db = tmp_path / "sensor_data.db"
    _make_db(db, 5)
    assert hc.count_readings(str(db)) == 5
    assert not hc.readings_check(5, 5, "", 1.0).ok
    assert not hc.readings_check(5, 4, "", 1.0).ok
    assert hc.readings_check(5, 9, "", 1.0).ok


def test_readings_database_missing_is_not_created(hc: ModuleType, tmp_path: Path) -> None:
    settings = _settings(hc, tmp_path, "http://127.0.0.1:9", _fake_docker(tmp_path, 0, HEALTHY_STATES))
    checks = _by_name(hc.run_checks(settings, sleep=lambda _s: None))
    assert not checks["sensor:readings"].ok and "unreadable" in checks["sensor:readings"].detail
    assert not (tmp_path / "sensor_data.db").exists()  # mode=ro never creates the simulator's file


def test_readings_waits_the_interval(hc: ModuleType, tmp_path: Path) -> None:
    _make_db(tmp_path / "sensor_data.db", 1)
    settings = _settings(
        hc, tmp_path, "http://127.0.0.1:9", _fake_docker(tmp_path, 0, HEALTHY_STATES), readings_interval_seconds=30
    )
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        writer = sqlite3.connect(tmp_path / "sensor_data.db")
        writer.execute("INSERT INTO sensor_readings (temperature) VALUES (1.0)")
        writer.commit()
        writer.close()

    checks = _by_name(hc.run_checks(settings, sleep=fake_sleep))
    assert len(slept) == 1 and 20 < slept[0] <= 30
    assert checks["sensor:readings"].ok and "1 -> 2" in checks["sensor:readings"].detail


def test_disk_and_memory_thresholds(hc: ModuleType, tmp_path: Path) -> None:
    assert hc.check_disk(str(tmp_path), 0.0).ok
    low = hc.check_disk(str(tmp_path), 100.1)
    assert not low.ok and "minimum 100.1%" in low.detail
    assert not hc.check_disk(str(tmp_path / "missing"), 0.0).ok
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000000 kB\nMemFree:         10000 kB\nMemAvailable:    50000 kB\n")
    assert hc.check_memory(4.0, str(meminfo)).ok
    short = hc.check_memory(10.0, str(meminfo))
    assert not short.ok and "5.0% available" in short.detail
    assert not hc.check_memory(1.0, str(tmp_path / "no-meminfo")).ok


def test_settings_file_errors(hc: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "settings.json"
    bad.write_text(json.dumps({"sensor_urll": "typo"}))
    with pytest.raises(ValueError, match="sensor_urll"):
        hc.load_settings(str(bad))
    assert hc.main(["--settings", str(bad), "--quiet"]) == 2
    assert hc.main(["--settings", str(tmp_path / "missing.json"), "--quiet"]) == 2
    bad.write_text(json.dumps({"containers": ["sensor"], "readings_interval_seconds": 3}))
    loaded = hc.load_settings(str(bad))
    assert loaded.containers == ("sensor",) and loaded.readings_interval_seconds == 3


IMDS_STAND_IN = SCRIPT.parents[1] / "molecule" / "default" / "imds_stand_in.py"


@pytest.fixture()
def imds() -> Iterator[Callable[..., str]]:
    """Start the IMDS stand-in (the one the molecule scenario runs on its node) on 127.0.0.1; returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        procs.append(subprocess.Popen([sys.executable, str(IMDS_STAND_IN), str(port), *flags]))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        raise AssertionError("the IMDS stand-in did not start")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_the_spot_notice_is_read_with_an_imdsv2_token(hc: ModuleType, imds: Callable[..., str]) -> None:
    settings = hc.Settings(imds_enabled=True, imds_url=imds())
    assert hc.spot_notice(settings) == {"action": "terminate", "time": "2026-12-06T10:02:00Z"}
    assert hc.spot_notice(hc.Settings(imds_enabled=True, imds_url=imds("--no-notice"))) is None  # 404: no notice
    assert hc.spot_notice(hc.Settings(imds_enabled=False, imds_url=imds())) is None


def test_no_metadata_service_means_no_notice_quickly(hc: ModuleType) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    started = time.monotonic()
    assert hc.spot_notice(hc.Settings(imds_enabled=True, imds_url=f"http://127.0.0.1:{closed}")) is None
    assert time.monotonic() - started < 2


def test_a_notice_is_reported_beside_the_verdict(hc: ModuleType, node: tuple[FakeNode, str], tmp_path: Path,
                                                  imds: Callable[..., str],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _state, url = node
    _make_db(tmp_path / "sensor_data.db", 10)
    settings = dataclasses.replace(_settings(hc, tmp_path, url, _fake_docker(tmp_path, 0, HEALTHY_STATES)),
                                   imds_enabled=True, imds_url=imds(), readings_interval_seconds=0.5)
    with Writer(tmp_path / "sensor_data.db"):
        rc = hc.main(["--settings", str(_write_settings(tmp_path, settings)), "--json"])
    status = json.loads(capsys.readouterr().out)
    assert rc == 0 and status["healthy"] is True, status  # the node still works: the notice fails no check
    assert status["interruption"] == {"action": "terminate", "time": "2026-12-06T10:02:00Z"}


@pytest.mark.parametrize("state", ["inactive", "failed"])
def test_a_stopped_engine_is_reported_and_never_asked(hc: ModuleType, tmp_path: Path, state: str) -> None:
    """docker.socket would start the engine on any docker call: the check asks systemd first."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!/bin/sh\n[ \"$*\" = 'show --property=ActiveState --value docker.service' ] && echo {state}\n")
    systemctl.chmod(0o755)
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\ntouch {tmp_path / 'docker-was-called'}\nexit 1\n")
    docker.chmod(0o755)
    settings = _settings(hc, tmp_path, "http://127.0.0.1:9", str(docker), systemctl_command=str(systemctl))
    checks = {c.name: c for c in hc.run_checks(settings, sleep=lambda _: None)}
    assert checks["docker"].detail == f"engine stopped (docker.service {state})" and not checks["docker"].ok
    assert checks["container:bacalhau"].detail == checks["container:sensor"].detail == "engine stopped"
    assert not (tmp_path / "docker-was-called").exists()
    assert hc.engine_state(dataclasses.replace(settings, systemctl_command=str(tmp_path / "none"))) == ""
