"""Local input sources on a compute node: Compute.AllowListedLocalPaths (pkg/storage/local of v1.9.3).

An entry is a doublestar pattern with an optional ":rw" or ":ro" suffix (none means read-only). A source
matches when its SourcePath matches a pattern (doublestar.PathMatch: `*` and `?` stay within one path segment,
`/**` also matches the directory itself); ReadWrite sources need a ":rw" entry. Otherwise the execution fails
with "volume <path> is not allowlisted" or "volume <path> is not granted write access". Upstream checks this, and
that the path exists, while bidding (the disk usage calculator asks the volume's size), and again when it mounts.
The storage is "installed" (advertised, bid on) only when at least one path is allow-listed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

ALLOWLIST_HINT = "Verify Compute.AllowListedLocalPaths configuration property"


class StorageError(Exception):
    """A bacerrors.Error of the local storage provider: str() is its message; details are what EventFromError
    records (Hint, ErrorCode "<component>:<code>")."""

    def __init__(self, message: str, hint: str = "", code: str = "") -> None:
        super().__init__(message)
        self.details = {"ErrorCode": f"Bacalhau:{code}", **({"Hint": hint} if hint else {})}


@dataclass(frozen=True)
class AllowedPath:
    pattern: str
    read_write: bool


def parse_allowed(entries: list[str]) -> list[AllowedPath]:
    out = []
    for entry in entries:
        if entry.endswith(":rw"):
            out.append(AllowedPath(entry[:-3], True))
        elif entry.endswith(":ro"):
            out.append(AllowedPath(entry[:-3], False))
        else:
            out.append(AllowedPath(entry, False))
    return out


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"(?<!\\)\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [x for alt in match.group(1).split(",") for x in _expand_braces(head + alt + tail)]


def _segment_regex(segment: str) -> str:
    out, i = "", 0
    while i < len(segment):
        c = segment[i]
        if c == "\\" and i + 1 < len(segment):
            out += re.escape(segment[i + 1])
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = segment.find("]", i + 2)
            if end == -1:
                out += re.escape(c)
            else:
                body = segment[i + 1:end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out += "[" + body.replace("\\", "\\\\") + "]"
                i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def _match_segments(patterns: list[str], names: list[str]) -> bool:
    if not patterns:
        return not names
    if patterns[0] == "**":  # zero or more whole segments
        return any(_match_segments(patterns[1:], names[i:]) for i in range(len(names) + 1))
    return bool(names) and re.fullmatch(_segment_regex(patterns[0]), names[0]) is not None and \
        _match_segments(patterns[1:], names[1:])


def path_match(pattern: str, name: str) -> bool:
    """doublestar.PathMatch on "/"-separated paths ("a/**" matches "a", "a/" and all below)."""
    names = name.split("/")
    if len(names) > 1 and names[-1] == "":
        names.pop()
    for alternative in _expand_braces(pattern):
        patterns = alternative.split("/")
        if len(patterns) > 1 and patterns[-1] == "":
            patterns.pop()
        if _match_segments(patterns, names):
            return True
    return False


def match_allowed(allowed: list[AllowedPath], source_path: str, read_write: bool) -> None:
    """matchAllowedPath; raises StorageError with the real message."""
    insufficient = False
    for entry in allowed:
        if path_match(entry.pattern, source_path):
            if read_write and not entry.read_write:
                insufficient = True
                continue
            return
    if insufficient:
        raise StorageError(f"volume {source_path} is not granted write access", ALLOWLIST_HINT, "ConfigurationError")
    raise StorageError(f"volume {source_path} is not allowlisted", ALLOWLIST_HINT, "ConfigurationError")


def decode_source(params: dict[str, Any]) -> tuple[str, bool, str]:
    """local.DecodeSpec: (SourcePath, ReadWrite, CreateAs); "true"/"false" strings are booleans."""
    read_write = params.get("ReadWrite", False)
    if isinstance(read_write, str):
        read_write = read_write == "true"
    create_as = str(params.get("CreateAs") or "")
    strategy = {"dir": "dir", "file": "file", "nocreate": "noCreate", "": "noCreate"}.get(create_as.lower())
    if strategy is None:
        raise StorageError(f"invalid CreateAs value {create_as}", "CreateAs must be one of [dir, file, noCreate]",
                           "ValidationError")
    return str(params.get("SourcePath") or ""), bool(read_write), strategy


def check_volume(allowed: list[AllowedPath], params: dict[str, Any]) -> None:
    """GetVolumeSize, which the disk usage calculator calls while bidding: the allow-list and the path's existence
    are checked before the node accepts the job."""
    source, read_write, create_as = decode_source(params)
    match_allowed(allowed, source, read_write)
    if not os.path.exists(source) and not (read_write and create_as != "noCreate"):
        raise StorageError(f"volume {source} does not exist and creation is not allowed",
                           "If you want the job to create the volume, set ReadWrite to true and CreateAs to one of "
                           "[dir, file]")


def prepare(allowed: list[AllowedPath], params: dict[str, Any], target: str) -> dict[str, Any]:
    """PrepareStorage: the bind mount for Docker, creating the path first when the source allows it."""
    source, read_write, create_as = decode_source(params)
    match_allowed(allowed, source, read_write)
    if not os.path.exists(source):
        if not read_write:
            raise StorageError(f"volume {source} does not exist and read-write access is not allowed")
        if create_as == "noCreate":
            raise StorageError(f"volume does not exist at {source} and creation is not allowed")
        if create_as == "dir":
            os.makedirs(source, mode=0o700, exist_ok=True)
        else:
            if source.endswith("/"):
                raise StorageError(f"SourcePath {source} is a directory but CreateAs is set to file")
            os.makedirs(os.path.dirname(source) or "/", mode=0o700, exist_ok=True)
            with open(source, "x", encoding="utf-8"):
                pass
    return {"Type": "bind", "Source": source, "Target": target, "ReadOnly": not read_write}
