"""Byte-exact encodings the real node's API produces: Go's encoding/json (as echo's c.JSON uses it) and Go times.

Clients compare these answers with what the real node sends, so the double reproduces Go's quirks: compact output
with a trailing newline, HTML-escaped `<`, `>`, `&`, integral floats without a `.0`, and RFC 3339 times with the
trailing zeros of the fraction trimmed.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go marshals for a time.Time that was never set

# json.NewEncoder escapes these inside strings (SetEscapeHTML defaults to true), and always U+2028/U+2029.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def now_ns() -> int:
    return time.time_ns()


def go_time(ns: int | None) -> str:
    """time.Time.MarshalJSON of a UTC time: RFC3339Nano, fraction without trailing zeros; None/0 is Go's zero."""
    if not ns:
        return GO_ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _go_string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def _go_float(value: float) -> str:
    # strconv.FormatFloat(f, 'f' or 'e', -1, 64) as encoding/json picks them: plain notation in [1e-6, 1e21).
    if value == 0:
        return "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")  # repr is the shortest round-trip form, like Go's -1 precision
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = repr(value).partition("e")  # outside that range repr is always in e-notation
    power = int(exponent)
    # Go writes e+21 (two digits at least) but trims e-07 to e-7.
    return f"{mantissa}e-{-power}" if power < 0 else f"{mantissa}e+{power:02d}"


def _encode(value: Any, indent: str, level: int) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, dict):
        items = [(_go_string(str(k)), v) for k, v in value.items()]
        if not items:
            return "{}"
        if not indent:
            return "{" + ",".join(f"{k}:{_encode(v, indent, level + 1)}" for k, v in items) + "}"
        inner = "\n" + indent * (level + 1)
        body = ("," + inner).join(f"{k}: {_encode(v, indent, level + 1)}" for k, v in items)
        return "{" + inner + body + "\n" + indent * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if not indent:
            return "[" + ",".join(_encode(v, indent, level + 1) for v in value) + "]"
        inner = "\n" + indent * (level + 1)
        body = ("," + inner).join(_encode(v, indent, level + 1) for v in value)
        return "[" + inner + body + "\n" + indent * level + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def go_json(value: Any, pretty: bool = False) -> bytes:
    """What echo's c.JSON writes: json.Encoder output (trailing newline); `?pretty` indents by two spaces."""
    return (_encode(value, "  " if pretty else "", 0) + "\n").encode("utf-8")


def sorted_map(mapping: dict[str, Any] | None) -> dict[str, Any] | None:
    """Go marshals map keys in sorted order (a nil map is null)."""
    return None if mapping is None else {k: mapping[k] for k in sorted(mapping)}
