"""One tick's look at the fleet: the provider's state (refreshed), the nodes (convergence stamp and health, in one
read-only Ansible run of playbooks/observe.yml), the orchestrator's node list and the fleet's price."""

from __future__ import annotations

import time

from fleetdeploy.health.verdict import NodeReport, judge
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.steps import quiet_ansible_run
from fleetdeploy.orchestrator.api import OrchestratorAnswer
from fleetdeploy.paths import OBSERVE_PLAYBOOK
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.runner import RunResult
from fleetdeploy.watch.model import NodeView, Observation, RegionView

CONVERGED_FACT = "fleet_report_converged"
DRIFT_FACT = "fleet_report_drift"


def node_views(names: dict[str, Node], result: RunResult, answer: OrchestratorAnswer | None) -> list[NodeView]:
    """Each node's health (judged by health.verdict, with the orchestrator's view) and convergence."""
    reports = []
    for name in names:
        run = result.hosts.get(name)
        reports.append(NodeReport.from_facts(name, run.reports if run else {},
                                             unreachable=bool(run and run.unreachable),
                                             message=run.message if run else "not part of the run"))
    health = {row.node: row for row in judge(reports, answer).nodes}
    views = []
    for name, node in sorted(names.items()):
        run = result.hosts.get(name)
        facts = run.reports if run is not None else {}
        converged = facts.get(CONVERGED_FACT)
        reachable = run is not None and not run.unreachable
        views.append(NodeView(
            node=name, region=node.region, health=health.get(name),
            converged=bool(converged) if converged is not None and reachable else None,
            drift=tuple(str(d) for d in facts.get(DRIFT_FACT) or ()),
            interruption=row.interruption if (row := health.get(name)) is not None else "",
        ))
    return views


def observe(ctx: Context) -> tuple[Observation, list[Node]]:
    """What the fleet looks like now, and its nodes (the inventory is rewritten from them)."""
    started = time.time()
    survey = ctx.provider.survey()
    nodes = survey.nodes
    if survey.actions:
        ctx.inventory.write(nodes)  # a failed read leaves the last inventory as it was
    names = {ctx.host(n): n for n in nodes}
    result = quiet_ansible_run(ctx, "Watch: observe", list(names), playbook=OBSERVE_PLAYBOOK) if names else None
    api = ctx.orchestrator_api()
    answer = api.read() if api is not None else None  # after the nodes' checks: the freshest view of them
    views = node_views(names, result, answer) if result is not None else []
    regions = tuple(
        RegionView(region=region, cluster=ctx.fleet.cluster_name(region), wanted=spec.count,
                   action=survey.actions.get(ctx.fleet.cluster_name(region)),
                   in_flight=ctx.fleet.cluster_name(region) in survey.in_flight)
        for region, spec in sorted(ctx.fleet.regions.items())
    )
    return Observation(at=started, regions=regions, nodes=tuple(views), orchestrator=answer,
                       provider_error=survey.error, prices=ctx.provider.prices()), nodes
