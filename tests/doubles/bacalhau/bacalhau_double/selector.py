"""The Kubernetes label-selector language, as the orchestrator parses the `labels` query parameter.

Bacalhau joins the repeated `labels` parameters with "," and hands them to k8s.io/apimachinery's
labels.ParseToRequirements. This is an independent implementation of that grammar (`k=v`, `k==v`, `k!=v`, `k`,
`!k`, `k in (a,b)`, `k notin (a,b)`, `k>1`, `k<1`; a comma is AND) with the same error texts, because a bad
selector comes back to the client as the message of a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME_RE = re.compile(f"^{_NAME}$")
_VALUE_RE = re.compile(f"^({_NAME})?$")
_DNS_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_SUBDOMAIN_RE = re.compile(f"^{_DNS_SUBDOMAIN}$")
_GO_INT_RE = re.compile(r"^[+-]?\d+$")
_SPECIAL = "=!(),><"
_TOKENS = {"=", "==", "!=", "!", "(", ")", ",", ">", "<"}
_BINARY = "in, notin, =, ==, !=, gt, lt"  # strings.Join(binaryOperators, ", ") in apimachinery


class SelectorError(ValueError):
    """The selector does not parse; str() is apimachinery's message."""


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # validation.RegexError's layout, double spaces included.
    return msg + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + f"regex used for validation is '{fmt}')"


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key_problems(key: str) -> list[str]:
    """validation.IsQualifiedName: [DNS-subdomain prefix '/'] name, name at most 63 characters."""
    name_msg = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character")
    parts = key.split("/")
    problems: list[str] = []
    if len(parts) == 2:
        prefix, name = parts
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                problems.append("prefix part must be no more than 253 characters")
            if not _DNS_SUBDOMAIN_RE.match(prefix):
                problems.append("prefix part " + _regex_error(
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                    "and must start and end with an alphanumeric character", _DNS_SUBDOMAIN, "example.com"))
    elif len(parts) == 1:
        name = parts[0]
    else:
        return ["a qualified name " + _regex_error(name_msg, _NAME, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if name and not _NAME_RE.match(name):
        problems.append("name part " + _regex_error(name_msg, _NAME, "MyName", "my.name", "123-abc"))
    return problems


def _value_problems(value: str) -> list[str]:
    problems = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not _VALUE_RE.match(value):
        problems.append(_regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character", f"({_NAME})?", "MyValue", "my_value", "12345"))
    return problems


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in" "notin" "=" "==" "!=" "gt" "lt" "exists" "!"
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        if self.op in ("in", "=", "=="):
            return has and labels[self.key] in self.values
        if self.op in ("notin", "!="):
            return not has or labels[self.key] not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has or not _GO_INT_RE.match(labels[self.key]):
            return False
        mine, theirs = int(labels[self.key]), int(self.values[0])
        return mine > theirs if self.op == "gt" else mine < theirs


def _lex(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs; kind is "id", "in", "notin", an operator/punctuation literal, or "end"."""
    items: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            items.append(("end", ""))
            return items
        if text[pos] in _SPECIAL:
            # Longest run of special characters that is still a known operator ("!=" but "=(" is "=" then "(").
            best, end = "", pos
            while end < len(text) and text[end] in _SPECIAL and text[pos:end + 1] in _TOKENS:
                end += 1
                best = text[pos:end]
            items.append((best, best))
            pos = end
            continue
        start = pos
        while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in " \t\r\n":
            pos += 1
        word = text[start:pos]
        items.append((word if word in ("in", "notin") else "id", word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        kind, lit = self.items[self.pos]
        # In a value position the keywords are plain identifiers ("x in (in)").
        return ("id" if values and kind in ("in", "notin") else kind), lit

    def take(self, values: bool = True) -> tuple[str, str]:
        item = self.peek(values)
        self.pos += 1
        return item

    def requirement(self) -> Requirement:
        kind, lit = self.take()
        negated = kind == "!"
        if negated:
            kind, lit = self.take()
        if kind != "id":
            raise SelectorError(f"found '{lit}', expected: identifier")
        if problems := _key_problems(lit):
            raise SelectorError(f": Invalid value: {_go_quote(lit)}: {'; '.join(problems)}")
        key = lit
        if negated or self.peek()[0] in ("end", ","):
            return Requirement(key, "!" if negated else "exists", ())
        kind, lit = self.take(values=False)
        ops = {"in": "in", "notin": "notin", "=": "=", "==": "==", "!=": "!=", ">": "gt", "<": "lt"}
        if kind not in ops:
            raise SelectorError(f"found '{lit}', expected: {_BINARY}")
        op = ops[kind]
        values = self.value_set() if op in ("in", "notin") else self.exact_value()
        return _checked(key, op, tuple(sorted(values)))

    def exact_value(self) -> set[str]:
        if self.peek()[0] in ("end", ","):
            return {""}
        kind, lit = self.take()
        if kind != "id":
            raise SelectorError(f"found '{lit}', expected: identifier")
        return {lit}

    def value_set(self) -> set[str]:
        kind, lit = self.take()
        if kind != "(":
            raise SelectorError(f"found '{lit}' expected: '('")
        kind, lit = self.peek()
        if kind == ")":
            self.take()
            return {""}
        if kind not in ("id", ","):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self.identifiers()
        if self.take()[0] != ")":
            raise SelectorError(f"found '{lit}', expected: ')'")  # sic: apimachinery reports the first literal
        return values

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, lit = self.take()
            if kind == "id":
                values.add(lit)
                nxt, nlit = self.peek()
                if nxt == ")":
                    return values
                if nxt != ",":
                    raise SelectorError(f"found '{nlit}', expected: ',' or ')'")
            elif kind == ",":
                if not values:
                    values.add("")  # "(,a)" holds the empty value
                nxt = self.peek()[0]
                if nxt == ")":
                    values.add("")
                    return values
                if nxt == ",":
                    self.take()
                    values.add("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")


def _checked(key: str, op: str, values: tuple[str, ...]) -> Requirement:
    errors: list[str] = []
    if op in ("gt", "lt"):
        errors += [f"values[{i}]: Invalid value: {_go_quote(v)}: for 'Gt', 'Lt' operators, the value must be an "
                   "integer" for i, v in enumerate(values) if not _GO_INT_RE.match(v)]
    for i, value in enumerate(values):
        if problems := _value_problems(value):
            errors.append(f"values[{i}][{key}]: Invalid value: {_go_quote(value)}: {'; '.join(problems)}")
    if errors:
        raise SelectorError(errors[0] if len(errors) == 1 else "[" + ", ".join(dict.fromkeys(errors)) + "]")
    return Requirement(key, op, values)


def parse(text: str) -> Callable[[dict[str, str]], bool]:
    """A predicate over a node's labels (all requirements must hold). Raises SelectorError."""
    parser = _Parser(text)
    requirements: list[Requirement] = []
    while True:
        kind, lit = parser.peek()
        if kind == "end":
            break
        if kind not in ("id", "!"):
            raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
        try:
            requirements.append(parser.requirement())
        except SelectorError as exc:
            raise SelectorError(f"unable to parse requirement: {exc}") from None
        kind, lit = parser.take()
        if kind == "end":
            break
        if kind != ",":
            raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
        if parser.peek()[0] not in ("id", "!"):
            raise SelectorError(f"found '{parser.peek()[1]}', expected: identifier after ','")
    return lambda labels: all(r.matches(labels) for r in requirements)
