"""Every job file of a folder, loaded independently: one bad file hides no other.

Shared by the DAG factory and ``airflow-mapreduce validate`` so both report the same
problems, including a dag_id used by two files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job.loader import DEFAULTS_FILE, load_job_file
from airflow_mapreduce.job.models import JobFile
from airflow_mapreduce.job.validators import redact_uri

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedJobs:
    jobs: dict[Path, JobFile] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def job_files(folder: Path) -> list[Path]:
    """Job YAML files under `folder`: no hidden or underscore-prefixed names, no defaults."""
    folder = folder.resolve()
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix in YAML_SUFFIXES
        and path.name != DEFAULTS_FILE
        and path.is_file()
        and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    )


def load_jobs(paths: list[Path]) -> LoadedJobs:
    """Load each file on its own; collect every problem, and dag_ids used twice."""
    loaded = LoadedJobs()
    origin: dict[str, Path] = {}
    for path in paths:
        try:
            job = load_job_file(path)
        except JobSpecError as exc:
            loaded.problems.append(str(exc))
            continue
        except Exception as exc:  # a bug of ours must not hide the other files either
            loaded.problems.append(
                redact_uri(
                    f"{path.resolve()}:1:1: could not be checked: {type(exc).__name__}: {exc} "
                    "(a bug of airflow-mapreduce: please report it with the file)"
                )
            )
            continue
        if job.dag_id in origin:
            where = f"{path.resolve()}:{_dag_id_line(path)}:1"
            loaded.problems.append(
                f"{where}: dag_id: {job.dag_id!r} is already used by {origin[job.dag_id]}; "
                "every job needs its own dag_id, rename one"
            )
            continue
        origin[job.dag_id] = path.resolve()
        loaded.jobs[path.resolve()] = job
    return loaded


def _dag_id_line(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next((n for n, line in enumerate(lines, 1) if line.startswith("dag_id:")), 1)
