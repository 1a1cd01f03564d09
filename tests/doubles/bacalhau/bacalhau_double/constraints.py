"""Job.Constraints: models.LabelSelectorRequirement {Key, Operator, Values} (pkg/models/selector.go, v1.9.3).

Two checks happen upstream at different times. At submission, LabelSelectorRequirement.Validate only counts
values (a 400). At scheduling, the labels ranker turns each requirement into k8s labels.NewRequirement, whose
operators are the lower-case selection.Operator spellings only: "in", "notin", "=", "==", "!=", "gt", "lt",
"exists", "!" (so Kubernetes' "In"/"Exists" fail there). A requirement failing that second check makes every
evaluation of the job error out: the real orchestrator accepts the job and leaves it Pending for good. The double
refuses such a job at submission instead, quoting apimachinery's error, so the mistake cannot go unnoticed.
"""

from __future__ import annotations

import json
from typing import Any

from bacalhau_double.selector import _GO_INT_RE, Requirement, _key_problems, _value_problems

OPERATORS = ("in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!")
FAVOUR_PREFIX = "favour_"


def constraint_problem(constraint: dict[str, Any]) -> str:
    """LabelSelectorRequirement.Validate; "" when valid."""
    errors = []
    if not (constraint.get("Key") or "").strip():
        errors.append("selector key cannot be blank")
    op, values = constraint.get("Operator") or "", constraint.get("Values") or []
    if op in ("in", "notin"):
        if not values:
            errors.append("selector values cannot be empty for In or NotIn operators")
    elif op in ("exists", "!"):
        if values:
            errors.append("selector values must be empty for Exists or KeyNotInImap operators")
    elif len(values) != 1:
        errors.append("selector values must have exactly one value for other operators")
    return "\n".join(errors)


def _invalid(field: str, value: Any, detail: str) -> str:
    shown = json.dumps(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"{field}: Invalid value: {shown}: {detail}"


def requirement_error(constraint: dict[str, Any]) -> str:
    """labels.NewRequirement's aggregated error (apimachinery v0.36.3); "" when the requirement is usable."""
    key, op, values = constraint.get("Key") or "", constraint.get("Operator") or "", constraint.get("Values") or []
    errors: list[str] = []
    if problems := _key_problems(key):
        errors.append(_invalid("key", key, "; ".join(problems)))
    if op in ("in", "notin") and not values:
        errors.append(_invalid("values", values, "for 'in', 'notin' operators, values set can't be empty"))
    elif op in ("=", "==", "!=") and len(values) != 1:
        errors.append(_invalid("values", values, "exact-match compatibility requires one single value"))
    elif op in ("exists", "!") and values:
        errors.append(_invalid("values", values, "values set must be empty for exists and does not exist"))
    elif op in ("gt", "lt"):
        if len(values) != 1:
            errors.append(_invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required"))
        errors += [_invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer")
                   for i, v in enumerate(values) if not _GO_INT_RE.match(v)]
    elif op not in OPERATORS:
        supported = ", ".join(json.dumps(o) for o in OPERATORS)
        errors.append(f"operator: Unsupported value: {json.dumps(op)}: supported values: {supported}")
    for index, value in enumerate(values):
        if problems := _value_problems(value):
            errors.append(_invalid(f"values[{index}][{key}]", value, "; ".join(problems)))
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else ("[" + ", ".join(unique) + "]" if unique else "")


def _requirement(constraint: dict[str, Any], key: str) -> Requirement:
    op = constraint["Operator"]
    return Requirement(key, "exists" if op == "exists" else op, tuple(constraint.get("Values") or ()))


def labels_rank(constraints: list[dict[str, Any]], labels: dict[str, str]) -> tuple[int, str]:
    """LabelsNodeRanker for one node: (rank, reason). "favour_" keys only add preference, never exclude."""
    must = [c for c in constraints if not c["Key"].startswith(FAVOUR_PREFIX)]
    favour = [c for c in constraints if c["Key"].startswith(FAVOUR_PREFIX)]
    rank, reason = 0, "selectors not set or unknown"
    if must:
        if all(_requirement(c, c["Key"]).matches(labels) for c in must):
            rank, reason = 10, "match for required selector"
        else:
            return -1, f"labels {go_map(labels)} don't match required selectors {go_requirements(constraints)}"
    if favour and all(_requirement(c, c["Key"][len(FAVOUR_PREFIX):]).matches(labels) for c in favour):
        rank, reason = rank + 10, "match for preferred selector"
    return rank, reason


def go_map(labels: dict[str, str]) -> str:
    """fmt's %s of a map[string]string: map[k1:v1 k2:v2], keys sorted."""
    return "map[" + " ".join(f"{k}:{labels[k]}" for k in sorted(labels)) + "]"


def go_requirements(constraints: list[dict[str, Any]]) -> str:
    """fmt's %s of []*LabelSelectorRequirement: each String() is "key op v1|v2"."""
    return "[" + " ".join(f"{c['Key']} {c['Operator']} {'|'.join(c.get('Values') or [])}" for c in constraints) + "]"
