"""Field rules shared by the job models and by per-run overrides (params / conf).

Schedules are checked with ``croniter`` (what Airflow's cron timetables use) so a job's
schedule fails here, with its file and line, rather than later in the DAG processor.
"""

from __future__ import annotations

import difflib
import re
from decimal import Decimal, InvalidOperation

from croniter import croniter  # type: ignore[import-untyped]

# Airflow's schedule presets (airflow.timetables / airflow.utils.dates).
SCHEDULE_PRESETS = (
    "@once", "@continuous", "@hourly", "@daily", "@weekly",
    "@monthly", "@quarterly", "@yearly", "@annually",
)  # fmt: skip

# Where jobs may read and write. Plain paths (relative to the job file) are file://.
URI_SCHEMES = ("file", "s3", "memory")
URI_PATTERN = (
    r"^(?!.*(^|/)\.\.(/|$))(?:(?:file|s3|memory)://|(?![^/]*:))(?:[^\s{}]|\{\{[^{}]*\}\})+$"
)
"""The same rule as check_uri, as a JSON Schema pattern for Trigger-DAG params."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

# Environment variable names (C identifiers), and Python callables as "module:function".
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME = re.compile(ENV_NAME_PATTERN)
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

# Kubernetes resource.Quantity: a decimal number, then a binary/decimal SI suffix or an
# exponent (k8s.io/apimachinery/pkg/api/resource). Negative quantities make no sense here.
_QUANTITY = re.compile(
    r"^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_SUFFIX: dict[str, int | Decimal] = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


class FieldError(ValueError):
    """A model-level rule broken by one field: the loader reports it at that field's line."""

    def __init__(self, field: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = (field,) if isinstance(field, str) else field


def check_schedule(value: str) -> str:
    """A cron expression (5 or 6 fields) or an Airflow preset; raise ValueError otherwise."""
    text = value.strip()
    if text.startswith("@"):
        if text not in SCHEDULE_PRESETS:
            raise ValueError(
                f"expected a cron expression or one of {', '.join(SCHEDULE_PRESETS)}, "
                f"found {value!r}"
            )
        return text
    if not croniter.is_valid(text):
        preset = difflib.get_close_matches("@" + text.lower(), SCHEDULE_PRESETS, n=1, cutoff=0.8)
        if preset:
            raise ValueError(f"{value!r} is not a cron expression; did you mean {preset[0]!r}?")
        raise ValueError(
            f"expected a cron expression 'minute hour day-of-month month day-of-week' "
            f"such as '0 3 * * *' (every day at 03:00), or a preset like @daily; "
            f"found {value!r}"
        )
    return text


def check_uri(value: str, field: str = "URI") -> str:
    """Scheme in the allow-list, no '..' segment, no whitespace, balanced Jinja braces."""
    if not value.strip():
        raise ValueError(f"expected a non-empty {field}, e.g. s3://bucket/prefix/ or data/in")
    if value.count("{{") != value.count("}}"):
        raise ValueError(f"unbalanced Jinja braces in {value!r}; write templates as {{{{ ds }}}}")
    plain = re.sub(r"\{\{.*?\}\}", "x", value)  # template bodies may hold spaces
    if match := _SCHEME.match(plain):
        if match.group(1) not in URI_SCHEMES:
            raise ValueError(
                f"unsupported scheme {match.group(1)!r} in {value!r}; "
                f"use {', '.join(s + '://' for s in URI_SCHEMES)} or a plain path"
            )
    elif ":" in plain.split("/", 1)[0]:
        raise ValueError(f"expected scheme://path or a plain path, found {value!r}")
    if ".." in plain.split("/"):
        raise ValueError(
            f"'..' is not allowed in {value!r}: a job may not escape its folder or prefix; "
            "write the path without '..'"
        )
    if re.search(r"\s", plain):
        raise ValueError(f"whitespace in {value!r}; URIs cannot contain spaces")
    return value


def parse_quantity(value: object) -> Decimal:
    """The amount of a Kubernetes quantity such as 500m, 1.5Gi, 2, 1e3."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a Kubernetes quantity like 500m or 1Gi, found {value!r}")
    text = str(value)
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(
            f"expected a Kubernetes quantity like 500m, 2, 1.5Gi or 512Mi, found {value!r} "
            "(suffixes: m, k, M, G, T, Ki, Mi, Gi, Ti; binary suffixes are case-sensitive)"
        )
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * Decimal(_SUFFIX[suffix])
    except InvalidOperation:
        raise ValueError(f"expected a Kubernetes quantity, found {value!r}") from None


def check_quantity(value: object) -> str:
    parse_quantity(value)
    return str(value)
