"""``airflow-mapreduce``: validate job files, print the JSON Schema, render a job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.spec.folder import job_files, load_jobs
from airflow_mapreduce.spec.loader import load_job_file
from airflow_mapreduce.spec.schema import job_json_schema_text

app = typer.Typer(help="MapReduce jobs on Kubernetes as Airflow DAGs.", no_args_is_help=True)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Job YAML files or folders of them.")],
) -> None:
    """Check job files; list every problem and exit non-zero if there is any."""
    files: list[Path] = []
    missing = []
    for path in paths:
        if path.is_dir():
            files += job_files(path)
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{path}: no such file or folder")
    loaded = load_jobs(files)
    for file, job in loaded.jobs.items():
        typer.echo(f"ok  {file}  (dag_id {job.dag_id})")
    for problem in [*missing, *loaded.problems]:
        typer.echo(problem, err=True)
    invalid = len(files) - len(loaded.jobs)
    typer.echo(f"{len(files)} file(s) checked, {invalid} invalid")
    raise typer.Exit(1 if invalid or missing or not files else 0)


@app.command()
def schema() -> None:
    """Print the JSON Schema of job files (for editors' YAML language servers)."""
    typer.echo(job_json_schema_text(), nl=False)


@app.command()
def render(
    file: Annotated[Path, typer.Argument(help="One job YAML file.")],
    run_id: Annotated[str, typer.Option(help="Run id shown in paths and pod names.")] = (
        "manual__render"
    ),
) -> None:
    """Print the effective spec (defaults.yaml merged), the task graph and the exact pods."""
    try:
        job = load_job_file(file)
    except JobSpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    from airflow_mapreduce.airflow.factory import build_dag
    from airflow_mapreduce.airflow.pods import render_worker_pods

    dag = build_dag(job, job_dir=str(file.resolve().parent))
    document: dict[str, Any] = {
        "spec": job.model_dump(mode="json"),
        "tasks": [
            {
                "task_id": task.task_id,
                "operator": task.operator_name,
                "mapped": type(task).__name__ == "MappedOperator",
                "downstream": sorted(task.downstream_task_ids),
            }
            for task in dag.topological_sort()  # type: ignore[no-untyped-call]
        ],
        "params": {name: dag.params[name] for name in dag.params},
        "pods": render_worker_pods(dag, run_id=run_id) if job.backend == "kubernetes" else {},
    }
    typer.echo(yaml.safe_dump(document, sort_keys=False, width=100))


def main() -> None:
    app()
