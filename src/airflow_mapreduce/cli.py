"""``airflow-mapreduce``: validate job files and print the job JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.spec.loader import load_job_file
from airflow_mapreduce.spec.models import JobSpec

app = typer.Typer(help="MapReduce jobs on Kubernetes as Airflow DAGs.", no_args_is_help=True)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Job YAML files or folders of them.")],
) -> None:
    """Check job files; list every problem and exit non-zero if there is any."""
    from airflow_mapreduce.airflow.factory import job_files

    failed = 0
    checked = 0
    for path in paths:
        for file in job_files(path) if path.is_dir() else [path]:
            checked += 1
            try:
                job = load_job_file(file)
            except JobSpecError as exc:
                failed += 1
                typer.echo(str(exc), err=True)
            else:
                typer.echo(f"ok  {file}  (dag_id {job.dag_id})")
    typer.echo(f"{checked} file(s) checked, {failed} invalid")
    raise typer.Exit(1 if failed or not checked else 0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of job files (for editors' YAML language servers)."""
    typer.echo(json.dumps(JobSpec.model_json_schema(), indent=2))


def main() -> None:
    app()


# Janitor (reliability): intermediate data of old runs ---------------------------------
@app.command()
def janitor(
    work: Annotated[str, typer.Option(help="Work root: a job's `work`, or <output>/_temporary.")],
    older_than: Annotated[str, typer.Option(help="Age cut-off of a run's newest object: 7d, 12h.")],
    delete: Annotated[bool, typer.Option(help="Delete them (default: only list).")] = False,
) -> None:
    """List (and with --delete remove) intermediate data of runs older than --older-than.

    s3:// work roots use the environment's credentials (AWS_* variables, profile, IRSA).
    """
    from airflow_mapreduce.janitor import delete_runs, find_stale_runs, parse_duration
    from airflow_mapreduce.storage import FileSystems, resolve_uri

    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None
    files = FileSystems()
    runs = find_stale_runs(files, resolve_uri(work, Path.cwd()), age)
    for run in runs:
        typer.echo(f"{run.last_modified:%Y-%m-%dT%H:%M:%SZ}  {run.objects:6d} objects  "
                   f"{run.bytes:12d} bytes  {run.uri}")  # fmt: skip
    if delete:
        delete_runs(files, runs)
    verb = "deleted" if delete else "found (rerun with --delete to remove them)"
    typer.echo(f"{len(runs)} run(s) older than {older_than} {verb}")
