"""``airflow-mapreduce``: validate, render or run a job file; print the JSON Schema; janitor."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from airflow_mapreduce.cli_progress import PLAIN_INTERVAL_SECONDS, ProgressMode
from airflow_mapreduce.errors import JobSpecError, MapReduceError
from airflow_mapreduce.job.folder import job_files, load_jobs
from airflow_mapreduce.job.loader import DEFAULTS_FILE, load_job_file
from airflow_mapreduce.job.models import JobFile
from airflow_mapreduce.job.schema import job_json_schema_text

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
        elif path.name == DEFAULTS_FILE:  # checked as part of each job of its folder
            files += job_files(path.parent)
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{path}: no such file or folder")
    loaded = load_jobs(list(dict.fromkeys(files)))
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
) -> None:
    """Print the effective spec (defaults.yaml merged), the task graph and the exact pods."""
    try:
        job = load_job_file(file)
    except JobSpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    # Airflow logs to stdout; keep stdout for the YAML document alone.
    with contextlib.redirect_stdout(sys.stderr):
        document = _rendered(job, file)
    typer.echo(yaml.safe_dump(document, sort_keys=False, width=100))


def _rendered(job: JobFile, file: Path) -> dict[str, Any]:
    from airflow_mapreduce.airflow.backends import backend_for
    from airflow_mapreduce.airflow.backends.kubernetes import KubernetesBackend
    from airflow_mapreduce.airflow.factory import build_dag
    from airflow_mapreduce.airflow.pods import render_worker_pods
    from airflow_mapreduce.job.models import JobStep

    dag = build_dag(job, job_dir=str(file.resolve().parent))
    spec = job.model_dump(mode="json")
    if job.steps is not None:  # each step as it runs: the job's settings merged with its own
        for name in ("mapper", "combiner", "reducer", "reducers"):
            spec.pop(name)
        step_fields = set(JobStep.model_fields)
        spec["steps"] = [
            step.model_dump(mode="json", include=step_fields) for step in job.pipeline()
        ]
    return {
        "spec": spec,
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
        "pods": render_worker_pods(dag) if isinstance(backend_for(job), KubernetesBackend) else {},
    }


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="One job YAML file.")],
    input_uri: Annotated[
        str | None, typer.Option("--input", help="Input URI or path (default: the job's).")
    ] = None,
    output_uri: Annotated[
        str | None, typer.Option("--output", help="Output URI or path (default: the job's).")
    ] = None,
    work_uri: Annotated[
        str | None,
        typer.Option(
            "--work", help="Intermediate data root (default: the job's, else <output>/_temporary)."
        ),
    ] = None,
    reducers: Annotated[int | None, typer.Option(help="Default: the job's.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Tasks running at once.")] = (
        os.cpu_count() or 2
    ),
    run_id: Annotated[str | None, typer.Option(help="Default: local__<UTC time>.")] = None,
    progress: Annotated[
        ProgressMode,
        typer.Option(
            help="Progress on stderr: bar (live, a terminal's), plain (a line now and then), "
            "none; auto: bar if stderr is a terminal, else plain.",
            case_sensitive=False,
        ),
    ] = ProgressMode.AUTO,
    progress_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between plain progress lines.")
    ] = PLAIN_INTERVAL_SECONDS,
) -> None:
    """Run a job here without Airflow: plan, map, shuffle, reduce and commit, each task a
    worker subprocess (whatever the job's backend). s3:// uses the environment's credentials;
    a templated `work` URI gives way to the default work area under the output unless
    --work is given. A failed run keeps its work area for a look. Workers' output goes to
    stderr as `map[3]: ...`, their summary lines to stdout. A task running longer than the
    job's task_timeout_seconds fails the run (no retries here, unlike Airflow); SIGINT or
    SIGTERM stops every worker and exits 130 or 143.

    Progress per phase (tasks done and running, records in and out, elapsed, ETA) goes to
    stderr. --progress is a choice, not an on/off flag, because "on" means two things: the
    live bars need a terminal and would fill a CI log with redraws, plain lines suit logs and
    pipes; auto picks by stderr, and bar or plain override a wrong guess (a terminal behind
    a pipe, or a terminal recorded to a file)."""
    from airflow_mapreduce.cli_progress import run_display
    from airflow_mapreduce.local_run import RunStopped, run_locally
    from airflow_mapreduce.plan.commit import commit_summary
    from airflow_mapreduce.plan.planner import RunTarget

    try:
        job = load_job_file(file)
    except JobSpecError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    job_work = job.work if job.work and "{{" not in job.work else None
    work = work_uri or job_work
    run_id = run_id or f"local__{datetime.now(UTC):%Y%m%dT%H%M%S}"
    if input_uri and job.inputs is not None:
        raise typer.BadParameter(
            f"the job reads {len(job.inputs)} inputs (inputs:); --input replaces a job's one "
            "input: set the inputs' URIs in the job file",
            param_hint="--input",
        )
    target = RunTarget(
        dag_id=job.dag_id,
        run_id=run_id,
        input_uris=tuple(_run_uri("--input", input_uri, entry.uri) for entry in job.all_inputs),
        output_uri=_run_uri("--output", output_uri, job.output),
        work_uri=_run_uri("--work", work_uri, work) if work else None,
        num_reducers=job.output_reducers if reducers is None else reducers,
        max_map_tasks=job.max_map_tasks,
    )
    try:
        # The display ends (cursor shown, last lines out) before FAILED or STOPPED is printed.
        with run_display(progress, workers, progress_interval) as display:
            manifest = run_locally(job, file.resolve().parent, target, workers, display)
    except MapReduceError as exc:
        typer.echo(f"FAILED: {exc}", err=True)
        raise typer.Exit(1) from None
    except RunStopped as exc:
        typer.echo(f"STOPPED {exc}", err=True)
        raise typer.Exit(128 + exc.signum) from None  # a shell's code for death by signal
    for line in commit_summary(manifest):
        typer.echo(line)


def _run_uri(option: str, given: str | None, default: str) -> str:
    """The URI `run` uses for `option`: the one given (a path is relative to the current
    folder) or the job's, which must not be an Airflow template here."""
    from airflow_mapreduce.job.validators import check_uri
    from airflow_mapreduce.storage import resolve_uri

    uri = resolve_uri(given, Path.cwd()) if given else default
    if "{{" in uri:
        raise typer.BadParameter(
            f"the job's URI {uri!r} is an Airflow template; give a URI here", param_hint=option
        )
    try:
        return check_uri(uri, option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


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


if __name__ == "__main__":  # python -m airflow_mapreduce.cli
    main()
