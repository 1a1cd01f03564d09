"""What the double refuses at submission although the real v1.9.3 orchestrator would take it (a 400, Component
"TestDouble"): features it cannot honour, and mistakes the real node only reports later or never.

Engine types the real node has never heard of are *not* refused: the real orchestrator accepts them and fails the
job at scheduling ("does not support <type>, only docker"), and so does the double.
"""

from __future__ import annotations

from typing import Any

from bacalhau_double.api import APIError
from bacalhau_double.constraints import requirement_error

KNOWN_ENGINES = ("docker", "wasm", "noop")
KNOWN_STORAGES = ("ipfs", "inline", "localdirectory", "local", "s3", "s3presigned", "s3managed", "urldownload", "noop")
LOCAL_STORAGES = ("local", "localdirectory")
DOCKER_PARAMS = {"Image": "string", "Entrypoint": "strings", "Parameters": "strings",
                 "EnvironmentVariables": "strings", "WorkingDirectory": "string"}
LOCAL_PARAMS = ("SourcePath", "ReadWrite", "CreateAs")


def _refuse(message: str) -> APIError:
    return APIError(400, f"the test double {message}", "BadRequest", "TestDouble")


def _check_docker_params(params: dict[str, Any]) -> None:
    # json.Unmarshal into EngineSpec on the compute node: unknown keys vanish, wrong types fail the bid later.
    by_lower = {k.lower(): k for k in DOCKER_PARAMS}
    for key, value in params.items():
        name = by_lower.get(key.lower())
        if name is None:
            raise _refuse(f"refuses docker engine param {key!r}: the real compute node silently ignores unknown "
                          f"params (known: {', '.join(DOCKER_PARAMS)})")
        strings = DOCKER_PARAMS[name] == "strings"
        valid = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if strings else \
            isinstance(value, str)
        if value is not None and not valid:
            shape = "list of strings" if strings else "string"
            raise _refuse(f"refuses docker engine param {name}: it must be a {shape} (the real compute node fails the "
                          "execution when it decodes it)")


def _check_local_params(params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key not in LOCAL_PARAMS:
            raise _refuse(f"refuses local input source param {key!r}: the real compute node ignores it (known: "
                          f"{', '.join(LOCAL_PARAMS)}; names are case-sensitive there)")
        if key == "SourcePath" and not isinstance(value, str):
            raise _refuse("refuses a non-string SourcePath")
        if key == "ReadWrite" and not isinstance(value, (bool, str)):
            raise _refuse("refuses a ReadWrite that is neither a boolean nor a string")
        if key == "CreateAs" and not isinstance(value, str):
            raise _refuse("refuses a non-string CreateAs")


def check_limits(job: dict[str, Any]) -> None:
    """Raises the double's 400 for a normalized, transformed job it cannot run faithfully."""
    if job["Type"] != "batch":
        raise _refuse(f"runs batch jobs only (got {job['Type']!r})")
    if job["Count"] != 1:
        raise _refuse(f"runs jobs with Count 1 only (got {job['Count']})")
    for index, constraint in enumerate(job["Constraints"]):
        if problem := requirement_error(constraint):
            raise _refuse(f"refuses constraint {index + 1}: the real orchestrator accepts it, then cannot rank any "
                          f"node and leaves the job Pending forever: {problem}")
    task = job["Tasks"][0]
    engine = task["Engine"]
    if engine["Type"].lower() in KNOWN_ENGINES and engine["Type"].lower() != "docker":
        raise _refuse(f"runs docker jobs only (engine {engine['Type']!r})")
    if engine["Type"].lower() == "docker":
        _check_docker_params(engine["Params"])
    if task["Publisher"]["Type"] or task["Publisher"].get("Params"):
        raise _refuse("publishes no results: leave Publisher empty (the output is in the execution's RunOutput)")
    if task["ResultPaths"]:
        raise _refuse("collects no ResultPaths")
    for source in task["InputSources"]:
        kind = source["Source"]["Type"]
        if kind.lower() in KNOWN_STORAGES and kind.lower() not in LOCAL_STORAGES:
            raise _refuse(f"mounts local input sources only (localDirectory/local), not {kind!r}")
        if kind.lower() in LOCAL_STORAGES:
            _check_local_params(source["Source"]["Params"])
    for name, value in task["Env"].items():
        if value.startswith("env:"):
            raise _refuse(f"does not resolve host environment variables (Env {name}={value!r})")
    if task["Resources"].get("GPU") not in (None, "", "0"):
        raise _refuse("has no GPUs")
    network = task["Network"]
    if network["Type"] == "HTTP" or network["Ports"]:
        raise _refuse("creates no HTTP gateways or port mappings")
    for key in ("QueueTimeout", "TotalTimeout"):
        if task["Timeouts"].get(key):
            raise _refuse(f"implements ExecutionTimeout only, not {key} (no job queue, no housekeeping)")
