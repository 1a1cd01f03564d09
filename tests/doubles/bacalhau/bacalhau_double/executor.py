"""A compute double's executions (pkg/compute of v1.9.3: message handler, bidder, BaseExecutor), on threads.

AskForBid → the semantic bid strategies in the real order: networking (RejectNetworkedJobs), stateless jobs
(RejectStatelessJobs), storage installed (local/localDirectory need AllowListedLocalPaths), the Docker engine,
then the image check of the Docker executor's bid strategy: the image's platform must match the engine's, and
the real node trusts a *local* image only when it has a repository digest — otherwise it asks the registry for
the manifest. The double never contacts a registry, so an image without a digest fails the bid with a message
that says so (BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES=1 accepts local images anyway: a deliberate deviation for tests
and local fleets); an absent image fails with the real `image not available: "<image>"`. Rejections reply
BidResult (reasons "rejected bid: this node does not …"); errors reply ComputeError (event topic "Exec
Scanning"). Then resource bidding sizes the inputs, which checks local volumes (allowlist.py): "calculating
resource usage of job: volume /x is not allowlisted" fails the bid. BidAccepted → prepare the inputs again, run the
container (container.py), reply RunResult (event "Completed successfully") or ComputeError (topic "Running
Execution", e.g. "preparing arguments: volume /x does not exist and read-write access is not allowed" when the
path vanished since the bid).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from bacalhau_double import protocol
from bacalhau_double.allowlist import AllowedPath, StorageError, check_volume, prepare
from bacalhau_double.container import ExecutionFailure, image_not_available, run_container
from bacalhau_double.docker_api import DockerClient, DockerError
from bacalhau_double.jobmodel import error_event, event
from bacalhau_double.nats import NatsConnection
from bacalhau_double.ranking import job_resources

log = logging.getLogger("bacalhau")
Obj = dict[str, Any]
TOPIC_SCANNING, TOPIC_RUNNING, TOPIC_EXECUTION = "Exec Scanning", "Running Execution", "Execution"


def _docker_params(engine: Obj) -> Obj:
    """dockermodels.DecodeSpec + EngineSpec.Validate (params matched case-insensitively, like json.Unmarshal)."""
    params = {k.lower(): v for k, v in (engine.get("Params") or {}).items()}
    spec = {name: params.get(name.lower()) for name in ("Image", "Entrypoint", "Parameters", "EnvironmentVariables",
                                                         "WorkingDirectory")}
    if not spec["Image"]:
        raise ExecutionFailure("invalid docker engine param: 'Image' cannot be empty")
    workdir = spec["WorkingDirectory"] or ""
    if workdir and not workdir.startswith("/"):
        raise ExecutionFailure(f"invalid docker engine param: 'WorkingDirectory' (\"{workdir}\") must contain "
                               "absolute path")
    for item in spec["EnvironmentVariables"] or []:
        name = item.split("=", 1)[0]
        if name.upper().startswith("BACALHAU_"):
            raise ExecutionFailure(f"invalid docker engine param: environment variable '{name}' cannot start with "
                                   "BACALHAU_")
    return spec


class ExecutionRunner:
    def __init__(self, conn: NatsConnection, node_id: str, docker: DockerClient | None, allowed: list[AllowedPath],
                 admission: Obj) -> None:
        self.conn, self.node_id, self.docker, self.allowed = conn, node_id, docker, allowed
        self.reject_networked = bool(admission.get("RejectNetworkedJobs"))
        self.reject_stateless = bool(admission.get("RejectStatelessJobs"))
        self.trust_local_images = os.environ.get("BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES") == "1"
        self._executions: dict[str, Obj] = {}
        self._lock = threading.Lock()

    # ---- messages from the orchestrator (called on the NATS reader thread: never block there) ----

    def on_message(self, _subject: str, payload: bytes, reply: str | None) -> None:
        message = protocol.decode(payload)
        if reply:
            self.conn.publish(reply, protocol.RECEIVED)
        if message is None:
            return
        kind = message["Type"]
        if kind == "AskForBid":
            execution = message["Execution"]
            with self._lock:
                self._executions[execution["ID"]] = execution
            threading.Thread(target=self._bid, args=(execution,), daemon=True).start()
        elif kind == "BidAccepted":
            with self._lock:
                execution = self._executions.get(message["ExecutionID"])
            if execution is not None:
                threading.Thread(target=self._run, args=(execution,), daemon=True).start()
        elif kind in ("BidRejected", "Cancel"):
            log.info("execution %s: %s (%s)", message["ExecutionID"], kind, message.get("Message") or "no reason")
            with self._lock:
                self._executions.pop(message["ExecutionID"], None)

    def _reply(self, execution: Obj, kind: str, events: list[Obj], **extra: Any) -> None:
        protocol.send(self.conn, protocol.RESULT_SUBJECT, {
            "Type": kind, "NodeID": self.node_id, "ExecutionID": execution["ID"], "JobID": execution["JobID"],
            "JobType": execution["Job"]["Type"], "Events": events, **extra})

    # ---- bidding ----

    def _semantic_rejections(self, job: Obj) -> list[str]:
        task = job["Tasks"][0]
        reasons = []
        network = (task.get("Network") or {}).get("Type", "Default")
        if network not in ("None", "Default") and self.reject_networked:
            reasons.append("this node does not run jobs that require network access")
        if not task.get("InputSources") and self.reject_stateless:
            reasons.append("this node does not accept jobs without any input volumes")
        for kind in dict.fromkeys(s["Source"]["Type"] for s in task.get("InputSources") or []):
            if kind.lower() not in ("local", "localdirectory") or not self.allowed:
                reasons.append(f'this node does not support "{kind}"')
                break
        engine = task["Engine"]["Type"]
        if engine.lower() != "docker" or self.docker is None:
            reasons.append(f'this node does not support "{engine}"')
        return reasons

    def _check_image(self, image: str) -> None:
        """ImagePlatformBidStrategy + Client.ImageDistribution, up to the point where the real node would ask the
        registry."""
        assert self.docker is not None
        try:
            host_os, host_arch = self.docker.host_platform()
        except DockerError as exc:
            raise ExecutionFailure(f"failed to get host platform: {exc}") from None
        try:
            info = self.docker.image_inspect(image)
        except DockerError as exc:
            if exc.status == 404:
                raise image_not_available(image) from None
            raise ExecutionFailure(str(exc)) from None
        if (info.get("Os"), info.get("Architecture")) != (host_os, host_arch):
            raise ExecutionFailure(f"image {image!r} is for {info.get('Os')}/{info.get('Architecture')}, not "
                                   f"{host_os}/{host_arch}: the real node would look for another platform in the "
                                   "registry, which the test double never contacts")
        if not info.get("RepoDigests") and not self.trust_local_images:
            raise ExecutionFailure(
                f"image {image!r} has no repository digest on this node: a real v1.9.3 compute node looks its "
                "manifest up in the registry before bidding, and the test double never contacts a registry (set "
                "BACALHAU_DOUBLE_TRUST_LOCAL_IMAGES=1 on the compute double to accept local images anyway)")

    def _bid(self, execution: Obj) -> None:
        job = execution["Job"]
        try:
            reasons = self._semantic_rejections(job)
            if job["Tasks"][0]["Engine"]["Type"].lower() == "docker" and self.docker is not None:
                # Strategies that reject do not stop the later ones; one that errors ends the bidding.
                self._check_image(_docker_params(job["Tasks"][0]["Engine"])["Image"])
        except ExecutionFailure as exc:
            log.warning("execution %s: bidding failed: %s", execution["ID"], exc)
            self._forget(execution)
            self._reply(execution, "ComputeError", [error_event(TOPIC_SCANNING, str(exc), exc.details)])
            return
        if reasons:
            reason = "; ".join(f"rejected bid: {r}" for r in reasons)
            self._forget(execution)
            self._reply(execution, "BidResult", [event(TOPIC_SCANNING, reason)], Accepted=False)
            return
        try:  # resource bidding: the usage calculator sizes every input volume
            for source in job["Tasks"][0].get("InputSources") or []:
                check_volume(self.allowed, source["Source"].get("Params") or {})
        except StorageError as exc:
            self._forget(execution)
            self._reply(execution, "ComputeError", [error_event(
                TOPIC_SCANNING, f"calculating resource usage of job: {exc}", exc.details)])
            return
        self._reply(execution, "BidResult", [], Accepted=True)

    # ---- running ----

    def _run(self, execution: Obj) -> None:
        task = execution["Job"]["Tasks"][0]
        try:
            try:
                mounts = [prepare(self.allowed, s["Source"].get("Params") or {}, s["Target"])
                          for s in task.get("InputSources") or []]
            except (StorageError, OSError) as exc:
                raise ExecutionFailure(f"preparing arguments: {exc}") from None
            params = _docker_params(task["Engine"])
            assert self.docker is not None
            timeout = (task.get("Timeouts") or {}).get("ExecutionTimeout") or 0
            result = run_container(self.docker, self.node_id, execution, params, mounts, job_resources(task),
                                   self.reject_networked, timeout)
        except ExecutionFailure as exc:
            log.warning("execution %s failed: %s", execution["ID"], exc)
            # handleFailure records Event.WithError only: no error code or hint details, unlike bidding.
            self._reply(execution, "ComputeError", [error_event(TOPIC_RUNNING, str(exc))])
        else:
            log.info("execution %s completed with exit code %s", execution["ID"], result["ExitCode"])
            self._reply(execution, "RunResult", [event(TOPIC_EXECUTION, "Completed successfully")],
                        RunCommandResult=result)
        finally:
            self._forget(execution)

    def _forget(self, execution: Obj) -> None:
        with self._lock:
            self._executions.pop(execution["ID"], None)
