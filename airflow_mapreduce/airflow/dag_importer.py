"""Each job YAML is a DAG file of its own to Airflow, so a broken one hides only itself.

Airflow 3.3 parses every DAG file through a registry of importers by file extension
(``airflow.dag_processing.importers``): DagBag, the DAG processor's parsing processes,
``dag.test()`` and the task runner all ask it. Adding an importer has no supported hook
yet (AIP-85), and the DAG processor's manager still lists only ``.py`` and zip files
(``airflow.utils.file.find_dag_file_paths``). `install` does both halves: it registers
`YamlDagImporter` for ``.yaml``/``.yml`` and makes that listing ask the registry. The
package's ``airflow.policy`` entry point (`dag_importer_plugin`) runs it in every Airflow
process, before any DAG file is listed or parsed.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.version_compat import (
    AbstractDagImporter,
    DagImportError,
    DagImportResult,
    dag_file_listing,
    get_importer_registry,
    route_dag_file_listing,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

log = logging.getLogger(__name__)


class YamlDagImporter(AbstractDagImporter):
    """One MapReduce job YAML: its DAG, or one import error naming file:line:col and field."""

    @classmethod
    def supported_extensions(cls) -> list[str]:
        from airflow_mapreduce.job.folder import YAML_SUFFIXES

        return list(YAML_SUFFIXES)

    def list_dag_files(
        self, directory: str | os.PathLike[str], safe_mode: bool = True
    ) -> Iterator[str]:
        """Job files by the rules of ``airflow-mapreduce validate`` (no ``defaults.yaml``,
        no ``_``/``.`` names), minus what ``.airflowignore`` excludes.

        Safe mode's heuristic (the words "airflow" and "dag" in the text) is not applied: a
        YAML it skipped would vanish without an error.
        """
        from airflow_mapreduce.job.folder import job_files

        jobs = set(job_files(Path(directory)))
        for path in super().list_dag_files(directory, safe_mode=False):
            if Path(path).resolve() in jobs:
                yield path

    def import_file(
        self,
        file_path: str | Path,
        *,
        bundle_path: Path | None = None,
        bundle_name: str | None = None,
        safe_mode: bool = True,
    ) -> DagImportResult:
        relative = self.get_relative_path(file_path, bundle_path)
        result = DagImportResult(file_path=relative)
        root = bundle_path if bundle_path is not None else Path(file_path).parent
        try:
            dag = self._build(Path(file_path), root)
        except JobSpecError as exc:
            result.errors.append(
                DagImportError(file_path=relative, message=str(exc), error_type="job_spec")
            )
        except Exception as exc:  # anything else is still this file's import error
            result.errors.append(
                DagImportError(
                    file_path=relative,
                    message=f"{type(exc).__name__}: {exc}",
                    stacktrace=traceback.format_exc(),
                )
            )
        else:
            dag.fileloc = str(file_path)  # the Code tab shows the YAML
            dag.relative_fileloc = relative
            result.dags.append(dag)
        return result

    def _build(self, path: Path, root: Path) -> DAG:
        from airflow_mapreduce.airflow.factory import build_dag
        from airflow_mapreduce.job.loader import load_job_file

        job = load_job_file(path)
        if problem := self._dag_id_claimed(path, job.dag_id, root):
            raise JobSpecError(str(path.resolve()), [problem])
        return build_dag(job, job_dir=str(path.resolve().parent))

    def _dag_id_claimed(self, path: Path, dag_id: str, root: Path) -> str | None:
        """The problem of a dag_id that a valid job file earlier in the bundle already uses:
        the earlier file keeps it, as ``airflow-mapreduce validate`` reports."""
        from airflow_mapreduce.job.folder import load_jobs

        this = path.resolve()
        # Files that cannot hold the dag_id are not validated: parsing a YAML costs
        # DAG processor time on every file of the bundle.
        earlier = sorted(
            other
            for other in (Path(p).resolve() for p in self.list_dag_files(root))
            if other < this and dag_id.encode() in _head(other)
        )
        if not earlier:
            return None
        loaded = load_jobs([*earlier, this])
        return None if this in loaded.jobs else loaded.problems[-1]


def _head(path: Path) -> bytes:
    """As much of a file as the loader would read (a bigger one is refused anyway)."""
    from airflow_mapreduce.job.safe_yaml import MAX_FILE_BYTES

    with path.open("rb") as f:
        return f.read(MAX_FILE_BYTES + 1)


def install() -> None:
    """Make this process's Airflow list and parse job YAMLs as DAG files (idempotent).

    Runs from the ``airflow.policy`` entry point; a deployment whose Airflow does not load
    installed entry points can call it from ``airflow_local_settings.py`` instead.
    """
    registry = get_importer_registry()
    if not isinstance(registry.get_importer("job.yaml"), YamlDagImporter):
        registry.register(YamlDagImporter())
    if dag_file_listing() is not _dag_file_paths and not route_dag_file_listing(_dag_file_paths):
        log.warning(
            "airflow.utils.file.find_dag_file_paths is gone from this Airflow version; "
            "the DAG processor may not list MapReduce job YAML files"
        )


def installed() -> bool:
    """Whether this process's Airflow lists and parses job YAMLs as DAG files."""
    return (
        isinstance(get_importer_registry().get_importer("job.yaml"), YamlDagImporter)
        and dag_file_listing() is _dag_file_paths
    )


def _dag_file_paths(directory: str | os.PathLike[str], safe_mode: bool) -> list[str]:
    """``airflow.utils.file.find_dag_file_paths`` through the importer registry: the
    Python importer's files (what Airflow 3.3 lists itself) and every other importer's."""
    return get_importer_registry().list_dag_files(directory, safe_mode=safe_mode)
