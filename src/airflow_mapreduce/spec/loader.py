"""Safe, line-aware YAML loading of job files into JobSpec.

Only ``yaml.SafeLoader`` is used: no tags that build objects, no environment expansion of
the raw text. Every problem is reported as ``file:line:col: field.path: message``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.spec.models import JobSpec
from airflow_mapreduce.storage import resolve_uri

Location = tuple[int, int]  # 1-based line, column
FieldPath = tuple[str | int, ...]


def load_job_file(path: str | Path) -> JobSpec:
    """Load and validate one job YAML; relative paths resolve in the file's folder."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobSpecError(str(path), [f"cannot read the file: {exc}"]) from exc
    spec = parse_job_text(text, source=str(path))
    return with_paths_resolved(spec, path.parent)


def parse_job_text(text: str, source: str = "<string>") -> JobSpec:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise JobSpecError(source, [_yaml_problem(source, exc)]) from exc
    if root is None:
        raise JobSpecError(source, [f"{source}:1:1: the file is empty; expected a job mapping"])
    locations: dict[FieldPath, Location] = {}
    problems = [f"{source}:{line}:{col}: {msg}" for (line, col), msg in _walk(root, (), locations)]
    if problems:
        raise JobSpecError(source, problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # e.g. tags that would construct objects
        raise JobSpecError(source, [_yaml_problem(source, exc)]) from exc
    if not isinstance(data, dict):
        raise JobSpecError(source, [f"{source}:1:1: expected a mapping of job fields at the top"])
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise JobSpecError(source, describe_validation_error(exc, source, locations)) from exc


def with_paths_resolved(spec: JobSpec, base_dir: Path) -> JobSpec:
    """Make plain paths absolute file:// URIs relative to the job file's folder."""
    update: dict[str, Any] = {
        "input": spec.input.model_copy(update={"uri": resolve_uri(spec.input.uri, base_dir)}),
        "output": resolve_uri(spec.output, base_dir),
    }
    if spec.work is not None:
        update["work"] = resolve_uri(spec.work, base_dir)
    return spec.model_copy(update=update)


def describe_validation_error(
    exc: ValidationError, source: str, locations: dict[FieldPath, Location]
) -> list[str]:
    problems = []
    for error in exc.errors():
        loc: FieldPath = tuple(error["loc"])
        line, col = _nearest_location(loc, locations)
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = _unknown_key_message(loc, exc.title)
        elif error["type"] == "missing":
            message = "required field is missing; add it"
        elif "input" in error and error["type"] not in ("model_type",):
            message = f"{message} (found {error['input']!r})"
        problems.append(f"{source}:{line}:{col}: {dotted}: {message}")
    return problems


def _unknown_key_message(loc: FieldPath, _title: str) -> str:
    key = str(loc[-1])
    model: type[BaseModel] | None = _model_at(loc[:-1])
    allowed = sorted(model.model_fields) if model is not None else []
    hint = difflib.get_close_matches(key, allowed, n=1)
    fix = f"did you mean {hint[0]!r}?" if hint else f"allowed keys: {', '.join(allowed)}"
    return f"unknown key {key!r}; {fix}"


def _model_at(path: FieldPath) -> type[BaseModel] | None:
    model: type[BaseModel] = JobSpec
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


def _nearest_location(loc: FieldPath, locations: dict[FieldPath, Location]) -> Location:
    for end in range(len(loc), -1, -1):
        if loc[:end] in locations:
            return locations[loc[:end]]
    return (1, 1)


def _walk(
    node: yaml.Node, path: FieldPath, locations: dict[FieldPath, Location]
) -> Iterator[tuple[Location, str]]:
    """Record where each field is and report duplicate keys (SafeLoader keeps the last)."""
    locations[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, Location] = {}
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
            yield from _walk(value_node, (*path, key), locations)
            locations[(*path, key)] = here
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index), locations)


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}: not valid YAML: {problem}; check indentation and quoting"
