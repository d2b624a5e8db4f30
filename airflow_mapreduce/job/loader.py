"""Safe, line-aware YAML loading of job files into JobFile (DAG settings and the job).

Only ``yaml.SafeLoader`` is used (bounded: spec/safe_yaml.py): no tags that build objects,
no environment expansion of the raw text. Every problem is reported as
``file:line:col: field.path: message``, and any file content at all ends in a JobFile or
a JobSpecError: never a hang, a crash or another exception.

A ``defaults.yaml`` next to job files is deep-merged under each of them (the job wins);
a problem caused by a default value points into ``defaults.yaml``.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job.base import deep_merge
from airflow_mapreduce.job.imports import missing_modules
from airflow_mapreduce.job.models import (
    DAG_ID_PATTERN,
    IMAGE_PATTERN,
    INPUT_NAME_PATTERN,
    K8S_NAME_PATTERN,
    JobFile,
    JobSpec,
)
from airflow_mapreduce.job.safe_yaml import MAX_FILE_BYTES, BoundedLoader, YamlProblem
from airflow_mapreduce.job.shipped_files import local_file_problems
from airflow_mapreduce.job.validators import ENV_NAME_PATTERN, FieldError, redact_uri
from airflow_mapreduce.storage import overlap_problem, resolve_uri

DEFAULTS_FILE = "defaults.yaml"
AnyJob = TypeVar("AnyJob", bound=JobSpec)

Location = tuple[str, int, int]  # file, 1-based line, column
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class _Document:
    """A parsed YAML mapping and where each of its fields is written."""

    data: dict[str, Any]
    locations: dict[FieldPath, Location]


def load_job_file(path: str | Path) -> JobFile:
    """Load and validate one job YAML (over its folder's defaults.yaml, if any).

    Relative paths resolve in the file's folder.
    """
    path = Path(path).resolve()
    with _no_recursion_error(str(path)):
        job = _read_document(path)
        defaults_path = path.parent / DEFAULTS_FILE
        if defaults_path.is_file() and defaults_path != path:
            defaults = _read_document(defaults_path)
            job = _Document(
                data=deep_merge(defaults.data, job.data),
                locations={**defaults.locations, **job.locations},
            )
        spec = _validate(job, str(path))
        # Fields the files spell out only: a combiner copied from the reducer's reduce_by
        # is reported there.
        missing = [(f, m) for f, m in missing_modules(spec, path.parent) if f in job.locations]
        if missing:
            raise JobSpecError(
                str(path),
                [
                    "{}:{}:{}: {}: {}".format(*job.locations[field], _dotted(field), message)
                    for field, message in missing
                ],
            )
        resolved = with_paths_resolved(spec, path.parent)
        if shipped := local_file_problems(resolved.files):
            raise JobSpecError(
                str(path),
                [
                    "{}:{}:{}: {}: {}".format(
                        *_nearest_location(field, job.locations, str(path)), _dotted(field), message
                    )
                    for field, message in shipped
                ],
            )
        if problem := _overlap(resolved):
            line, col = job.locations.get(("output",), (str(path), 1, 1))[1:]
            raise JobSpecError(str(path), [f"{path}:{line}:{col}: output: {problem}"])
        return resolved


def _overlap(spec: JobSpec) -> str | None:
    """Output or work overlapping the input (storage.overlap_problem); a templated URI is
    checked once rendered, by the plan."""
    inputs = [entry.uri for entry in spec.all_inputs]
    if any("{{" in uri for uri in (*inputs, spec.output, spec.work or "")):
        return None
    return next((p for uri in inputs if (p := overlap_problem(uri, spec.output, spec.work))), None)


def parse_job_text(text: str, source: str = "<string>") -> JobFile:
    with _no_recursion_error(source):
        return _validate(_parse_document(text, source), source)


@contextlib.contextmanager
def _no_recursion_error(source: str) -> Iterator[None]:
    # The bounds of safe_yaml keep documents shallow; this is the net under every walk
    # (composing, merging, pydantic, templates) so that no file aborts the others' checks.
    try:
        yield
    except RecursionError:
        raise JobSpecError(
            source,
            [f"{source}:1:1: the file is nested too deeply to check; flatten its values"],
        ) from None


def _read_document(path: Path) -> _Document:
    try:
        with path.open("rb") as file:  # no more than the limit, whatever the file is
            raw = file.read(MAX_FILE_BYTES + 1)
        _check_size(len(raw), str(path))
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(
            str(path), [f"{path}:1:1: cannot read the file ({exc}); save it as UTF-8 text"]
        ) from exc
    return _parse_document(text, str(path))


def _check_size(size: int, source: str) -> None:
    if size > MAX_FILE_BYTES:
        raise JobSpecError(
            source,
            [
                f"{source}:1:1: the file is larger than {MAX_FILE_BYTES // 1024} KiB; a job "
                "file is a few KiB of settings: keep data and code in files of their own"
            ],
        )


def _parse_document(text: str, source: str) -> _Document:
    _check_size(len(text.encode("utf-8", errors="replace")), source)
    try:
        loader = BoundedLoader(text)  # refuses control characters right away
    except yaml.YAMLError as exc:
        raise JobSpecError(source, [_yaml_problem(source, exc, text)]) from exc
    try:
        root = loader.get_single_node()
        if root is None:
            raise JobSpecError(
                source, [f"{source}:1:1: the file is empty; expected a mapping of job fields"]
            )
        locations: dict[FieldPath, Location] = {}
        problems = [
            f"{source}:{line}:{col}: {msg}"
            for (line, col), msg in _walk(root, (), source, locations)
        ]
        if problems:
            raise JobSpecError(source, problems)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:  # syntax, bounds, tags that would construct objects
        raise JobSpecError(source, [_yaml_problem(source, exc, text)]) from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        found = type(data).__name__
        raise JobSpecError(
            source,
            [f"{source}:1:1: expected a mapping of job fields (key: value lines), found a {found}"],
        )
    return _Document(data=data, locations=locations)


def _validate(document: _Document, source: str) -> JobFile:
    try:
        return JobFile.model_validate(document.data)
    except ValidationError as exc:
        raise JobSpecError(
            source, describe_validation_error(exc, source, document.locations)
        ) from exc


def with_paths_resolved(spec: AnyJob, base_dir: Path) -> AnyJob:
    """Make plain paths absolute file:// URIs relative to the job file's folder.

    A URI that is a template as a whole ('{{ params.input }}') is resolved once rendered,
    by the plan, against the same folder.
    """

    def resolved(uri: str) -> str:
        return uri if uri.lstrip().startswith("{{") else resolve_uri(uri, base_dir)

    inputs = [entry.model_copy(update={"uri": resolved(entry.uri)}) for entry in spec.all_inputs]
    update: dict[str, Any] = {
        "input" if spec.input is not None else "inputs": (
            inputs[0] if spec.input is not None else inputs
        ),
        "output": resolved(spec.output),
    }
    if spec.work is not None:
        update["work"] = resolved(spec.work)
    if spec.files:
        update["files"] = [f.model_copy(update={"source": resolved(f.source)}) for f in spec.files]
    template = spec.kubernetes.pod_template_file
    if template is not None and not Path(template).is_absolute():
        update["kubernetes"] = spec.kubernetes.model_copy(
            update={"pod_template_file": str(base_dir / template)}
        )
    return spec.model_copy(update=update)


def describe_validation_error(
    exc: ValidationError, source: str, locations: dict[FieldPath, Location]
) -> list[str]:
    found: list[tuple[Location, str]] = []
    for error in exc.errors():
        loc = _field_path(tuple(error["loc"]))
        if error["type"] == "extra_forbidden":  # the key as written, even if it holds '['
            loc = (*_field_path(tuple(error["loc"])[:-1]), error["loc"][-1])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError):  # a model rule about one of its fields
            loc = (*loc, *cause.field)
        file, line, col = _nearest_location(loc, locations, source)
        # Quoted values may be URIs with credentials: never repeat them.
        problem = redact_uri(f"{file}:{line}:{col}: {_dotted(loc)}: {_message(error, loc)}")
        if all(problem != p for _, p in found):  # a union reports each member's failure alike
            found.append(((file, line, col), problem))
    # In reading order: defaults.yaml's problems first, then the job file's.
    found.sort(key=lambda item: (item[0][0] == source, item[0][1], item[0][2]))
    return [problem for _, problem in found]


# Words for pydantic's error types: what was expected, and how to fix it.
_EXPECTED = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string (quote it)",
    "list_type": "a list, e.g. [a, b] or one '- item' per line",
    "dict_type": "a mapping of key: value lines",
    "model_type": "a mapping of key: value lines",
    "model_attributes_type": "a mapping of key: value lines",
    "date_from_datetime_parsing": "a date like 2024-01-31 or a datetime like 2024-01-31T03:00:00Z",
    "datetime_from_date_parsing": "a date like 2024-01-31 or a datetime like 2024-01-31T03:00:00Z",
    "time_delta_parsing": "a duration: seconds (3600), 'HH:MM:SS' or ISO 8601 (PT1H)",
}
_PATTERNS = {
    DAG_ID_PATTERN: "letters, digits, '_', '.' and '-' only (no spaces)",
    K8S_NAME_PATTERN: "a Kubernetes name: lowercase letters, digits, '-' and '.'",
    IMAGE_PATTERN: "a container image like registry.example/jobs:1.4 (no spaces)",
    INPUT_NAME_PATTERN: "a name of letters, digits and '_', starting with a letter, at most "
    "63 characters (e.g. events)",
    ENV_NAME_PATTERN: "an environment variable name: letters, digits and '_', not starting "
    "with a digit",
}


def _message(error: Any, loc: FieldPath) -> str:
    kind = error["type"]
    found = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind == "missing":
        return f"required field is missing; add '{loc[-1]}:' here" if loc else "missing"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        choices = [
            c.strip().strip("'") for c in str(ctx["expected"]).replace(" or ", ", ").split(",")
        ]
        hint = difflib.get_close_matches(str(found), choices, n=1)
        fix = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"expected one of {', '.join(map(repr, choices))}, found {_describe(found)}{fix}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}[kind]  # fmt: skip
        bound = next(iter(ctx.values()))
        return f"expected a number {op} {bound}, found {_describe(found)}"
    if kind == "string_pattern_mismatch":
        rule = _PATTERNS.get(ctx["pattern"], f"a value matching {ctx['pattern']}")
        return f"expected {rule}, found {_describe(found)}"
    if kind in ("string_too_long", "too_long"):
        return f"expected at most {ctx.get('max_length')} characters/items, found {len(found)}"
    if kind == "model_type" and loc and (model := _model_at(loc)) is not None:
        required = [name for name, f in model.model_fields.items() if f.is_required()]
        example = ", ".join(f"{name}: ..." for name in (required or list(model.model_fields)[:1]))
        return (
            f"expected a mapping of key: value lines, found {_describe(found)}; "
            f"write e.g. {loc[-1]}: {{{example}}}"
        )
    if kind in ("int_type", "float_type") and (number := _number_message(kind, found)):
        return number
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, found {_describe(found)}"
    message = str(error["msg"]).replace("Input should be", "expected")
    return f"{message}, found {_describe(found)}"


def _number_message(kind: str, found: Any) -> str | None:
    """Why a YAML value that looks like a number is not one (fields take no conversions:
    yes is not 1, "3" is not 3, 2.0 is not 2)."""
    expected = "an integer" if kind == "int_type" else "a number"
    if isinstance(found, bool):
        return (
            f"expected {expected}, found the boolean {str(found).lower()} (YAML reads "
            "yes/no/on/off/true/false as booleans); write a number"
        )
    if isinstance(found, str):
        try:
            float(found)
        except ValueError:
            return None
        return f"expected {expected}, found the text {_describe(found)}; remove the quotes"
    if isinstance(found, float) and kind == "int_type":
        fix = f"; write {int(found)}" if found.is_integer() else ""
        return f"expected a whole number, found {found!r}{fix}"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} characters)"


def _dotted(path: FieldPath) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _field_path(loc: tuple[Any, ...]) -> FieldPath:
    """pydantic's location without union-member and key/value tags ('date', '[key]')."""
    tags = {"str", "int", "float", "bool", "date", "datetime", "[key]"}
    return tuple(p for p in loc if not (isinstance(p, str) and (p in tags or "[" in p)))


def _unknown_key_message(loc: FieldPath) -> str:
    key = str(loc[-1])
    model: type[BaseModel] | None = _model_at(loc[:-1])
    allowed = sorted(model.model_fields) if model is not None else []
    hint = difflib.get_close_matches(key, allowed, n=1)
    fix = f"did you mean {hint[0]!r}?" if hint else f"allowed keys: {', '.join(allowed)}"
    return f"unknown key {key!r}; {fix}"


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    model: type[BaseModel] = JobFile
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        nested = _model_in_annotation(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _model_in_annotation(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if (found := _model_in_annotation(arg)) is not None:
            return found
    return None


def _nearest_location(
    loc: FieldPath, locations: dict[FieldPath, Location], source: str
) -> Location:
    for end in range(len(loc), -1, -1):
        if loc[:end] in locations:
            return locations[loc[:end]]
    return (source, 1, 1)


def _walk(
    node: yaml.Node, path: FieldPath, source: str, locations: dict[FieldPath, Location]
) -> Iterator[tuple[tuple[int, int], str]]:
    """Record where each field is and report duplicate keys (SafeLoader keeps the last)."""
    locations[path] = (source, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            here = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                dotted = ".".join(str(p) for p in (*path, key))
                yield (
                    here,
                    (f"{dotted}: duplicate key (first at line {seen[key][0]}); keep only one"),
                )
            seen[key] = here
            yield from _walk(value_node, (*path, key), source, locations)
            locations[(*path, key)] = (source, *here)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index), source, locations)


def _yaml_problem(source: str, exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f"{source}:{mark.line + 1}:{mark.column + 1}"
    else:  # a ReaderError (a control character) knows its offset only
        offset = getattr(exc, "position", 0)
        line, column = text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)
        where = f"{source}:{line}:{column}"
    if isinstance(exc, YamlProblem):
        return f"{where}: {exc.problem}"
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"{where}: not valid YAML: character #x{exc.character:04x} is not allowed "
            "(a control character); remove it"
        )
    problem = getattr(exc, "problem", None) or str(exc)
    if "could not determine a constructor" in problem:
        tag = problem.rsplit("tag:yaml.org,2002:", 1)[-1].rstrip("'")
        return (
            f"{where}: not valid YAML: the tag !!{tag} is not allowed; job files are plain "
            "data (safe YAML): write the value itself"
        )
    return f"{where}: not valid YAML: {problem}; check indentation and quoting"
