"""Container image references as the fleet file gives them: registry/name:tag, always pinned."""

from __future__ import annotations

import re

TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[a-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{TAG.pattern})?(?:@sha256:[0-9a-f]{{64}})?"
)


def check_image(value: str) -> str:
    """`value` when it is a pinned image reference; ValueError saying what is wrong otherwise."""
    if not _IMAGE.fullmatch(value):
        raise ValueError("is not a valid image reference (registry/name:tag)")
    last = value.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        raise ValueError("needs a pinned tag (name:tag)")
    if last.split("@")[0].endswith(":latest"):
        raise ValueError("must pin a version, not ':latest'")
    return value
