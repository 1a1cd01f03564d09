"""Running one execution's container the way pkg/executor/docker does in v1.9.3 (executor.go, handler.go,
network.go, results.go), through the Engine API.

- create: Image, Entrypoint/Cmd (Parameters), Env (job Env + BACALHAU_EXECUTION_ID, _JOB_ID, _JOB_TYPE,
  _PARTITION_INDEX, _PARTITION_COUNT, then the engine's EnvironmentVariables on top), WorkingDir, the labels
  bacalhau-executor/-jobID/-executionID, name bacalhau-<node>-<job>-<execution>-executor, bind mounts of the
  prepared inputs, Memory and NanoCpus from the job's resources, and the network: a job without a network type
  gets *bridge* (the real default: only Compute's JobAdmissionControl.RejectNetworkedJobs turns it into none),
  None → none, Host/Full → host, Bridge → bridge; bridge and host add host.docker.internal:host-gateway;
- the image must already be on the node: the real node pulls a missing image, the double never contacts a
  registry and fails the execution with the real "image not available" message instead;
- start, wait (not-running), inspect (OOMKilled → "memory limit exceeded"), logs (demultiplexed), then stop and
  remove. RunOutput keeps the first 2 KiB of stdout and stderr (system.MaxStdoutReturnLength) with the
  truncation flags; a non-zero exit code is *not* a failure (the execution completes with that ExitCode).
"""

from __future__ import annotations

import logging
from typing import Any

from bacalhau_double.docker_api import DockerClient, DockerError
from bacalhau_double.jobmodel import empty_run_output
from bacalhau_double.wire import go_duration

log = logging.getLogger("bacalhau")
Obj = dict[str, Any]
MAX_RETURN_LENGTH = 2 * 1024
HOST_GATEWAY = "host.docker.internal:host-gateway"
IMAGE_HINT = ("To resolve this, either:\n1. Check if the image exists in the registry and the name is correct\n"
              "2. If the image is private, supply the node with valid Docker login credentials using the "
              "DOCKER_USERNAME and DOCKER_PASSWORD environment variables")


class ExecutionFailure(Exception):
    """The execution fails with this message (and these event details)."""

    def __init__(self, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


def image_not_available(image: str) -> ExecutionFailure:
    return ExecutionFailure(f'image not available: "{image}"', {
        "ErrorCode": "Docker:ImageNotFound", "Hint": IMAGE_HINT, "Image": image})


def execution_env(execution: Obj, engine_env: list[str]) -> list[str]:
    job = execution["Job"]
    env = dict(job["Tasks"][0].get("Env") or {})
    env.update({"BACALHAU_EXECUTION_ID": execution["ID"], "BACALHAU_JOB_ID": execution["JobID"],
                "BACALHAU_JOB_TYPE": job["Type"], "BACALHAU_PARTITION_INDEX": str(execution.get("PartitionIndex", 0)),
                "BACALHAU_PARTITION_COUNT": str(job["Count"])})
    for item in engine_env:
        name, sep, value = item.partition("=")
        if sep:
            env[name] = value
    return [f"{k}={env[k]}" for k in sorted(env)]


def network_mode(network_type: str, reject_networked: bool) -> tuple[str, list[str]]:
    kind = network_type or "Default"
    if kind == "Default":
        kind = "None" if reject_networked else "Bridge"
    if kind == "None":
        return "none", []
    if kind in ("Host", "Full"):
        return "host", [HOST_GATEWAY]
    return "bridge", [HOST_GATEWAY]


def container_config(node_id: str, execution: Obj, params: Obj, mounts: list[Obj], resources: dict[str, float],
                     reject_networked: bool) -> Obj:
    task = execution["Job"]["Tasks"][0]
    mode, extra_hosts = network_mode(task.get("Network", {}).get("Type", "Default"), reject_networked)
    host: Obj = {"Mounts": mounts, "Memory": int(resources.get("Memory") or 0),
                 "NanoCpus": int((resources.get("CPU") or 0) * 1_000_000_000), "NetworkMode": mode}
    if extra_hosts:
        host["ExtraHosts"] = extra_hosts
    return {
        "Image": params["Image"], "Tty": False,
        "Env": execution_env(execution, params.get("EnvironmentVariables") or []),
        "Entrypoint": params.get("Entrypoint") or None, "Cmd": params.get("Parameters") or None,
        "Labels": {"bacalhau-executor": node_id, "bacalhau-jobID": node_id + execution["JobID"],
                   "bacalhau-executionID": node_id + execution["ID"]},
        "WorkingDir": params.get("WorkingDirectory") or "", "NetworkDisabled": mode == "none", "HostConfig": host,
    }


def _summary(data: bytes) -> tuple[str, bool]:
    # Go's json.Marshal turns invalid UTF-8 (a cut multi-byte character too) into U+FFFD.
    return data[:MAX_RETURN_LENGTH].decode("utf-8", errors="replace"), len(data) > MAX_RETURN_LENGTH


def run_container(docker: DockerClient, node_id: str, execution: Obj, params: Obj, mounts: list[Obj],
                  resources: dict[str, float], reject_networked: bool, timeout_s: int) -> Obj:
    """The RunCommandResult of a completed run; raises ExecutionFailure with the real messages."""
    image = params["Image"]
    try:
        docker.image_inspect(image)
    except DockerError as exc:
        if exc.status == 404:
            raise image_not_available(image) from None
        raise ExecutionFailure(str(exc)) from None
    name = f"bacalhau-{node_id}-{execution['JobID']}-{execution['ID']}-executor"
    config = container_config(node_id, execution, params, mounts, resources, reject_networked)
    try:
        container_id = docker.create(name, config)
    except DockerError as exc:
        raise ExecutionFailure(f"creating container: {exc}") from None
    try:
        return _run_created(docker, container_id, timeout_s)
    finally:
        for action in (docker.stop, docker.remove):
            try:
                action(container_id)
            except (DockerError, OSError) as exc:
                log.warning("failed to clean up container %s: %s", container_id, exc)


def _run_created(docker: DockerClient, container_id: str, timeout_s: int) -> Obj:
    try:
        docker.start(container_id)
    except DockerError as exc:
        reason = "executable file not found" if "executable file not found" in str(exc) else "failed to start container"
        raise ExecutionFailure(f"failed to start container: {reason}: {exc}") from None
    try:
        status = docker.wait(container_id, float(timeout_s) if timeout_s else None)
    except TimeoutError:
        raise ExecutionFailure(f"Execution timed out after {go_duration(timeout_s)}") from None
    except DockerError as exc:
        raise ExecutionFailure(f"received error response from docker client while waiting on container: {exc}") \
            from None
    exit_code = int(status.get("StatusCode", -1))
    try:
        state = docker.inspect(container_id).get("State") or {}
    except DockerError as exc:
        raise ExecutionFailure(str(exc)) from None
    if state.get("OOMKilled"):
        raise ExecutionFailure("memory limit exceeded")
    container_error = ((status.get("Error") or {}).get("Message") or "")
    try:
        stdout, stderr = docker.logs(container_id)
    except DockerError as exc:
        follow = f"failed to follow container logs: {exc}"
        raise ExecutionFailure(f"container error: '{container_error}'. logs error: '{follow}'" if container_error
                               else follow) from None
    if container_error:
        raise ExecutionFailure(container_error)  # WriteJobResults puts it in ErrorMsg: the run fails with it
    result = empty_run_output()
    result["Stdout"], result["StdoutTruncated"] = _summary(stdout)
    result["stderr"], result["StderrTruncated"] = _summary(stderr)
    result["ExitCode"] = exit_code
    return result
