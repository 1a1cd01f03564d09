"""The canary job for one node, as Bacalhau's job API takes it, and what its output says about the node (pure).

The job is a docker job pinned to the node by the `instance-id` label the bacalhau role gives every node. It reads
the sensor's data directory through the path the node allow-lists (read-only), counts the rows of the sensor's
SQLite database and says how long ago the sensor last wrote. The database runs in WAL mode, whose readers must
write a shared-memory file: the job copies the database and its WAL into the container's own /tmp and reads the
copy, so the sensor's files are never written (the mount is read-only anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fleetdeploy.jsondoc import JSONObject

# What the sensor role names its database in the data directory (its vars/main.yml, database.path).
SENSOR_DATABASE = "sensor_data.db"
JOB_DATA_MOUNT = "/sensor-data"
CANARY_LABEL = "fleetdeploy-canary"

# Runs with `python3 -c` in the job's container; prints one JSON line, exits non-zero with a reason on stderr.
# Its arguments: the mount, the database's name, and the node's own path of the data (named in messages).
_PROGRAM = """
import json, os, shutil, sqlite3, sys, tempfile, time
mount, name, node_path = sys.argv[1:4]
source = os.path.join(mount, name)
if not os.path.isdir(mount):
    sys.exit(f"the data directory {node_path} is not mounted")
if not os.path.isfile(source):
    sys.exit(f"no sensor database at {os.path.join(node_path, name)} on the node")
copy = os.path.join(tempfile.mkdtemp(), "copy.db")
newest = 0.0
for suffix in ("", "-wal"):
    if os.path.isfile(source + suffix):
        newest = max(newest, os.stat(source + suffix).st_mtime)
        shutil.copyfile(source + suffix, copy + suffix)
rows = sqlite3.connect(copy).execute("SELECT count(*) FROM sensor_readings").fetchone()[0]
print(json.dumps({"rows": rows, "age_seconds": round(max(0.0, time.time() - newest), 1)}))
""".strip()


def canary_job(fleet: str, node: str, instance_id: str, image: str, data_dir: str, timeout_s: int,
               run: str = "") -> JSONObject:
    """Bacalhau's models.Job for one node's canary (what `PUT /api/v1/orchestrator/jobs` takes as `Job`).

    `run` makes the name unique per canary run: Bacalhau v1.9.3 refuses (500, "no changes detected for new job
    spec") a job whose name and spec equal an earlier job's, and `Force` would make it a new version instead.
    """
    return {
        "Name": f"{CANARY_LABEL}-{node}" + (f"-{run}" if run else ""),
        "Namespace": "default",
        "Type": "batch",
        "Count": 1,
        "Labels": {"fleet": fleet, "purpose": CANARY_LABEL},
        "Constraints": [{"Key": "instance-id", "Operator": "=", "Values": [instance_id]}],
        "Tasks": [{
            "Name": "main",
            "Engine": {"Type": "docker", "Params": {
                "Image": image,
                "Entrypoint": ["python3", "-c", _PROGRAM, JOB_DATA_MOUNT, SENSOR_DATABASE, data_dir],
            }},
            "InputSources": [{
                "Source": {"Type": "localDirectory", "Params": {"SourcePath": data_dir, "ReadWrite": False}},
                "Target": JOB_DATA_MOUNT,
            }],
            "Network": {"Type": "None"},
            "Timeouts": {"ExecutionTimeout": timeout_s},
        }],
    }


@dataclass(frozen=True)
class Verdict:
    """What one node's job output says: right or not, the rows counted, and why not."""

    right: bool
    rows: int | None
    age_seconds: float | None
    reason: str  # "" when right


def judge_output(stdout: str, exit_code: int, stderr: str, max_age_s: float) -> Verdict:
    """Right when the job exited 0 and counted at least one row written within `max_age_s`."""
    if exit_code != 0:
        why = _last_line(stderr) or f"exit code {exit_code}"
        return Verdict(False, None, None, f"the job failed: {why}")
    try:
        answer = json.loads(stdout.strip().splitlines()[-1])
        rows, age = int(answer["rows"]), float(answer["age_seconds"])
    except (ValueError, KeyError, TypeError, IndexError):
        return Verdict(False, None, None, f"output not understood: {_last_line(stdout)[:80]!r}")
    if rows < 1:
        return Verdict(False, rows, age, "the sensor database has no readings")
    if age > max_age_s:
        return Verdict(False, rows, age, f"no new reading for {age:.0f} s (is the sensor running?)")
    return Verdict(True, rows, age, "")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
