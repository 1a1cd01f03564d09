"""`deploy.py canary`: every node (or --limit) runs one canary job; output/render.py shows the result."""

from __future__ import annotations

import time

from fleetdeploy.canary.run import CanarySettings, CanaryTarget, run_canary
from fleetdeploy.errors import InputError
from fleetdeploy.fleet.role_options import option_specs
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.options import CanaryOptions
from fleetdeploy.output.progress import ProgressBoard
from fleetdeploy.output.render import show
from fleetdeploy.output.results import CanaryResult


def sensor_data_dir(role_vars: dict[str, object]) -> str:
    """Where jobs may read the sensor's data: the fleet's bacalhau_sensor_data_dir, else the role's default."""
    default = option_specs()["bacalhau_sensor_data_dir"]["default"]
    return str(role_vars.get("bacalhau_sensor_data_dir", default))


def cmd_canary(ctx: Context, options: CanaryOptions) -> int:
    spec = ctx.fleet.canary
    api = ctx.orchestrator_api()
    if api is None:
        raise InputError("canary needs orchestrator.api in the fleet file: jobs are submitted to the orchestrator's "
                         "HTTP API (with an API key in orchestrator.api_token_file when it asks for one)")
    nodes = ctx.inventory.nodes_or_fail()
    chosen = ctx.inventory.named(options.limit) if options.limit else nodes
    settings = CanarySettings(ctx.fleet.name, spec.image, sensor_data_dir(ctx.fleet.role_vars),
                              options.timeout if options.timeout is not None else spec.timeout_seconds,
                              spec.max_data_age_seconds)
    targets = [CanaryTarget(ctx.host(n), n.instance_id) for n in chosen]
    started = time.monotonic()
    with ProgressBoard(ctx.progress_console, "Canary", [t.node for t in targets]) as board:
        results = run_canary(api, settings, targets, board.update)
    result = CanaryResult(ctx.fleet.name, spec.image, round(time.monotonic() - started, 1), results)
    show(ctx.console, result, ctx.output)
    return 0 if result.ok else 1
