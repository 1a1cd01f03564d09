"""The bundle a node configures itself from (`configure.mode: node`): one tar.gz, the same for every node and run
until something in it changes, so it is built once and only streamed after that.

It holds ansible-core and its libraries (wheels.py), the collections the roles use, playbooks/ and roles/ (no
molecule scenarios) and ansible.cfg: never a secret, an inventory or anything else per node. Secrets and each node's
inventory travel beside it on the session's stdin (session.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fleetdeploy.nodelocal.wheels import CACHE, site
from fleetdeploy.paths import ANSIBLE_CFG, PLAYBOOKS_DIR, REPO_ROOT, ROLES_DIR

GROUP_VARS = REPO_ROOT / "inventory" / "group_vars"
STALE_AFTER_S = 86400.0
# Whole, but for what only its developers read.
_DOCKER_SKIP = {"docs", "tests", "changelogs", "CHANGELOG.md", "CHANGELOG.rst", "FILES.json"}
_FQCN = re.compile(r"\bcommunity\.general\.([a-z0-9_]+)\b")


def _collections_root() -> Path:
    import ansible_collections  # type: ignore[import-untyped]  # the controller's own collections (the `ansible` package): the tested versions

    return Path(next(iter(ansible_collections.__path__)))


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc" or "molecule" in path.parts


def _tree(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _skip(path.relative_to(root)):
            yield f"{prefix}/{path.relative_to(root).as_posix()}", path


def used_general_plugins(*trees: Path) -> set[str]:
    """community.general's plugins the roles and playbooks name (that collection is 24 MB; they use a filter)."""
    names: set[str] = set()
    for tree in trees:
        for path in tree.rglob("*.yml"):
            if not _skip(path):
                names.update(_FQCN.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def members(tag: str, collections: Path | None = None) -> Iterator[tuple[str, Path]]:
    """(name in the bundle, file on the controller) for everything the bundle holds, in a stable order."""
    yield from _tree(site(tag), "site")
    root = collections or _collections_root()
    docker = root / "community" / "docker"
    for path in sorted(docker.iterdir()):
        if path.name in _DOCKER_SKIP:
            continue
        name = f"collections/ansible_collections/community/docker/{path.name}"
        if path.is_dir():
            yield from _tree(path, name)
        else:
            yield name, path
    general = root / "community" / "general"
    for name in ("MANIFEST.json", "meta/runtime.yml"):
        yield f"collections/ansible_collections/community/general/{name}", general / name
    for plugin in sorted(used_general_plugins(ROLES_DIR, PLAYBOOKS_DIR)):
        for path in sorted((general / "plugins").glob(f"*/{plugin}.py")):
            yield f"collections/ansible_collections/community/general/{path.relative_to(general).as_posix()}", path
    yield "project/ansible.cfg", ANSIBLE_CFG
    yield from _tree(PLAYBOOKS_DIR, "project/playbooks")
    yield from _tree(ROLES_DIR, "project/roles")
    yield from _tree(GROUP_VARS, "group_vars")


def _digest(entries: list[tuple[str, Path]]) -> str:
    digest = hashlib.sha256()
    for name, path in entries:
        # The unpacked wheels never change under their directory's name (it holds every pin): not read again.
        content = str(path).encode() if name.startswith("site/") else path.read_bytes()
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def _tar(entries: list[tuple[str, Path]]) -> bytes:
    raw = io.BytesIO()
    # Fixed owner, mode and time: the same inputs give the same bytes (and roles keep their modes on the node).
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in entries:
            info = tarfile.TarInfo(name)
            data = path.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


def bundle(tag: str, cache: Path = CACHE) -> Path:
    """The bundle for nodes of one platform (wheels.platform_tag), built when its inputs changed (their digest
    names it)."""
    entries = list(members(tag))
    path = cache / f"bundle-{tag}-{_digest(entries)}.tar.gz"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        # A name of its own, then an atomic rename: two commands building at once never mix their bytes.
        descriptor, partial = tempfile.mkstemp(prefix=path.name, suffix=".partial", dir=cache)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(_tar(entries))
        os.replace(partial, path)
        stale = time.time() - STALE_AFTER_S  # another command may still be sending an older one
        for old in cache.glob(f"bundle-{tag}-*.tar.gz"):
            if old != path and old.stat().st_mtime < stale:
                old.unlink(missing_ok=True)
    return path
