"""Whether a job's Python steps can be imported where its workers will run them.

Checked without importing anything: validating a job never runs its code, not even a
package's ``__init__``. Finders are asked the way ``import`` would ask them, with the
job's folder first (the local backends put it first on the workers' PYTHONPATH).
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mapreduce.job.models import JobSpec

FieldPath = tuple[str | int, ...]


def missing_modules(job: JobSpec, job_dir: Path) -> list[tuple[FieldPath, str]]:
    """The fields naming a 'module:function' whose module cannot be found, with why."""
    if job.uses_pods:  # pods import from their image, which cannot be looked into here
        return []
    owners: list[tuple[FieldPath, Any]] = [((), job)]
    owners += [(("steps", index), step) for index, step in enumerate(job.steps or [])]
    owners += [(("inputs", index), entry) for index, entry in enumerate(job.inputs or [])]
    references: list[tuple[FieldPath, str]] = [
        ((*where, role, step.kind), step.python)
        for where, owner in owners
        for role in ("mapper", "combiner", "reducer")
        if (step := getattr(owner, role, None)) is not None and step.python is not None
    ]
    references += [
        (("lifecycle", name), reference)
        for name, reference in (
            ("setup", job.lifecycle.setup),
            ("teardown", job.lifecycle.teardown),
        )
        if reference is not None
    ]
    missing = []
    for field, reference in references:
        module = reference.partition(":")[0]
        if not module_exists(module, job_dir):
            missing.append(
                (
                    field,
                    f"cannot find module {module!r} of {reference!r} in the job's folder "
                    f"{job_dir} or on the Python path; put {module.replace('.', '/')}.py "
                    "next to the job file, install it, or fix the name",
                )
            )
    return missing


def module_exists(name: str, job_dir: Path) -> bool:
    """Whether `import name` would find a module, trying `job_dir` first."""
    if name in sys.modules:
        return True
    parts = name.split(".")
    spec = PathFinder.find_spec(parts[0], [str(job_dir)]) or _find(parts[0], None)
    for depth in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:  # not a package
            return False
        spec = _find(".".join(parts[: depth + 1]), list(spec.submodule_search_locations))
    return spec is not None


def _find(name: str, path: list[str] | None) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None and (spec := find_spec(name, path)) is not None:
            return spec  # type: ignore[no-any-return]
    return None
