"""Byte-exact encodings the real node's API produces: Go's encoding/json (as echo's c.JSON uses it) and Go times.

Clients compare these answers with what the real node sends, so the double reproduces Go's quirks: compact output
with a trailing newline, HTML-escaped `<`, `>`, `&`, integral floats without a `.0`, and RFC 3339 times with the
trailing zeros of the fraction trimmed.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
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
    text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
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


def go_duration(seconds: int) -> str:
    """time.Duration.String() of whole seconds ("30s", "1m0s", "1h0m0s"): it appears in timeout messages."""
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    return f"{sign}{minutes}m{secs}s" if minutes else f"{sign}{secs}s"


def go_sprint_float(value: float) -> str:
    """fmt.Sprint of a float64 (strconv 'g', shortest): "0.5", "2", "1e+06"."""
    if value == 0:
        return "0"
    parts = Decimal(repr(float(value))).normalize().as_tuple()
    digits, exponent = parts.digits, int(parts.exponent)
    exp10 = len(digits) + exponent - 1
    if exp10 < -4 or exp10 >= 21 or (exp10 >= 6 and exponent >= 0):
        mantissa = "".join(map(str, digits))
        body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
        sign = "-" if value < 0 else ""
        return f"{sign}{body}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    return _go_float(float(value))


def humanize_bytes(size: int) -> str:
    """go-humanize Bytes (SI units), as the orchestrator's rankers print memory and disk."""
    if size < 10:
        return f"{size} B"
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"]
    exponent = 0
    while exponent + 1 < len(units) and size >= 1000 ** (exponent + 1):
        exponent += 1
    value = int(size / 1000 ** exponent * 10 + 0.5) / 10
    return f"{value:.1f} {units[exponent]}" if value < 10 else f"{value:.0f} {units[exponent]}"
