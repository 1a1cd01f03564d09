#!/usr/bin/env python3
"""Fleet node health check: docker, bacalhau, sensor, disk and memory.

Writes a JSON status (atomically) and appends one line to a log. Exit 0 healthy, 1 unhealthy, 2 bad usage.
With --json the same status document is printed on stdout (one line): the controller's health play reads it in
the same exchange that runs the checks.
Python 3 standard library only: it runs on bare nodes from cron.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence

DEFAULT_SETTINGS_FILE = "/etc/fleet-health/settings.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    status_file: str = "/var/lib/fleet-health/status.json"
    log_file: str = "/var/log/fleet-health.log"
    docker_command: str = "docker"
    systemctl_command: str = "systemctl"
    containers: Sequence[str] = ("bacalhau", "sensor")
    bacalhau_api_url: str = "http://127.0.0.1:1234"
    bacalhau_orchestrators: Sequence[str] = ()
    sensor_url: str = "http://127.0.0.1:8080"
    sensor_db_path: str = "/opt/sensor/data/sensor_data.db"
    readings_interval_seconds: float = 10.0
    disk_paths: Sequence[str] = ("/", "/opt/sensor/data", "/var/lib/bacalhau")
    disk_min_free_percent: float = 10.0
    memory_min_available_percent: float = 10.0
    http_timeout_seconds: float = 5.0
    command_timeout_seconds: float = 20.0
    # EC2's instance metadata service, for the 2-minute spot interruption notice (off where there is none).
    imds_enabled: bool = False
    imds_url: str = "http://169.254.169.254"
    imds_timeout_seconds: float = 1.0


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # Container checks: the image the container runs (what a rolling upgrade reports per node).
    image: str = ""


def load_settings(path: str) -> Settings:
    """Settings from a JSON file; missing keys keep their defaults, unknown keys are an error (typos)."""
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    if not isinstance(raw, dict):
        raise ValueError("{0}: expected a JSON object".format(path))
    known = {field.name for field in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError("{0}: unknown settings {1}".format(path, ", ".join(unknown)))
    for key in ("containers", "bacalhau_orchestrators", "disk_paths"):
        if key in raw:
            raw[key] = tuple(raw[key])
    return Settings(**raw)


def _run(command: List[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


# systemd ActiveStates of an engine that is not running and not on its way up.
ENGINE_STOPPED = ("inactive", "failed", "deactivating")


def engine_state(settings: Settings) -> str:
    """systemd's ActiveState of docker.service, or "" when systemd cannot say (no systemd here)."""
    try:
        result = _run([settings.systemctl_command, "show", "--property=ActiveState", "--value", "docker.service"],
                      settings.command_timeout_seconds)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def check_docker(settings: Settings, state: str = "") -> Check:
    # A docker call would start a stopped engine again through docker.socket: a health check must change nothing.
    if state in ENGINE_STOPPED:
        return Check("docker", False, "engine stopped (docker.service {0})".format(state))
    try:
        result = _run(
            [settings.docker_command, "info", "--format", "{{.ServerVersion}}"], settings.command_timeout_seconds
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("docker", False, "docker info failed: {0}".format(exc))
    if result.returncode != 0:
        return Check("docker", False, "engine does not answer: {0}".format(_last_line(result.stderr)))
    return Check("docker", True, "engine {0}".format(result.stdout.strip()))


def container_check_from_state(name: str, state: Dict[str, Any]) -> Check:
    """Judge one container from `docker inspect`'s .State: running, and healthy when it has a health check."""
    check_name = "container:{0}".format(name)
    status = state.get("Status", "unknown")
    if not state.get("Running"):
        return Check(check_name, False, "not running (status {0}, exit code {1})".format(status, state.get("ExitCode")))
    health = state.get("Health")
    if health:
        health_status = health.get("Status", "unknown")
        if health_status != "healthy":
            return Check(check_name, False, "running but {0}".format(health_status))
        return Check(check_name, True, "running, healthy")
    return Check(check_name, True, "running (no health check)")


def check_container(settings: Settings, name: str) -> Check:
    try:
        result = _run(
            [settings.docker_command, "inspect", "--type", "container", "--format",
             "{{json .State}}\n{{.Config.Image}}", name],
            settings.command_timeout_seconds,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("container:{0}".format(name), False, "docker inspect failed: {0}".format(exc))
    if result.returncode != 0:
        return Check("container:{0}".format(name), False, "absent: {0}".format(_last_line(result.stderr)))
    lines = result.stdout.splitlines()
    try:
        state = json.loads(lines[0] if lines else "")
    except ValueError:
        return Check("container:{0}".format(name), False, "unreadable docker inspect output")
    image = lines[1].strip() if len(lines) > 1 else ""
    return dataclasses.replace(container_check_from_state(name, state), image=image)


def http_get(url: str, timeout: float) -> tuple:
    """(status, body); status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def spot_notice(settings: Settings) -> Optional[Dict[str, str]]:
    """EC2's spot interruption notice ({"action", "time"}), read with IMDSv2 (a token PUT, then the GET), or None:
    no notice (404), IMDS off, or IMDS not answering within its short timeout (not this check's business)."""
    if not settings.imds_enabled:
        return None
    base = settings.imds_url.rstrip("/")
    # Never through a proxy: the metadata service is link-local, and a proxy would see the token.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        put = urllib.request.Request(base + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        with opener.open(put, timeout=settings.imds_timeout_seconds) as response:
            token = response.read().decode("ascii", "replace").strip()
        get = urllib.request.Request(base + "/latest/meta-data/spot/instance-action",
                                     headers={"X-aws-ec2-metadata-token": token})
        with opener.open(get, timeout=settings.imds_timeout_seconds) as response:
            notice = json.loads(response.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return None  # HTTPError 404 (no notice) included
    if not isinstance(notice, dict):
        return None
    return {"action": str(notice.get("action", "")), "time": str(notice.get("time", ""))}


def check_bacalhau_alive(settings: Settings) -> Check:
    status, body = http_get(settings.bacalhau_api_url + "/api/v1/agent/alive", settings.http_timeout_seconds)
    if status != 200:
        return Check("bacalhau:alive", False, "HTTP {0}: {1}".format(status, body[:200]))
    try:
        answer = json.loads(body)
    except ValueError:
        return Check("bacalhau:alive", False, "not JSON: {0}".format(body[:200]))
    if not isinstance(answer, dict) or answer.get("Status") != "OK":
        return Check("bacalhau:alive", False, "unexpected answer: {0}".format(body[:200]))
    return Check("bacalhau:alive", True, "Status OK")


def check_bacalhau_config(settings: Settings) -> Check:
    """The running agent is a compute node pointed at the configured orchestrators (not a silent orchestrator)."""
    status, body = http_get(settings.bacalhau_api_url + "/api/v1/agent/config", settings.http_timeout_seconds)
    if status != 200:
        return Check("bacalhau:config", False, "HTTP {0}: {1}".format(status, body[:200]))
    try:
        answer = json.loads(body)
    except ValueError:
        return Check("bacalhau:config", False, "not JSON")
    # The API wraps the config as {"config": {...}}; accept the bare document too.
    config = answer.get("config", answer.get("Config", answer)) if isinstance(answer, dict) else {}
    compute = config.get("Compute") if isinstance(config, dict) else None
    if not isinstance(compute, dict) or compute.get("Enabled") is not True:
        return Check("bacalhau:config", False, "Compute.Enabled is not true")
    orchestrators = list(compute.get("Orchestrators") or [])
    if orchestrators != list(settings.bacalhau_orchestrators):
        return Check(
            "bacalhau:config",
            False,
            "Compute.Orchestrators {0} != expected {1}".format(orchestrators, list(settings.bacalhau_orchestrators)),
        )
    return Check("bacalhau:config", True, "compute node, orchestrators {0}".format(orchestrators))


def check_sensor_status(settings: Settings) -> Check:
    # /statusz, not /healthz: the simulator's /healthz answers 503 even when it works.
    status, body = http_get(settings.sensor_url + "/statusz", settings.http_timeout_seconds)
    if status != 200:
        return Check("sensor:statusz", False, "HTTP {0}: {1}".format(status, body[:200]))
    return Check("sensor:statusz", True, "HTTP 200")


def count_readings(db_path: str) -> int:
    """Rows in sensor_readings, opened read-only so the check can never create or lock the simulator's DB."""
    uri = "file:{0}?mode=ro".format(db_path)
    connection = sqlite3.connect(uri, uri=True, timeout=5)
    try:
        return int(connection.execute("SELECT COUNT(*) FROM sensor_readings").fetchone()[0])
    finally:
        connection.close()


def readings_check(first: Optional[int], second: Optional[int], error: str, seconds: float) -> Check:
    if first is None or second is None:
        return Check("sensor:readings", False, "database unreadable: {0}".format(error))
    if second <= first:
        detail = "not growing: {0} rows, then {1} after {2:g}s".format(first, second, seconds)
        return Check("sensor:readings", False, detail)
    return Check("sensor:readings", True, "{0} -> {1} rows in {2:g}s".format(first, second, seconds))


def _sample(db_path: str) -> tuple:
    try:
        return count_readings(db_path), ""
    except (sqlite3.Error, OSError) as exc:
        return None, str(exc)


def check_disk(path: str, min_free_percent: float) -> Check:
    name = "disk:{0}".format(path)
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return Check(name, False, str(exc))
    free = 100.0 * usage.free / usage.total if usage.total else 0.0
    detail = "{0:.1f}% free (minimum {1:g}%)".format(free, min_free_percent)
    return Check(name, free >= min_free_percent, detail)


def check_memory(min_available_percent: float, meminfo_path: str = "/proc/meminfo") -> Check:
    try:
        with open(meminfo_path, encoding="ascii") as handle:
            values = {line.split(":")[0]: int(line.split()[1]) for line in handle if len(line.split()) >= 2}
        available = 100.0 * values["MemAvailable"] / values["MemTotal"]
    except (OSError, KeyError, ValueError, ZeroDivisionError) as exc:
        return Check("memory", False, "unreadable {0}: {1}".format(meminfo_path, exc))
    detail = "{0:.1f}% available (minimum {1:g}%)".format(available, min_available_percent)
    return Check("memory", available >= min_available_percent, detail)


def run_checks(settings: Settings, sleep: Callable[[float], None] = time.sleep) -> List[Check]:
    # The readings interval overlaps the other checks, so a run takes about max(interval, checks).
    started = time.monotonic()
    first, first_error = _sample(settings.sensor_db_path)
    engine = engine_state(settings)
    checks = [check_docker(settings, engine)]
    if engine in ENGINE_STOPPED:
        checks.extend(Check("container:{0}".format(name), False, "engine stopped") for name in settings.containers)
    else:
        checks.extend(check_container(settings, name) for name in settings.containers)
    checks.append(check_bacalhau_alive(settings))
    checks.append(check_bacalhau_config(settings))
    checks.append(check_sensor_status(settings))
    resources = [check_disk(path, settings.disk_min_free_percent) for path in settings.disk_paths]
    resources.append(check_memory(settings.memory_min_available_percent))
    if first is not None:
        remaining = settings.readings_interval_seconds - (time.monotonic() - started)
        if remaining > 0:
            sleep(remaining)
        second, second_error = _sample(settings.sensor_db_path)
    else:
        second, second_error = None, first_error
    checks.append(readings_check(first, second, second_error, settings.readings_interval_seconds))
    checks.extend(resources)
    return checks


def build_status(checks: List[Check], host: str, now: datetime.datetime,
                 interruption: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """The status document. A spot interruption notice does not make the node unhealthy (it still works): it is
    reported beside the verdict, for `deploy.py health` and the watcher."""
    return {
        "host": host,
        "timestamp": now.isoformat(),
        "healthy": all(check.ok for check in checks),
        "failing": [check.name for check in checks if not check.ok],
        "checks": [dataclasses.asdict(check) for check in checks],
        "interruption": interruption,
    }


def write_status(path: str, status: Dict[str, Any]) -> None:
    """Atomic replace: a reader (the health playbook, a dashboard) never sees a half-written file."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".status-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            json.dump(status, output, indent=2, sort_keys=True)
            output.write("\n")
            output.flush()
            os.fsync(output.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def append_log(path: str, status: Dict[str, Any]) -> None:
    verdict = "healthy" if status["healthy"] else "UNHEALTHY failing=" + ",".join(status["failing"])
    with open(path, "a", encoding="utf-8") as log:
        log.write("{0} {1}\n".format(status["timestamp"], verdict))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=DEFAULT_SETTINGS_FILE, help="JSON settings file")
    parser.add_argument("--quiet", action="store_true", help="print nothing (for cron)")
    parser.add_argument("--json", action="store_true", help="print the status document (one JSON line) instead")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except (OSError, ValueError, TypeError) as exc:
        print("fleet-health-check: {0}".format(exc), file=sys.stderr)
        return 2
    checks = run_checks(settings)
    status = build_status(checks, socket.gethostname(), datetime.datetime.now(datetime.timezone.utc),
                          spot_notice(settings))
    write_status(settings.status_file, status)
    append_log(settings.log_file, status)
    if args.json:
        print(json.dumps(status, sort_keys=True))
    elif not args.quiet:
        for check in checks:
            print("{0:<6} {1:<28} {2}".format("ok" if check.ok else "FAIL", check.name, check.detail))
    return 0 if status["healthy"] else 1


if __name__ == "__main__":
    sys.exit(main())
