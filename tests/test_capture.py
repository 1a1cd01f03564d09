"""fd-level capture: what a library and the processes it starts print never reaches our stdout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    from fleetdeploy.output.capture import captured_fds, original_stdout
    out = original_stdout()
    seen = []
    with captured_fds(seen.append):
        print("python print")                                   # like SkyPilot's own prints
        print("\\x1b[32mcoloured\\x1b[0m", file=sys.stderr)
        os.write(1, b"raw fd write\\n")
        subprocess.run(["sh", "-c", "echo from a child; echo child err >&2"], check=True)
        out.write("ours\\n")                                      # our console keeps the real stdout
        out.flush()
    print("after")                                              # fd 1 is back
    sys.stdout.flush()
    sys.stderr.write(repr(sorted(seen)) + "\\n")
    """
)


def test_library_and_child_output_goes_to_the_sink_ours_to_stdout() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ours\nafter\n"
    assert result.stderr.strip() == repr(sorted(
        ["python print", "coloured", "raw fd write", "from a child", "child err"]))
