"""One tick's look at the fleet: the provider's state (refreshed), the nodes (convergence stamp and health, in one
SSH exchange per node: runs/exchange.py), the orchestrator's node list and the fleet's price."""

from __future__ import annotations

import time

from fleetdeploy.health.verdict import NodeReport, judge
from fleetdeploy.jsondoc import as_list
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.node_exchange import ask_nodes
from fleetdeploy.orchestrator.api import OrchestratorAnswer
from fleetdeploy.providers.base import Node
from fleetdeploy.runs.exchange import CONVERGED_FACT, DRIFT_FACT, ExchangeResult
from fleetdeploy.watch.model import NodeView, Observation, RegionView


def node_views(names: dict[str, Node], answers: dict[str, ExchangeResult],
               answer: OrchestratorAnswer | None) -> list[NodeView]:
    """Each node's health (judged by health.verdict, with the orchestrator's view) and convergence."""
    reports = []
    for name in names:
        got = answers.get(name, ExchangeResult(message="not asked"))
        reports.append(NodeReport.from_facts(name, got.facts, unreachable=got.unreachable, message=got.message))
    health = {row.node: row for row in judge(reports, answer).nodes}
    views = []
    for name, node in sorted(names.items()):
        got = answers.get(name, ExchangeResult())
        converged = got.facts.get(CONVERGED_FACT)
        views.append(NodeView(
            node=name, region=node.region, health=health.get(name),
            converged=converged if isinstance(converged, bool) and not got.unreachable else None,
            drift=tuple(str(d) for d in as_list(got.facts.get(DRIFT_FACT))),
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
    answers = ask_nodes(ctx, names)
    api = ctx.orchestrator_api()
    answer = api.read() if api is not None else None  # after the nodes' checks: the freshest view of them
    views = node_views(names, answers, answer)
    regions = tuple(
        RegionView(region=region, cluster=ctx.fleet.cluster_name(region), wanted=spec.count,
                   action=survey.actions.get(ctx.fleet.cluster_name(region)),
                   in_flight=ctx.fleet.cluster_name(region) in survey.in_flight)
        for region, spec in sorted(ctx.fleet.regions.items())
    )
    return Observation(at=started, regions=regions, nodes=tuple(views), orchestrator=answer,
                       provider_error=survey.error, prices=ctx.provider.prices()), nodes
