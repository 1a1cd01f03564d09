"""`deploy.py canary`: every node (or --limit) runs one canary job; a table (or JSON) says which could work."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from rich.text import Text

from fleetdeploy.canary.job import SENSOR_DATA_DIR
from fleetdeploy.canary.run import CanarySettings, CanaryTarget, NodeCanary, run_canary
from fleetdeploy.errors import InputError
from fleetdeploy.operations.context import Context
from fleetdeploy.operations.options import CanaryOptions, OutputFormat
from fleetdeploy.output.progress import ProgressBoard, print_table, styled
from fleetdeploy.output.results import to_json


@dataclass
class CanaryResult:
    fleet: str
    image: str
    seconds: float
    nodes: list[NodeCanary]

    @property
    def ok(self) -> bool:
        return bool(self.nodes) and all(n.ok for n in self.nodes)


def cmd_canary(ctx: Context, options: CanaryOptions) -> int:
    spec = ctx.fleet.canary
    if ctx.fleet.orchestrator.api is None:
        raise InputError("canary needs orchestrator.api in the fleet file: jobs are submitted to the orchestrator's "
                         "HTTP API (with an API key in orchestrator.api_token_file when it asks for one)")
    api = ctx.orchestrator_api()
    assert api is not None  # orchestrator.api is set
    nodes = ctx.inventory.nodes_or_fail()
    chosen = ctx.inventory.named(options.limit) if options.limit else nodes
    data_dir = str(ctx.fleet.role_vars.get("bacalhau_sensor_data_dir", SENSOR_DATA_DIR))
    settings = CanarySettings(ctx.fleet.name, spec.image, data_dir,
                              options.timeout if options.timeout is not None else spec.timeout_seconds,
                              spec.max_data_age_seconds)
    targets = [CanaryTarget(ctx.host(n), n.instance_id) for n in chosen]
    started = time.monotonic()
    with ProgressBoard(ctx.progress_console, "Canary", [t.node for t in targets]) as board:
        results = run_canary(api, settings, targets, board.update)
    result = CanaryResult(ctx.fleet.name, spec.image, round(time.monotonic() - started, 1), results)
    if ctx.output is OutputFormat.JSON:
        ctx.console.out(json.dumps(to_json(result), indent=2), highlight=False)
    else:
        rows = [(n.node, styled("ok" if n.ok else "failed"), "yes" if n.ran else "no",
                 "yes" if n.right else "no", "-" if n.rows is None else n.rows,
                 "-" if n.seconds is None else f"{n.seconds:.1f} s", n.reason) for n in results]
        print_table(ctx.console, f"Canary ({spec.image}, {result.seconds:.1f} s)",
                    ("node", "result", "ran", "output right", "rows", "took", "why not"), rows)
        passed = sum(1 for n in results if n.ok)
        ctx.console.print(Text(f"canary: {passed}/{len(results)} node(s) ran the job and answered right"),
                          highlight=False)
    return 0 if result.ok else 1
