"""The shape of JSON and YAML documents (what `json.loads` and `yaml.safe_load` return), and small readers.

Signatures use these instead of `Any`: a value read from a document is one of these types until a reader checks
which, so mypy makes every access say what it expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

JSON: TypeAlias = "str | int | float | bool | None | list[JSON] | dict[str, JSON]"
JSONObject: TypeAlias = "dict[str, JSON]"
# Parameters take a read-only view, so a dict[str, str] (or any narrower mapping) is accepted as it is.
JSONMapping: TypeAlias = "Mapping[str, JSON]"


def as_object(value: object) -> JSONObject:
    """`value` when it is a JSON object, else an empty one (a missing or mistyped part reads as absent)."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[JSON]:
    """`value` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
