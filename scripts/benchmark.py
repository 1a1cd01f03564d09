#!/usr/bin/env python3
"""Fleet-scale figures from one run, stock vs tuned, on local fleets (not a test: nothing here passes or fails).

For each fleet size N (default 1, 5, 20) and each mode it provisions a fresh local fleet, then measures four
phases through the CLI: the first configure, a no-op configure, `configure --check` with no drift, and `health`.
  stock: Ansible's own defaults (scripts/benchmark.py writes a near-empty ansible.cfg: only host key checking is
         off, as throw-away nodes need) and every task on every node (`--full`);
  tuned: the repo's ansible.cfg and the convergence stamp (an unchanged node ends after one task);
  node:  as tuned, but each node runs the roles itself (`--configure-mode node`: one SSH session per node).
Per phase: wall time, controller CPU (deploy.py and all its children), node CPU (the node containers' cgroups),
the controller's peak RSS, the task and changed counts (Ansible's recap). The first-configure ratio target takes
the medians of --first-samples tuned first configures at N = 1 and 5 (each on a fresh fleet). It also times a
multi-region `up` against each region alone (medians of --region-rounds), and the CLI start-up.

Writes docs/benchmark.json, docs/benchmark.png and docs/benchmark.md (table, per-role breakdown of the first
configure, the targets of issue 9). Needs what scripts/setup.sh installs, plus `pip install -e .[bench]`.
Usage: .venv/bin/python scripts/benchmark.py [--nodes 1,5,20] [--modes stock,tuned,node] [--first-samples 3]
       [--out docs]
       .venv/bin/python scripts/benchmark.py --runs-only --modes tuned,node   (only those modes' rows of `runs`
       are measured and replaced; the rest of the file is kept)
       .venv/bin/python scripts/benchmark.py --watch     (only the watcher's figures: scripts/benchmark_watch.py)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmark_probe import measure  # noqa: E402 - a sibling module of this script
from benchmark_report import write_chart, write_markdown  # noqa: E402

ARCHIVES = REPO / ".cache" / "images"
# Ansible's defaults, except what throw-away nodes with new host keys need.
STOCK_CFG = "[defaults]\nhost_key_checking = False\n"
PHASES = {"first": ["configure"], "noop": ["configure"], "check": ["configure", "--check"], "health": ["health"]}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", re.M)
ROLE_TIME = re.compile(r"^(\w+) -+ (\d+\.\d+)s$", re.M)


def write_fleet(work: Path, name: str, regions: dict[str, int]) -> Path:
    token = work / "orchestrator.token"
    if not token.exists():
        token.write_text(f"bench-{uuid.uuid4().hex}\n")
        token.chmod(0o600)
    lines = "\n".join(f"  {region}: {{count: {count}}}" for region, count in regions.items())
    fleet = work / f"{name}.yaml"
    fleet.write_text(f"""name: {name}
provider: local
regions:
{lines}
orchestrator: {{endpoint: local, token_file: {token}}}
bacalhau: {{version: v1.9.3, image: localhost/bacalhau-double:test}}
sensor: {{version: test, image: localhost/sensor-double:test}}
images:
  source: archive
  bacalhau_archive: {ARCHIVES / 'doubles.tar'}
  sensor_archive: {ARCHIVES / 'doubles.tar'}
""")
    return fleet


def provision(fleet_file: Path) -> float:
    """Create the fleet's nodes (the provider alone, no configure), in seconds."""
    from fleetdeploy.fleet.model import load_fleet
    from fleetdeploy.paths import state_dir
    from fleetdeploy.providers.local.provider import LocalProvider

    started = time.perf_counter()
    outcomes = LocalProvider(load_fleet(fleet_file), state_dir()).up(lambda cluster, message: None)
    failed = [f"{o.cluster}: {o.error}" for o in outcomes if o.error]
    if failed:
        raise SystemExit(f"benchmark: provisioning failed: {'; '.join(failed)}")
    return time.perf_counter() - started


def _deploy(fleet_file: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "deploy.py"), "-f", str(fleet_file), *args]


def _counted(stdout: str) -> tuple[int, int]:
    """Tasks and changed summed over the nodes, from a configure's JSON result (a node-local run logs no recap)."""
    try:
        nodes = json.loads(stdout).get("nodes") or []
    except ValueError:
        return 0, 0
    tasks = sum(int(n.get("ok", 0)) + int(n.get("failed", 0)) + int(n.get("skipped", 0)) for n in nodes)
    return tasks, sum(int(n.get("changed", 0)) for n in nodes)


def _recap(state: Path, fleet: str) -> tuple[int, int, dict[str, float]]:
    """Tasks and changed summed over the nodes, and seconds per role, from the phase's run log."""
    runs = sorted((state / fleet / "runs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    text = runs[-1].read_text() if runs else ""
    rows = RECAP.findall(text)
    tasks = sum(int(ok) + int(failed) + int(skipped) for _, ok, _, _, failed, skipped in rows)
    changed = sum(int(row[2]) for row in rows)
    roles = {name: float(seconds) for name, seconds in ROLE_TIME.findall(text.split("ROLES RECAP")[-1])} \
        if "ROLES RECAP" in text else {}
    return tasks, changed, roles


def run_mode(work: Path, env: dict[str, str], nodes: int, mode: str) -> tuple[list[dict[str, Any]], dict[str, float]]:
    name = f"b{nodes}{mode[0]}{uuid.uuid4().hex[:4]}"
    fleet_file = write_fleet(work, name, {"us-east-1": nodes})
    state = Path(env["FLEETDEPLOY_STATE_DIR"])
    phase_env = dict(env)
    if mode == "stock":
        stock_cfg = work / "stock-ansible.cfg"
        stock_cfg.write_text(STOCK_CFG)
        phase_env["FLEETDEPLOY_ANSIBLE_CONFIG"] = str(stock_cfg)
    runs, roles = [], {}
    try:
        seconds = provision(fleet_file)
        print(f"  N={nodes} {mode}: {nodes} node(s) provisioned in {seconds:.0f} s", flush=True)
        for phase, args in PHASES.items():
            flags = {"stock": ["--full"], "node": ["--configure-mode", "node"]}.get(mode, [])
            argv = _deploy(fleet_file, *args, *(flags if phase != "health" else []), "--output", "json")
            # The per-role breakdown of the first configure (ansible.posix.profile_roles in the run log).
            extra = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_roles"} if phase == "first" else {}
            result = measure(argv, phase_env | extra, REPO, name)
            if result.returncode != 0:
                raise SystemExit(f"benchmark: {' '.join(args)} (N={nodes}, {mode}) failed, exit {result.returncode}:"
                                 f"\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
            tasks, changed, per_role = _recap(state, name)
            if mode == "node" and phase != "health":
                tasks, changed = _counted(result.stdout)
            if phase == "first":
                roles = per_role
            runs.append({"nodes": nodes, "mode": mode, "phase": phase, "wall_s": result.wall_s,
                         "controller_cpu_s": result.controller_cpu_s, "node_cpu_s": result.node_cpu_s,
                         "controller_peak_rss_mb": result.controller_peak_rss_mb, "tasks": tasks, "changed": changed})
            print(f"    {phase:6} wall {result.wall_s:7.1f} s  controller {result.controller_cpu_s:7.1f} s  "
                  f"nodes {result.node_cpu_s:7.1f} s  rss {result.controller_peak_rss_mb:6.0f} MB  "
                  f"tasks {tasks:5}  changed {changed}", flush=True)
    finally:
        measure(_deploy(fleet_file, "down", "--yes"), env, REPO, name)
    return runs, roles


def first_configure_wall(work: Path, env: dict[str, str], nodes: int) -> float:
    """One more tuned first configure on a fresh fleet of `nodes` (a sample for the ratio target), in seconds."""
    name = f"s{nodes}{uuid.uuid4().hex[:4]}"
    fleet_file = write_fleet(work, name, {"us-east-1": nodes})
    try:
        provision(fleet_file)
        result = measure(_deploy(fleet_file, "configure", "--output", "json"), env, REPO, name)
        if result.returncode != 0:
            raise SystemExit(f"benchmark: configure (N={nodes}, sample) failed, exit {result.returncode}:"
                             f"\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    finally:
        measure(_deploy(fleet_file, "down", "--yes"), env, REPO, name)
    print(f"  N={nodes} tuned: first configure sample {result.wall_s:.1f} s", flush=True)
    return result.wall_s


def _provision_with_cpu(work: Path, env: dict[str, str], regions: dict[str, int]) -> tuple[float, float]:
    """Seconds to create a fleet's nodes, and the CPU the whole machine spent meanwhile (the node containers,
    the host's engine, the docker and ssh clients: they all share these cores)."""
    import psutil

    fleet_file = write_fleet(work, f"r{uuid.uuid4().hex[:5]}", regions)
    before = psutil.cpu_times()
    try:
        seconds = provision(fleet_file)
        after = psutil.cpu_times()
    finally:
        measure(_deploy(fleet_file, "down", "--yes"), env, REPO, "none")
    busy = sum(getattr(after, f) - getattr(before, f) for f in after._fields if f not in ("idle", "iowait"))
    return round(seconds, 1), round(busy, 1)


def regions_in_parallel(work: Path, env: dict[str, str], per_region: int, rounds: int) -> dict[str, Any]:
    """One 3-region fleet against each of its regions alone: creating the nodes only (what `up` does first).
    Each figure is the median of `rounds` (a creation takes seconds, so one sample is mostly noise)."""
    regions = {"us-east-1": per_region, "eu-west-1": per_region, "ap-south-1": per_region}
    alone: dict[str, list[float]] = {region: [] for region in regions}
    alone_cpu: dict[str, list[float]] = {region: [] for region in regions}
    together: list[float] = []
    together_cpu: list[float] = []
    for _ in range(rounds):
        for region, count in regions.items():
            seconds, cpu = _provision_with_cpu(work, env, {region: count})
            alone[region].append(seconds)
            alone_cpu[region].append(cpu)
        seconds, cpu = _provision_with_cpu(work, env, regions)
        together.append(seconds)
        together_cpu.append(cpu)
    alone_s = {region: statistics.median(samples) for region, samples in alone.items()}
    fleet_s = statistics.median(together)
    return {"nodes_per_region": per_region, "rounds": rounds, "regions_alone_s": alone_s, "fleet_s": fleet_s,
            "ratio_to_slowest": round(fleet_s / max(alone_s.values()), 2),
            "regions_alone_cpu_s": {region: statistics.median(samples) for region, samples in alone_cpu.items()},
            "fleet_cpu_s": statistics.median(together_cpu),
            "samples": {"regions_alone_s": alone, "fleet_s": together}}


def cli_startup(env: dict[str, str]) -> float:
    samples = sorted(measure([sys.executable, str(REPO / "deploy.py"), "--help"], env, REPO, "none").wall_s
                     for _ in range(5))
    return samples[2]


def _environment(work: Path) -> dict[str, str]:
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(work / "state"), NO_COLOR="1", COLUMNS="200",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    os.environ["FLEETDEPLOY_STATE_DIR"] = env["FLEETDEPLOY_STATE_DIR"]  # provision() runs in this process
    return env


def watch_only(args: argparse.Namespace) -> int:
    """The `watch` object of benchmark.json, on its own; the rest of the file is kept as it is."""
    from benchmark_watch import benchmark_watch

    path = args.out / "benchmark.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="fleetdeploy-bench-") as tmp:
        work = Path(tmp)
        report["watch"] = benchmark_watch(work, _environment(work), write_fleet, args.watch_samples,
                                          args.watch_ticks, args.watch_interval)
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    if report.get("runs"):
        (args.out / "benchmark.md").write_text(write_markdown(report))
    print(f"wrote the watch object of {path}")
    return 0


def runs_only(sizes: list[int], modes: list[str], out: Path) -> int:
    """Measure the phases of `modes` at `sizes` and put them in place of those rows of benchmark.json's `runs`."""
    path = out / "benchmark.json"
    report = json.loads(path.read_text()) if path.exists() else {"runs": []}
    with tempfile.TemporaryDirectory(prefix="fleetdeploy-bench-") as tmp:
        work = Path(tmp)
        env = _environment(work)
        fresh: list[dict[str, Any]] = []
        for nodes in sizes:
            for mode in modes:
                runs, roles = run_mode(work, env, nodes, mode)
                fresh += runs
                report.setdefault("first_configure_roles", {})[f"{mode}-{nodes}"] = roles
        report["cli_startup_s"] = cli_startup(env)
    measured = {(r["nodes"], r["mode"]) for r in fresh}
    report["runs"] = [r for r in report.get("runs", []) if (r["nodes"], r["mode"]) not in measured] + fresh
    report["runs"].sort(key=lambda r: (r["nodes"], ["stock", "tuned", "node"].index(r["mode"]),
                                       list(PHASES).index(r["phase"])))
    report["date"] = time.strftime("%Y-%m-%d")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    write_chart(report, out / "benchmark.png")
    (out / "benchmark.md").write_text(write_markdown(report))
    print(f"wrote the runs of {path}, benchmark.png and benchmark.md")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="1,5,20", help="fleet sizes, comma-separated (default 1,5,20)")
    parser.add_argument("--modes", default="stock,tuned,node", help="any of stock, tuned, node (default: all)")
    parser.add_argument("--runs-only", action="store_true",
                        help="only the phases of --modes at --nodes: their rows of `runs` are replaced, the rest kept")
    parser.add_argument("--region-nodes", type=int, default=2, help="nodes per region of the multi-region test")
    parser.add_argument("--first-samples", type=int, default=3,
                        help="tuned first configures at N=1 and N=5 whose medians give the ratio target (default 3)")
    parser.add_argument("--region-rounds", type=int, default=3, help="rounds of the multi-region test (median)")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the json, png and md go")
    parser.add_argument("--watch", action="store_true",
                        help="only the watcher's section (benchmark_watch.py): writes the json's `watch` object")
    parser.add_argument("--watch-samples", type=int, default=3, help="heal cycles and idle ticks (median)")
    parser.add_argument("--watch-ticks", type=int, default=200, help="ticks of the RSS run (1 s interval)")
    parser.add_argument("--watch-interval", type=int, default=10, help="the watcher's interval in the heal cycles")
    args = parser.parse_args()
    sizes = [int(n) for n in args.nodes.split(",")]
    modes = args.modes.split(",")
    if any(n < 1 for n in sizes) or not set(modes) <= {"stock", "tuned", "node"} or \
            min(args.region_nodes, args.first_samples, args.region_rounds) < 1:
        parser.error("--nodes must be positive counts, --modes stock and/or tuned, --region-nodes, "
                     "--first-samples and --region-rounds at least 1")
    for needed in ("matplotlib", "psutil"):
        if importlib.util.find_spec(needed) is None:
            parser.error(f"{needed} is missing: pip install -e '.[bench]'")

    if args.watch:
        return watch_only(args)
    if args.runs_only:
        return runs_only(sizes, modes, args.out)
    with tempfile.TemporaryDirectory(prefix="fleetdeploy-bench-") as tmp:
        work = Path(tmp)
        env = _environment(work)
        report: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "cores": os.cpu_count(),
                                  "date": time.strftime("%Y-%m-%d"), "cli_startup_s": cli_startup(env), "runs": [],
                                  "first_configure_roles": {}, "first_configure_samples": {}}
        for nodes in sizes:
            for mode in modes:
                runs, roles = run_mode(work, env, nodes, mode)
                report["runs"] += runs
                report["first_configure_roles"][f"{mode}-{nodes}"] = roles
                if mode == "tuned" and nodes in (1, 5):
                    first = next(r["wall_s"] for r in runs if r["phase"] == "first")
                    report["first_configure_samples"][f"tuned-{nodes}"] = [first] + [
                        first_configure_wall(work, env, nodes) for _ in range(args.first_samples - 1)]
        report["up_regions"] = regions_in_parallel(work, env, args.region_nodes, args.region_rounds)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    write_chart(report, args.out / "benchmark.png")
    (args.out / "benchmark.md").write_text(write_markdown(report))
    print(f"wrote {args.out / 'benchmark.json'}, benchmark.png and benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
