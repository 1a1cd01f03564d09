"""The Ansible content passes ansible-lint (production profile) and yamllint."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", NO_COLOR="1")
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_yamllint() -> None:
    result = _run(str(BIN / "yamllint"), "-s", "playbooks", "roles", "inventory", "requirements.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile() -> None:
    result = _run(str(BIN / "ansible-lint"), "--profile", "production", "--offline", "playbooks", "roles")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]


def test_mypy_strict_on_the_package() -> None:
    result = _run(str(BIN / "mypy"))  # settings in pyproject.toml: strict on fleetdeploy/
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_ruff() -> None:
    result = _run(str(BIN / "ruff"), "check", "--no-cache", "fleetdeploy", "playbooks", "scripts")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


# Only the modules that hand objects to and from SkyPilot and ansible-runner (untyped libraries) may say `Any` in a
# signature; JSON and YAML documents are fleetdeploy.jsondoc's types everywhere else.
ANY_ALLOWED = {"fleetdeploy/providers/skypilot/provider.py", "fleetdeploy/providers/skypilot/errors.py",
               "fleetdeploy/providers/skypilot/records.py", "fleetdeploy/runs/runner.py"}


def _signature_annotations(tree: ast.AST) -> Iterator[tuple[int, ast.expr]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
            for argument in every:
                if argument is not None and argument.annotation is not None:
                    yield node.lineno, argument.annotation
            if node.returns is not None:
                yield node.lineno, node.returns


def _says_any(annotation: ast.expr) -> bool:
    text = ast.unparse(annotation)
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        text = annotation.value  # a quoted annotation
    return re.search(r"\bAny\b", text) is not None


def test_no_any_in_signatures_outside_the_untyped_boundaries() -> None:
    found = []
    for path in sorted((REPO / "fleetdeploy").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if relative in ANY_ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{relative}:{line}" for line, annotation in _signature_annotations(tree) if _says_any(annotation)]
    assert found == []


def test_the_signature_check_sees_any() -> None:
    tree = ast.parse("def f(a: int, *rest: 'Any', **extra: dict[str, Any]) -> list[int]: ...\n"
                     "def g(a: Mapping[str, Anything]) -> typing.Any: ...")
    assert [line for line, annotation in _signature_annotations(tree) if _says_any(annotation)] == [1, 1, 2]
