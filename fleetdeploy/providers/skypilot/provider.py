"""SkyPilot provider: one cluster per fleet region, launched/healed/removed through the SkyPilot SDK.

`sky` is imported only by `load_sky`, called from the methods that talk to SkyPilot: importing it costs
seconds and starts nothing useful for `plan`, `--help` or config validation (facts.md: SkyPilot).
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetdeploy.errors import FleetError
from fleetdeploy.fleet.model import Fleet
from fleetdeploy.jsondoc import JSONObject
from fleetdeploy.output.capture import captured_fds
from fleetdeploy.providers.base import (
    ActionKind,
    ClusterOutcome,
    ClusterPlan,
    ClusterPrice,
    FailureKind,
    FleetCost,
    FleetPrices,
    Node,
    Outcome,
    ProgressCallback,
    Provider,
    Survey,
)
from fleetdeploy.providers.skypilot.catalog import check_against_catalogs
from fleetdeploy.providers.skypilot.costs import BASIS, costs_from_report
from fleetdeploy.providers.skypilot.errors import describe_error, failure_kind, is_sky_error
from fleetdeploy.providers.skypilot.pricing import region_prices
from fleetdeploy.providers.skypilot.project_config import install_project_config
from fleetdeploy.providers.skypilot.records import decide, nodes_from_status
from fleetdeploy.providers.skypilot.task import candidates, render_task, to_yaml

SdkLoader = Callable[[], Any]
MAX_IN_FLIGHT = 4
# Progress rows for what SkyPilot itself prints (it does not say which cluster a line is about).
SKYPILOT_ROW = "skypilot"
# sky.server.requests.request_names.RequestName.CLUSTER_LAUNCH, and the states of a request not yet finished.
LAUNCH_REQUEST = "launch"
LIVE_REQUEST_STATES = frozenset({"PENDING", "WAITING", "RUNNING"})
API_SERVER_ENV = "SKYPILOT_API_SERVER_ENDPOINT"  # sky.skylet.constants.SKY_API_SERVER_URL_ENV_VAR


def load_sky(project_config: Path, api_server: str | None = None) -> Any:
    """Import the SkyPilot SDK: usage collection off and our project config in place first (both read at import).
    `api_server` (the fleet file's skypilot.api_server) wins over the environment's endpoint, set before the first
    SDK call (SkyPilot's client caches the server URL it finds then, for the life of the process)."""
    os.environ["SKYPILOT_DISABLE_USAGE_COLLECTION"] = "1"
    if api_server:
        os.environ[API_SERVER_ENV] = api_server
    install_project_config(project_config)
    import sky  # noqa: PLC0415 - deliberately lazy
    import sky.exceptions  # noqa: PLC0415,F401 - makes sky.exceptions available as an attribute

    return sky


class SkyPilotProvider:
    """Provider for AWS spot nodes through SkyPilot; one cluster `<fleet>-<region>` per region.

    Everything SkyPilot prints (from Python or from the API server it starts) is captured at the file-descriptor
    level and handed to `notice` or the progress callback, so our stdout stays machine-readable.
    """

    def __init__(
        self,
        fleet: Fleet,
        state_dir: Path,
        sdk_loader: SdkLoader | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self._fleet = fleet
        self._load = sdk_loader or functools.partial(load_sky, Path(state_dir) / "skypilot" / "project-config.yaml",
                                                     fleet.skypilot.api_server)
        self._key_store = Path(state_dir) / fleet.name / "skypilot-keys"
        self._max_in_flight = max(1, max_in_flight)
        self._notice = notice or (lambda line: None)

    @contextmanager
    def _sdk(self, sink: Callable[[str], None] | None = None) -> Iterator[Any]:
        with captured_fds(sink or self._notice):
            yield self._load()

    def _nodes(self, records: dict[str, Any], names: Iterable[str]) -> list[Node]:
        identity = self._fleet.ssh.identity_file
        return nodes_from_status((records[name] for name in names if name in records), self._key_store,
                                 self._named_server(), None if identity is None else str(identity))

    def _named_server(self) -> bool:
        """A server named by skypilot.api_server or SKYPILOT_API_SERVER_ENDPOINT counts as remote: its files are not
        ours to read, even when it runs on this machine for another user. (One named only by `sky api login` is
        found out by its key path, which is not readable here.)"""
        return bool(self._fleet.skypilot.api_server or os.environ.get(API_SERVER_ENV))

    def _names(self) -> dict[str, str]:
        return {self._fleet.cluster_name(region): region for region in sorted(self._fleet.regions)}

    def extra_inventory_vars(self) -> JSONObject:
        """Cloud nodes need nothing beyond the fleet's own variables."""
        return {}

    def orchestrator_api_url(self) -> str | None:
        """A cloud fleet's orchestrator is the user's (its API is the one the fleet file names): none runs here."""
        return None

    def prices(self) -> FleetPrices:
        """From SkyPilot's catalog file when it is on this machine (never downloaded, never a cloud call)."""
        found = region_prices(self._fleet)
        clusters = tuple(ClusterPrice(self._fleet.cluster_name(r.region), r.per_region_hour,
                                      str(r.unknown) if r.unknown else None) for r in found.regions)
        return FleetPrices(clusters, found.per_hour, str(found.unknown) if found.unknown else None)

    def costs(self, days: int) -> FleetCost:
        """SkyPilot's cost report for this fleet's clusters (a local API-server call: its own records and catalog)."""
        try:
            with self._sdk() as sky:
                records = sky.get(sky.cost_report(days=days))
        except Exception as exc:  # noqa: BLE001 - shown as the reason there are no figures
            return FleetCost((), BASIS, error=f"cannot read SkyPilot's cost report: {describe_error(None, exc)}")
        return costs_from_report(records, self._names())

    def plan(self) -> list[ClusterPlan]:
        """What `up` would ask SkyPilot for, and what it would do to each cluster as SkyPilot's state stands.

        Reading that state is a local API-server call, never a cloud call; when it fails, the action is unknown.
        """
        check_against_catalogs(self._fleet)  # before SkyPilot is even imported
        try:
            with self._sdk() as sky:
                records: dict[str, Any] | None = self._records(sky, list(self._names()))
        except Exception as exc:  # noqa: BLE001 - plan still shows the tasks
            self._notice(f"cannot read cluster status from SkyPilot: {describe_error(None, exc)}")
            records = None
        plans = []
        for name, region in self._names().items():
            spec = self._fleet.regions[region]
            action = decide(records.get(name), spec.count) if records is not None else None
            order = candidates(self._fleet, region)
            plans.append(
                ClusterPlan(
                    cluster=name,
                    region=region,
                    zone=order[0].zone,
                    num_nodes=spec.count,
                    instance_type=order[0].instance_type,
                    spot=order[0].spot,
                    rendered_task=to_yaml(render_task(self._fleet, region)),
                    action=action,
                    candidates=tuple(c.describe() for c in order),
                )
            )
        return plans

    def _records(self, sky: Any, names: Sequence[str], credentials: bool = False,
                 refresh: bool = False) -> dict[str, Any]:
        # AUTO refreshes spot clusters from the cloud: the only way SkyPilot learns of preempted nodes.
        mode = sky.StatusRefreshMode.AUTO if refresh else sky.StatusRefreshMode.NONE
        # all_users: on a team's API server the fleet's clusters may have been launched by another operator; without
        # it SkyPilot lists only this user's, and `up` would try to launch a cluster that exists.
        records = sky.get(sky.status(list(names), refresh=mode, all_users=True, _include_credentials=credentials))
        return {rec["name"]: rec for rec in records if rec["name"] in names}

    def preflight(self, launching: bool = False) -> None:
        """Before a launch: the fleet against each cloud's catalog when it is on disk (SkyPilot's own checks need
        its API server). Nothing else is cheap to check here."""
        if launching:
            check_against_catalogs(self._fleet)

    def survey(self) -> Survey:
        """This fleet's clusters refreshed from the cloud (what shows preempted nodes). A refresh that fails
        (credentials, network) is reported in `error`, and the state SkyPilot had is used instead."""
        names = self._names()
        error = ""
        with self._sdk() as sky:
            try:
                records = self._records(sky, list(names), credentials=True, refresh=True)
            except Exception as exc:  # noqa: BLE001 - a failed refresh is reported, never taken as nodes lost
                error = f"refreshing the cluster status failed: {self._describe(sky, exc)}"
                try:
                    records = self._records(sky, list(names), credentials=True)
                except Exception as again:  # noqa: BLE001
                    return Survey({}, [], error=f"cannot read cluster status from SkyPilot: "
                                                f"{self._describe(sky, again)}")
            in_flight, in_flight_error = self._launches_in_flight(sky, names)
        actions = {name: decide(records.get(name), self._fleet.regions[region].count)
                   for name, region in names.items()}
        nodes = self._nodes(records, names)
        return Survey(actions, nodes, in_flight, "; ".join(e for e in (error, in_flight_error) if e))

    def _launches_in_flight(self, sky: Any, names: dict[str, str]) -> tuple[frozenset[str], str]:
        """Clusters of this fleet with a launch request still pending or running on the API server (it goes on
        after the process that submitted it stopped: a restarted watcher must not submit another)."""
        try:
            requests = sky.api_status()
        except Exception as exc:  # noqa: BLE001
            return frozenset(), f"cannot list the API server's requests: {self._describe(sky, exc)}"
        return frozenset(
            str(r.cluster_name) for r in requests
            if r.name == LAUNCH_REQUEST and str(r.status).upper() in LIVE_REQUEST_STATES and r.cluster_name in names
        ), ""

    def up(self, progress: ProgressCallback, only: Collection[str] | None = None) -> list[ClusterOutcome]:
        """Launch missing clusters, heal INIT ones, resize changed counts; one failing region never stops the others."""
        names = {name: region for name, region in self._names().items() if only is None or name in only}
        with self._sdk(lambda line: progress(SKYPILOT_ROW, line)) as sky:
            try:
                records = self._records(sky, list(names))
            except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an outcome
                return self._all_failed(names, self._describe(sky, exc), progress, failure_kind(sky, exc))
            outcomes: dict[str, ClusterOutcome] = {}
            work: list[tuple[str, Outcome, Callable[[], Any]]] = []
            for name, region in names.items():
                action = decide(records.get(name), self._fleet.regions[region].count)
                if action.kind is ActionKind.NOTHING:
                    progress(name, f"up, {action.wanted} node(s): nothing to do")
                    outcomes[name] = ClusterOutcome(name, region, Outcome.UNCHANGED)
                    continue
                progress(name, action.describe())
                work.append((name, action.kind.outcome, self._launcher(sky, name, region, action.kind)))
            outcomes.update(self._run(sky, names, work, progress))
        return [outcomes[name] for name in names]

    def _launcher(self, sky: Any, name: str, region: str, kind: ActionKind) -> Callable[[], Any]:
        def submit() -> Any:
            task = sky.Task.from_yaml_config(render_task(self._fleet, region))
            # resize: SkyPilot's fit check refuses a different num_nodes on an existing cluster without it.
            return sky.launch(task, cluster_name=name, retry_until_up=False, down=False,
                              resize=kind is ActionKind.RESIZE)

        return submit

    def _run(
        self,
        sky: Any,
        names: dict[str, str],
        work: list[tuple[str, Outcome, Callable[[], Any]]],
        progress: ProgressCallback,
    ) -> dict[str, ClusterOutcome]:
        """Submit requests (at most max_in_flight outstanding), then wait for each in submission order."""
        outcomes: dict[str, ClusterOutcome] = {}
        pending = deque(work)
        in_flight: deque[tuple[str, Outcome, Any]] = deque()
        while pending or in_flight:
            while pending and len(in_flight) < self._max_in_flight:
                name, action, submit = pending.popleft()
                try:
                    in_flight.append((name, action, submit()))
                    progress(name, "submitted")
                except Exception as exc:  # noqa: BLE001
                    outcomes[name] = self._failed(name, names[name], self._describe(sky, exc, names[name]),
                                                  progress, failure_kind(sky, exc))
            if not in_flight:
                continue
            name, action, request_id = in_flight.popleft()
            try:
                sky.get(request_id)
            except Exception as exc:  # noqa: BLE001
                if action is Outcome.REMOVED and is_sky_error(sky, exc, "ClusterDoesNotExist"):
                    progress(name, "already gone")
                    outcomes[name] = ClusterOutcome(name, names[name], Outcome.UNCHANGED)
                    continue
                outcomes[name] = self._failed(name, names[name], self._describe(sky, exc, names[name]), progress,
                                              failure_kind(sky, exc))
                continue
            progress(name, action)
            outcomes[name] = ClusterOutcome(name, names[name], action)
        return outcomes

    def nodes(self) -> list[Node]:
        """Every reachable-looking node of this fleet's UP and INIT clusters."""
        names = list(self._names())
        with self._sdk() as sky:
            try:
                records = self._records(sky, names, credentials=True)
            except Exception as exc:  # noqa: BLE001
                raise FleetError(f"cannot read cluster status from SkyPilot: {self._describe(sky, exc)}") from None
        return self._nodes(records, names)

    def down(self, progress: ProgressCallback) -> list[ClusterOutcome]:
        """Tear down this fleet's clusters (and only those); a missing cluster is not an error."""
        names = self._names()
        with self._sdk(lambda line: progress(SKYPILOT_ROW, line)) as sky:
            try:
                records = self._records(sky, list(names))
            except Exception as exc:  # noqa: BLE001
                return self._all_failed(names, self._describe(sky, exc), progress, failure_kind(sky, exc))
            outcomes: dict[str, ClusterOutcome] = {}
            work: list[tuple[str, Outcome, Callable[[], Any]]] = []
            for name, region in names.items():
                if name not in records:
                    progress(name, "not found, nothing to remove")
                    outcomes[name] = ClusterOutcome(name, region, Outcome.UNCHANGED)
                    continue
                progress(name, "tearing down")
                work.append((name, Outcome.REMOVED, functools.partial(sky.down, name)))
            outcomes.update(self._run(sky, names, work, progress))
        return [outcomes[name] for name in names]

    def _describe(self, sky: Any, exc: BaseException, region: str | None = None) -> str:
        """describe_error with the cloud of `region`'s cluster, or of the whole fleet."""
        clouds = [self._fleet.cloud_of(region)] if region is not None else self._fleet.clouds
        return describe_error(sky, exc, clouds)

    def _failed(self, name: str, region: str, error: str, progress: ProgressCallback,
                kind: FailureKind = FailureKind.UNKNOWN) -> ClusterOutcome:
        progress(name, f"failed: {error}")
        return ClusterOutcome(name, region, Outcome.FAILED, error, kind)

    def _all_failed(self, names: dict[str, str], error: str, progress: ProgressCallback,
                    kind: FailureKind = FailureKind.UNKNOWN) -> list[ClusterOutcome]:
        return [self._failed(name, region, error, progress, kind) for name, region in names.items()]


def make(fleet: Fleet, state_dir: Path, notice: Callable[[str], None]) -> Provider:
    """The registry's factory (providers/skypilot/__init__.py)."""
    return SkyPilotProvider(fleet, state_dir, notice=notice)
