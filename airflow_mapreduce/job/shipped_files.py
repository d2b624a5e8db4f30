"""Shipped files (Hadoop's ``-files``, mrjob's FILES): local files or objects that every
task finds in its working folder, by name, before its commands start.

An entry is a path (relative to the job file's folder) or a file://, s3:// or memory://
URI, named in the working folder after its last path segment; or a mapping
``{source: ..., name: ...}`` to give it another name. The plan stages them into the run's
work area (plan/shipped_files.py) and the worker copies them into each task's working
folder (worker/shipped_files.py).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.job.validators import URI_PATTERN, FieldError, check_uri, redact_uri

MAX_SHIPPED_FILES = 100
MAX_SHIPPED_BYTES = 1 << 30  # 1 GiB in all: copied into every task attempt's folder
MAX_NAME_BYTES = 255  # a file name on Linux filesystems
_NAME = re.compile(r"^[^/\x00-\x1f\x7f]+$")


def _check_source(value: str) -> str:
    check_uri(value, "shipped file")
    shown = repr(redact_uri(value))
    if "{{" in value:
        raise ValueError(
            f"a shipped file cannot be a template, found {shown}: files are staged once per "
            "run from a fixed place; name the file itself"
        )
    if any(char in value for char in "*?["):
        raise ValueError(f"a shipped file is one file, not a glob: {shown}; list each file")
    if value.endswith("/"):
        raise ValueError(
            f"{shown} ends with '/', a folder; a shipped file is one file: list each file"
        )
    return value


Source = Annotated[
    str, AfterValidator(_check_source), Field(json_schema_extra={"pattern": URI_PATTERN})
]


def check_name(name: str) -> str | None:
    """Why `name` cannot be a file of the task's working folder, or None."""
    if name in ("", ".", ".."):
        return f"expected a file name, found {name!r}"
    if not _NAME.match(name):
        return (
            f"expected a plain file name (no '/', no control characters), found {name[:100]!r}; "
            "a shipped file lands in the task's working folder itself"
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"expected a file name of at most {MAX_NAME_BYTES} bytes, found {len(name.encode())}"
    return None


class ShippedFile(Model):
    """One shipped file: where it comes from and its name in the task's working folder."""

    source: Source = Field(
        description="A local path (relative to the job file's folder) or a file://, s3:// or "
        "memory:// URI of one file."
    )
    name: str | None = Field(
        default=None,
        description="Its file name in each task's working folder (default: the source's "
        "last path segment); no '/'.",
    )

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"source": data}
        if not isinstance(data, dict):
            raise ValueError(
                "expected a path or URI (lookup.tsv, s3://bucket/lookup.tsv), or a mapping "
                f"{{source: ..., name: ...}}, found {type(data).__name__} {repr(data)[:80]}"
            )
        return data

    @model_validator(mode="after")
    def _valid_name(self) -> ShippedFile:
        if self.name is not None:
            if problem := check_name(self.name):
                raise FieldError("name", problem)
        elif problem := check_name(self.target):
            raise FieldError(
                "source", f"{problem} (the source's last segment); give a name: {{name: ...}}"
            )
        return self

    @property
    def target(self) -> str:
        """The file's name in the task's working folder."""
        return self.name if self.name is not None else posixpath.basename(self.source)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        mapping = handler.resolve_ref_schema(handler(core_schema))
        path = {"type": "string", "pattern": URI_PATTERN, "description": "A path or URI."}
        return {"anyOf": [path, mapping]}


def check_shipped_files(files: list[ShippedFile]) -> list[ShippedFile]:
    """At most MAX_SHIPPED_FILES, each name once (a FieldError names the entry)."""
    if len(files) > MAX_SHIPPED_FILES:
        raise ValueError(
            f"expected at most {MAX_SHIPPED_FILES} shipped files, found {len(files)}: each is "
            "copied into every task's folder; ship fewer, larger files (one table, not many)"
        )
    seen: dict[str, int] = {}
    for index, entry in enumerate(files):
        if (first := seen.setdefault(entry.target, index)) != index:
            raise FieldError(
                (index, "name"),
                f"name {entry.target!r} is already used by files[{first}]; each shipped file "
                "needs its own name in the working folder: give one of them another name",
            )
    return files


def local_file_problems(files: list[ShippedFile]) -> list[tuple[tuple[str | int, ...], str]]:
    """(field path, message) of each local shipped file (file:// URI, as resolved by the
    loader) that is missing or not a readable file, and of local files above the size
    limit in all. Objects in object stores are checked by the plan."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    total = 0
    for index, entry in enumerate(files):
        if not entry.source.startswith("file://"):
            continue
        path = Path(entry.source.removeprefix("file://"))
        where = ("files", index, "source")
        if not path.exists():
            fix = "fix the path (relative paths are taken from the job file's folder)"
            problems.append((where, f"{path} does not exist; put {entry.target!r} there or {fix}"))
        elif not path.is_file():
            problems.append((where, f"{path} is not a file; a shipped file is one file"))
        elif not os.access(path, os.R_OK):
            problems.append((where, f"{path} is not readable; check its permissions"))
        else:
            total += path.stat().st_size
    if total > MAX_SHIPPED_BYTES:
        problems.append((("files",), too_large_message(total)))
    return problems


def too_large_message(total: int) -> str:
    return (
        f"shipped files hold {total / (1 << 20):.1f} MiB in all, above the limit of "
        f"{MAX_SHIPPED_BYTES >> 20} MiB: every task attempt copies them; read large data "
        "as the job's input instead"
    )
