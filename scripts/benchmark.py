#!/usr/bin/env python3
"""Performance figures from one run on local fleets (not a test: nothing here passes or fails).

Measures: CLI start-up (`--help`, `status`), first configure of 1 vs N nodes (inside `up`), and the no-op
re-run (`configure` on converged nodes) of 1 vs N nodes. Prints the figures and their ratios; the ratios are
what to watch (N nodes should cost far less than N times one node when forks and pipelining work).

Usage: .venv/bin/python scripts/benchmark.py [--nodes N] [--repeat K]
Needs what scripts/setup.sh installs (Docker engine, local images, test-double archives).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARCHIVES = REPO / ".cache" / "images"


def write_fleet(work: Path, name: str, nodes: int) -> Path:
    token = work / "orchestrator.token"
    token.write_text(f"bench-{uuid.uuid4().hex}\n")
    token.chmod(0o600)
    fleet = work / f"{name}.yaml"
    fleet.write_text(
        f"""name: {name}
provider: local
regions:
  us-east-1: {{count: {nodes}}}
orchestrator: {{endpoint: local, token_file: {token}}}
bacalhau: {{version: v1.9.3, image: localhost/bacalhau-double:test}}
sensor: {{version: test, image: localhost/sensor-double:test}}
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'bacalhau-double.tar'}
  sensor_archive: {ARCHIVES / 'sensor-double.tar'}
"""
    )
    return fleet


def run(argv: list[str], env: dict[str, str], check: bool = True) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if check and result.returncode != 0:
        raise SystemExit(f"benchmark: {' '.join(argv[1:])} failed (exit {result.returncode}):\n"
                         f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return elapsed, result.stdout


def timed(argv: list[str], env: dict[str, str], check: bool = True) -> float:
    return run(argv, env, check)[0]


def configure_seconds(output: str) -> float:
    """The Ansible part alone, without provisioning: `seconds` of the configure result (`--output json`)."""
    data = json.loads(output)
    configure = data.get("configure", data)  # `up` nests it; `configure` is it
    if configure is None or "seconds" not in configure:
        raise SystemExit("benchmark: no configure result in the JSON output")
    return float(configure["seconds"])


def measure_fleet(work: Path, nodes: int, repeat: int, env: dict[str, str]) -> dict[str, float]:
    name = f"bench{nodes}x{uuid.uuid4().hex[:4]}"
    fleet = write_fleet(work, name, nodes)
    deploy = [sys.executable, str(REPO / "deploy.py"), "-f", str(fleet)]
    figures: dict[str, float] = {}
    try:
        up_seconds, output = run(deploy + ["up", "--skip-health", "--output", "json"], env)
        figures["up (provision + first configure)"] = up_seconds
        figures["first configure (ansible only)"] = configure_seconds(output)
        noop = [run(deploy + ["configure", "--output", "json"], env)[1] for _ in range(repeat)]
        figures["no-op configure (ansible only)"] = statistics.median(configure_seconds(o) for o in noop)
        figures["health"] = timed(deploy + ["health"], env)
        figures["status"] = statistics.median(timed(deploy + ["status"], env) for _ in range(repeat))
    finally:
        timed(deploy + ["down", "--yes"], env, check=False)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3, help="size of the larger fleet (default 3)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the quick measurements")
    args = parser.parse_args()
    if args.nodes < 2 or args.repeat < 1:
        parser.error("--nodes must be at least 2 and --repeat at least 1")

    with tempfile.TemporaryDirectory(prefix="fleetdeploy-bench-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(work / "state"), NO_COLOR="1",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        help_time = statistics.median(
            timed([sys.executable, str(REPO / "deploy.py"), "--help"], env) for _ in range(args.repeat))
        one = measure_fleet(work, 1, args.repeat, env)
        many = measure_fleet(work, args.nodes, args.repeat, env)

    print(f"{'figure':38} {'1 node':>9} {f'{args.nodes} nodes':>9} {'ratio':>7}")
    for key in one:
        ratio = many[key] / one[key] if one[key] else float("nan")
        print(f"{key:38} {one[key]:8.2f}s {many[key]:8.2f}s {ratio:6.2f}x")
    print(f"{'deploy.py --help':38} {help_time:8.2f}s")
    first = "first configure (ansible only)"
    print(f"configure cost per node at {args.nodes} nodes relative to 1 node: "
          f"{many[first] / (args.nodes * one[first]):.2f} (1.00 = no parallelism; lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
