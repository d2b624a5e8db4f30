"""Field rules shared by the job models and by per-run overrides (params / conf).

Schedules are checked with ``croniter`` (what Airflow's cron timetables use) so a job's
schedule fails here, with its file and line, rather than later in the DAG processor.
"""

from __future__ import annotations

import difflib
import functools
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from croniter import croniter  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from jinja2 import Environment

# Airflow's schedule presets (airflow.timetables / airflow.utils.dates).
SCHEDULE_PRESETS = (
    "@once", "@continuous", "@hourly", "@daily", "@weekly",
    "@monthly", "@quarterly", "@yearly", "@annually",
)  # fmt: skip

# Where jobs may read and write. Plain paths (relative to the job file) are file://.
URI_SCHEMES = ("file", "s3", "memory")
MAX_URI_LENGTH = 4096  # S3 keys stop at 1024 bytes; also bounds the checks' work
URI_PATTERN = (
    rf"^(?=.{{1,{MAX_URI_LENGTH}}}$)"
    r"(?!.*(^|/)\.\.(/|$))"  # no '..' segment
    r"(?!/*$)(?!file://(?!/))(?!file:///*$)(?!s3://(/|$))(?!memory:///*$)"  # a root, no bucket
    r"(?:(?:file|s3|memory)://(?!(?:[^/{}@:]|\{\{[^{}]*\}\})*[@:])|(?![^/]*:))"  # no user:pw@
    r"(?:[^\s{}]|\{\{[^{}]*\}\})+$"
)
"""The same rule as check_uri, as a JSON Schema pattern for Trigger-DAG params (all but
the Jinja syntax of templates)."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
# scheme://user:password@ or scheme://user@, up to the last '@' of the word: a password
# may hold '/' or '@', and redacting too much is better than too little.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)\S*@")
_NO_SECRETS = (
    "put credentials in an Airflow connection (storage.aws_conn_id) or a Kubernetes "
    "Secret (kubernetes.storage_secret), never in the URI"
)

# Airflow's template filters (airflow.sdk.definitions._internal.templater.FILTERS), added
# to jinja2's builtins in the sandboxed environment that renders the URIs.
AIRFLOW_FILTERS = ("ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz")

# Environment variable names (C identifiers), and Python callables as "module:function".
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ENV_NAME = re.compile(ENV_NAME_PATTERN)
CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

# Kubernetes resource.Quantity: a decimal number, then a binary/decimal SI suffix or an
# exponent (k8s.io/apimachinery/pkg/api/resource). Negative quantities make no sense here.
# Digits are bounded so that no quantity costs more than a moment to read.
_QUANTITY = re.compile(
    r"^(\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d{1,3})?$"
)
_QUANTITY_LIMIT = Decimal(2**63)  # 8Ei: Kubernetes keeps quantities in an int64
_SUFFIX: dict[str, int | Decimal] = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


# Bounds of integer fields: Airflow keeps counts and priorities in 32-bit database
# columns (and Kubernetes uids in int32); durations stay far inside what datetime
# arithmetic survives (a timedelta of 10**18 s overflows when Airflow adds it to a date).
INT32_MAX = 2**31 - 1
MAX_DURATION_SECONDS = 365 * 24 * 3600  # a year


class FieldError(ValueError):
    """A model-level rule broken by one field: the loader reports it at that field's line."""

    def __init__(self, field: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = (field,) if isinstance(field, str) else field


# A job's schedule as the YAML gives it: a cron expression or preset, or the assets whose
# updates start a run (Airflow's DAG(schedule=[Asset(...), ...]), AssetAny, AssetAll and
# AssetAlias): URIs, {any: [...]}, {all: [...]} (which nest) and {alias: name}.
AssetCondition = str | dict[str, Any]
ScheduleValue = str | list[AssetCondition] | dict[str, Any]
_ASSET_ENTRIES = (
    "any: [...] (AssetAny: any one of them), all: [...] (AssetAll: every one of them) or "
    "alias: name (AssetAlias, e.g. mapreduce:<dag_id>: every output of that job)"
)
MAX_ALIAS_LENGTH = 1500  # Airflow's limit on asset names


def check_schedule(value: object) -> ScheduleValue:
    """A 5-field cron expression or an Airflow preset; or assets: a list of entries (a run
    once every one has been updated, as Airflow's list of assets), or one entry. An entry
    is an asset URI, ``any:`` / ``all:`` of entries, or ``alias:`` a name. Raise ValueError
    otherwise (a FieldError naming the entry of an asset schedule)."""
    if isinstance(value, list):
        return _check_asset_list(value, ())
    if isinstance(value, dict):
        return _check_asset_operator(value, ())
    if not isinstance(value, str):
        raise ValueError(
            "expected a cron expression such as '0 3 * * *', a preset like @daily, or the "
            "assets a run waits for (a list of URIs, or any:/all:/alias:), found "
            f"{type(value).__name__} {repr(value)[:80]}"
        )
    text = value.strip()
    if len(text) > 256:  # no cron expression is; bounds croniter's and difflib's work
        raise ValueError(f"expected a cron expression such as '0 3 * * *', found {value[:80]!r}...")
    if "://" in text:
        raise ValueError(
            f"{value!r} is not a cron expression; to run when an asset is updated, give a "
            f"list: schedule: [{text}]"
        )
    if text.startswith("@"):
        if text not in SCHEDULE_PRESETS:
            raise ValueError(
                f"expected a cron expression or one of {', '.join(SCHEDULE_PRESETS)}, "
                f"found {value!r}"
            )
        return text
    fields = len(text.split())
    if fields in (6, 7):  # croniter reads them as seconds (and year): not Airflow's cron
        extra = "a 6th field" if fields == 6 else "a 6th and 7th field"
        raise ValueError(
            f"expected 5 cron fields 'minute hour day-of-month month day-of-week', found "
            f"{fields} in {value!r}: {extra} would be seconds{' and year' * (fields - 6)} "
            f"(a run every second), which Airflow's cron timetables do not take; remove "
            f"{'it' if fields == 6 else 'them'}, e.g. '0 3 * * *'"
        )
    if fields != 5 or not croniter.is_valid(text):
        preset = difflib.get_close_matches("@" + text.lower(), SCHEDULE_PRESETS, n=1, cutoff=0.8)
        if preset:
            raise ValueError(f"{value!r} is not a cron expression; did you mean {preset[0]!r}?")
        raise ValueError(
            f"expected a cron expression 'minute hour day-of-month month day-of-week' "
            f"such as '0 3 * * *' (every day at 03:00), or a preset like @daily; "
            f"found {value!r}"
        )
    return text


def _check_asset_list(entries: list[Any], path: tuple[str | int, ...]) -> list[AssetCondition]:
    if not entries:
        raise FieldError(
            path,
            "expected at least one asset URI, e.g. [s3://landing/events/]; for no schedule "
            "write schedule: null",
        )
    return [_check_asset_condition(entry, (*path, index)) for index, entry in enumerate(entries)]


def _check_asset_condition(entry: object, path: tuple[str | int, ...]) -> AssetCondition:
    if isinstance(entry, dict):
        return _check_asset_operator(entry, path)
    if not isinstance(entry, str):
        raise FieldError(
            path,
            f"expected an asset URI such as s3://landing/events/, or {_ASSET_ENTRIES}; found "
            f"{type(entry).__name__} {repr(entry)[:80]}",
        )
    try:
        uri = check_uri(entry, "asset URI")
    except ValueError as exc:
        raise FieldError(path, str(exc)) from None
    if "{{" in uri:  # no run yet to render it for
        raise FieldError(
            path,
            f"an asset URI cannot hold a template, found {redact_uri(uri)!r}: a schedule is "
            "read before any run, so there is no date to render; name a fixed folder or object",
        )
    if any(char in uri for char in "*?["):
        raise FieldError(
            path,
            f"an asset is one folder or object, not a glob: {redact_uri(uri)!r}; name the "
            "folder the upstream job writes, e.g. s3://landing/events/",
        )
    return uri


def _check_asset_operator(entry: dict[Any, Any], path: tuple[str | int, ...]) -> AssetCondition:
    keys = list(entry)
    if len(keys) != 1 or keys[0] not in ("any", "all", "alias"):
        found = ", ".join(repr(key) for key in keys[:5]) or "an empty mapping"
        raise FieldError(
            path,
            f"expected one key of {_ASSET_ENTRIES}, found {found}; a plain list of URIs "
            "waits for every one of them",
        )
    [key] = keys
    value = entry[key]
    if key == "alias":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_ALIAS_LENGTH:
            shown = repr(value) if isinstance(value, str) else type(value).__name__
            raise FieldError(
                (*path, key),
                f"expected an asset alias name of 1 to {MAX_ALIAS_LENGTH} characters, e.g. "
                f"mapreduce:wordcount, found {shown[:80]}",
            )
        return {key: value}
    if not isinstance(value, list):
        raise FieldError(
            (*path, key), f"expected a list of asset URIs, found {type(value).__name__}"
        )
    return {key: _check_asset_list(value, (*path, key))}


def redact_uri(text: str) -> str:
    """`text` with the user:password@ of every scheme://user:password@host replaced."""
    return _USERINFO.sub(r"\1***@", text)


def check_uri(value: str, field: str = "URI") -> str:
    """Scheme in the allow-list, no credentials, below a root, no '..' segment, no
    whitespace, valid Jinja templates. Messages never quote a credential."""
    shown = repr(redact_uri(value if len(value) <= 200 else f"{value[:200]}..."))
    if not value.strip():
        raise ValueError(f"expected a non-empty {field}, e.g. s3://bucket/prefix/ or data/in")
    if len(value) > MAX_URI_LENGTH:
        raise ValueError(f"expected at most {MAX_URI_LENGTH} characters, found {len(value)}")
    if value.count("{{") != value.count("}}"):
        raise ValueError(f"unbalanced Jinja braces in {shown}; write templates as {{{{ ds }}}}")
    plain = _TEMPLATE.sub("x", value)  # template bodies may hold spaces
    if "{" in plain or "}" in plain:
        raise ValueError(
            f"braces outside a {{{{ ... }}}} template in {shown}; write templates as "
            "{{ ds }} (no nested braces, no {% %} blocks)"
        )
    if match := _SCHEME.match(plain):
        scheme, rest = match.group(1), plain[match.end() :]
        # Not quoted: KEY:SECRET/more without an '@' would get past redact_uri.
        authority = rest.split("/", 1)[0]
        if "@" in authority:
            raise ValueError(
                f"this {field} holds credentials (user@ or user:password@); {_NO_SECRETS}"
            )
        if scheme not in URI_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r} in {shown}; "
                f"use {', '.join(s + '://' for s in URI_SCHEMES)} or a plain path"
            )
        if ":" in authority:  # no bucket or path has one; a KEY:SECRET whose secret has '/'
            raise ValueError(
                f"this {field} has a ':' before its first '/', where the bucket goes and "
                f"credentials would; {_NO_SECRETS}"
            )
        _check_below_root(scheme, rest, shown)
    elif ":" in plain.split("/", 1)[0]:
        raise ValueError(f"expected scheme://path or a plain path, found {shown}")
    elif not plain.strip("/"):
        raise ValueError(f"{shown} is the filesystem root; name a folder, e.g. /data/out")
    if ".." in plain.split("/"):
        raise ValueError(
            f"'..' is not allowed in {shown}: a job may not escape its folder or prefix; "
            "write the path without '..'"
        )
    if re.search(r"\s", plain):
        raise ValueError(f"whitespace in {shown}; URIs cannot contain spaces")
    if "{{" in value:
        _check_template(value, shown)
    return value


def _check_below_root(scheme: str, rest: str, shown: str) -> None:
    if scheme == "file" and not rest:
        raise ValueError(
            "file:// without a path would mean the current folder; write file:///abs/path, "
            "or a plain path (relative to the job file)"
        )
    if scheme == "file" and not rest.startswith("/"):  # file://x/y: x would be a host
        raise ValueError(
            f"{shown} is not an absolute file:// URI; write file:///abs/path, or a plain "
            "path (relative to the job file)"
        )
    if scheme == "s3" and not rest.split("/", 1)[0]:
        raise ValueError(f"{shown} names no bucket; write s3://bucket/prefix/")
    if not rest.strip("/"):
        raise ValueError(f"{shown} is the filesystem root; name a folder, e.g. file:///data/out")


@functools.cache
def _template_environment() -> Environment:
    # Imported here: only templated URIs need jinja2, and worker pods never see one.
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(extensions=["jinja2.ext.do"])  # as Airflow's
    env.filters.update(dict.fromkeys(AIRFLOW_FILTERS, str))
    return env


def _check_template(value: str, shown: str) -> None:
    """Compile the URI as Airflow will render it: syntax errors and unknown filters fail
    here, with the job file's line, instead of in a run."""
    from jinja2 import TemplateSyntaxError

    env = _template_environment()
    try:
        env.compile(value)
    except TemplateSyntaxError as exc:
        message = exc.message or "invalid syntax"
        if unknown := re.match(r"No filter named '([^']*)'", message):
            hint = difflib.get_close_matches(unknown.group(1), list(env.filters), n=1)
            fix = (
                f"did you mean {hint[0]!r}?"
                if hint
                else f"Airflow's filters are {', '.join(AIRFLOW_FILTERS)}, plus jinja2's "
                "(lower, replace, default...)"
            )
            raise ValueError(
                f"unknown Jinja filter {unknown.group(1)!r} in {shown}; {fix}"
            ) from None
        raise ValueError(
            f"not a valid Jinja template: {message} in {shown}; write e.g. "
            "{{ ds }} or {{ data_interval_start | ds_nodash }}"
        ) from None
    except RecursionError:
        raise ValueError(f"the template in {shown} is nested too deeply") from None


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
    if suffix in _SUFFIX:
        amount = Decimal(number) * Decimal(_SUFFIX[suffix])
    else:  # an exponent, e.g. e3
        amount = Decimal(number) * Decimal(10) ** int(suffix[1:])
    if amount >= _QUANTITY_LIMIT:
        raise ValueError(f"{value!r} is too large for Kubernetes; expected less than 8Ei")
    return amount


def check_quantity(value: object) -> str:
    parse_quantity(value)
    return str(value)
