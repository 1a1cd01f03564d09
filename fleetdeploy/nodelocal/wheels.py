"""The Ansible a node runs in `configure.mode: node`: ansible-core and its libraries as wheels, fetched once on the
controller (nodes need no internet) and unpacked into one importable directory.

ansible-core 2.17 is the newest that runs on Python 3.10 (Ubuntu 22.04, SkyPilot's AWS images); 2.18 and later
need 3.11. Pure wheels are the same everywhere; PyYAML and MarkupSafe carry a C extension per Python version and
CPU, so each node gets the set for its own (the node says which before the bundle is sent). A node of another
Python or CPU gets them without the extension: both libraries fall back to pure Python, slower but the same.
cryptography (and cffi) are left out: ansible-core needs them only for vault, which the roles do not use, and they
would double the bundle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from fleetdeploy.errors import InputError
from fleetdeploy.paths import REPO_ROOT

ANSIBLE_CORE = "2.17.14"
PURE = (f"ansible-core=={ANSIBLE_CORE}", "jinja2==3.1.6", "packaging==26.4", "resolvelib==1.0.1")
COMPILED = ("pyyaml==6.0.4", "markupsafe==3.0.4")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
MACHINES = ("x86_64", "aarch64")
CACHE = REPO_ROOT / ".cache" / "node-ansible"
DOWNLOAD_TIMEOUT_S = 300.0
# Never on a node: the test suite and the installed command-line scripts' data.
_PRUNED = ("ansible_test", f"ansible_core-{ANSIBLE_CORE}.data")


def _key() -> str:
    return "-".join([*PURE, *COMPILED]).replace("==", "-")


def _download(dest: Path, requirements: tuple[str, ...], *platform: str) -> None:
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--dest", str(dest), *platform, *requirements]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"downloading the nodes' ansible-core wheels timed out after {DOWNLOAD_TIMEOUT_S:g} s "
                         "(is PyPI reachable? else use configure.mode: controller)") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip() and "WARNING" not in line]
        raise InputError(f"downloading the nodes' ansible-core wheels failed: {(lines or ['pip failed'])[-1].strip()}"
                         " (is PyPI reachable? else use configure.mode: controller)")


def wheels(cache: Path = CACHE) -> Path:
    """The directory of every wheel the nodes need (downloaded once; the cache's name holds every pin)."""
    target = cache / _key() / "wheels"
    if target.is_dir():
        return target
    partial = target.with_name("wheels.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _download(partial, PURE)
    for machine in MACHINES:
        for python in PYTHONS:
            platforms = ["--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_17_{machine}"]
            _download(partial, COMPILED, *platforms, "--python-version", python, "--implementation", "cp")
    partial.rename(target)
    return target


def platform_tag(python: str, machine: str) -> str:
    """`cp311-x86_64` for a supported node; `any` (pure Python, no C extension) for any other."""
    return f"cp{python.replace('.', '')}-{machine}" if python in PYTHONS and machine in MACHINES else "any"


def _matches(wheel: Path, tag: str) -> bool:
    if wheel.name.endswith("-none-any.whl"):
        return True
    python, _, machine = tag.partition("-")
    return f"-{python}-{python}-" in wheel.name and wheel.name.endswith(f"_{machine}.whl")


def site(tag: str = "any", cache: Path = CACHE) -> Path:
    """The wheels for one platform (`platform_tag`) unpacked into one directory for the node's PYTHONPATH; a
    compiled library with no wheel for it is unpacked from another platform's wheel minus its extension."""
    target = cache / _key() / f"site-{tag}"
    if target.is_dir():
        return target
    source = wheels(cache)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    chosen = [w for w in sorted(source.glob("*.whl")) if _matches(w, tag)]
    for requirement in COMPILED:
        project = requirement.split("==")[0]
        if not any(w.name.lower().startswith(project + "-") for w in chosen):
            chosen.append(next(w for w in sorted(source.glob(f"{project}-*.whl"))))
    for wheel in chosen:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if _matches(wheel, tag) or not n.endswith(".so")]
            archive.extractall(partial, members=names)
    for name in _PRUNED:
        shutil.rmtree(partial / name, ignore_errors=True)
    partial.rename(target)
    return target


if __name__ == "__main__":
    # scripts/setup.sh fetches them ahead, so the first node-mode configure (and the tests) need no download.
    try:
        wheels()
        print(site(platform_tag("3.11", "x86_64")))
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
