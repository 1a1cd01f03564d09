"""Ctrl-C at any moment of start-up ends in "interrupted" and exit 130, never in a command that runs on.

Each run is `deploy.py configure` on a local fleet whose lock this test holds, so the command, once past its
imports, fleet file and preflight, waits for the lock: it is still running when the SIGINT arrives, wherever in
the first second that is (imports, validation, the engine check, the wait).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleetdeploy.operations.lock import fleet_lock_path, held

REPO = Path(__file__).resolve().parent.parent
RUNS = 100


def _fleet(tmp_path: Path) -> Path:
    token = tmp_path / "orchestrator.token"
    token.write_text("interrupt-test-token\n")
    token.chmod(0o600)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"""name: ctrlc
provider: local
regions: {{us-east-1: {{count: 1}}}}
orchestrator: {{endpoint: "nats://127.0.0.1:4222", token_file: {token}}}
sensor: {{version: v1.17.0}}
""")
    return fleet


def _one(fleet: Path, env: dict[str, str], delay: float) -> tuple[float, int, str]:
    proc = subprocess.Popen([sys.executable, str(REPO / "deploy.py"), "-f", str(fleet), "configure",
                             "--lock-wait", "60"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return delay, proc.returncode, out + err


def test_a_hundred_early_ctrl_c_all_end_interrupted_130(tmp_path: Path) -> None:
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.fail("a Docker engine is needed (the local provider's preflight asks it): run scripts/setup.sh")
    fleet = _fleet(tmp_path)
    state = tmp_path / "state"
    env = dict(os.environ, FLEETDEPLOY_STATE_DIR=str(state))
    delays = [random.uniform(0.0, 1.0) for _ in range(RUNS)]
    with held(fleet_lock_path(state, "ctrlc"), "test holding the lock"), ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda d: _one(fleet, env, d), delays))
    # A SIGINT that lands while the interpreter itself starts (before deploy.py's first line: stdio, site) meets
    # Python's own handling, which no program can change: killed by SIGINT (a shell shows 130 too), or a
    # traceback from interpreter start-up. Those runs did nothing; they are counted apart and must stay rare.
    # "deploy.py, line 0": the module's code had been entered but not its first statement (line 0 is the frame's
    # start, before `import sys`), so no handler of ours could exist yet; seen once in 100 runs in CI.
    def before_the_program(code: int, output: str) -> bool:
        at_entry = output.strip().endswith('deploy.py", line 0, in <module>\nKeyboardInterrupt') and \
            output.count('File "') == 1
        return (code == -signal.SIGINT and (output == "" or at_entry)) or (code == 1 and "deploy.py" not in output)

    early = [r for r in results if before_the_program(r[1], r[2])]
    wrong = [(round(delay, 3), code, output[-300:]) for delay, code, output in results
             if not (code == 130 and output.strip().splitlines()[-1:] == ["interrupted"])
             and not before_the_program(code, output)]
    assert len(early) <= RUNS // 10, early
    assert wrong == [], f"{len(wrong)} of {RUNS} runs did not end interrupted/130: {wrong[:5]}"
    assert not any(code == 0 for _, code, _ in results)  # never a run that went on as if nothing happened
