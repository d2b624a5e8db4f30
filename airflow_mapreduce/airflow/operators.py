"""The Airflow-side steps of a MapReduce run: plan, shuffle, commit, and the local worker.

Each operator only stores its arguments in ``__init__``; all I/O happens in ``execute``,
so parsing a DAG touches no storage. XCom carries URIs and counts, never data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from airflow_mapreduce.airflow.assets import output_alias, output_asset
from airflow_mapreduce.airflow.connections import airflow_filesystems, worker_env
from airflow_mapreduce.airflow.links import OutputManifestLink
from airflow_mapreduce.airflow.metrics import emit_commit_metrics, emit_plan_metrics
from airflow_mapreduce.errors import PlanRefusedError, TaskFailedError
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.job.validators import check_uri
from airflow_mapreduce.launch import worker_command
from airflow_mapreduce.plan.commit import commit_run, commit_summary
from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.output_lease import OutputLease, process_is_running
from airflow_mapreduce.plan.planner import RunTarget, plan_run, plan_summary
from airflow_mapreduce.plan.sampling import SampleWorker
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.storage import FileSystems, resolve_uri
from airflow_mapreduce.version_compat import airflow_max_map_length

STORAGE_CONN_XCOM_KEY = "storage_conn_id"  # a connection's id, never its secrets


class MapReducePlanOperator(BaseOperator):
    """Cut the input into splits, write one task spec per map task, return their URIs.

    The URIs list (the map tasks' expand argument) is returned only when map tasks are
    mapped Airflow tasks, which max_map_length caps. A work-queue map phase reads them from
    the plan in storage, so XCom stays small whatever the fan-out.
    """

    template_fields: Sequence[str] = (
        "input_uris", "output_uri", "work_uri", "num_reducers", "max_map_tasks",
        "previous_plan_uri",
    )  # fmt: skip
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        job: JobSpec,
        input_uris: list[str],
        output_uri: str,
        work_uri: str | None = None,
        num_reducers: int | str,
        max_map_tasks: int | str | None = None,
        job_dir: str | None = None,
        job_name: str | None = None,
        step: int = 0,
        previous_plan_uri: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.job_dir = job_dir  # relative paths in a run's conf are taken from here
        # Beside the DAG's id, it names the run's work folder and output lease: two jobs of
        # one DAG (two MapReduceOperators) must not share them.
        self.job_name = job_name
        self.input_uris = input_uris  # one per input of the job
        self.output_uri = output_uri
        # A later step of a multi-step job: which step, and the plan of the one before.
        self.step = step
        self.previous_plan_uri = previous_plan_uri
        self.work_uri = work_uri
        self.num_reducers = num_reducers
        self.max_map_tasks = job.max_map_tasks if max_map_tasks is None else max_map_tasks

    def execute(self, context: Context) -> list[str] | None:
        try:
            return self._plan(context)
        except PlanRefusedError as exc:  # the same run would be refused again: no retries
            raise AirflowFailException(str(exc)) from None

    def _plan(self, context: Context) -> list[str] | None:
        # URIs given through params/conf may themselves hold templates ({{ ds }}).
        base_dir = Path(self.job_dir) if self.job_dir else None

        def canonical(field: str, value: str) -> str:
            uri = self._render_again(value, context)
            try:  # a run's conf obeys the YAML's rules, and relative paths resolve alike
                return resolve_uri(check_uri(uri, field), base_dir)
            except ValueError as exc:
                raise PlanRefusedError(f"{field} of this run: {exc}") from None

        names = [self.job.input_name(index) for index in range(len(self.input_uris))]
        target = RunTarget(
            dag_id=f"{self.dag_id}.{self.job_name}" if self.job_name else self.dag_id,
            run_id=context["run_id"],
            input_uris=tuple(map(canonical, names, self.input_uris)),
            output_uri=canonical("output", self.output_uri),
            work_uri=canonical("work", self.work_uri) if self.work_uri else None,
            num_reducers=_as_int(self.num_reducers, "reducers"),
            max_map_tasks=self._max_map_tasks(),
        )
        files = airflow_filesystems(self.job.storage.aws_conn_id)
        ti = context["ti"]
        conn_id, job_dir = self.job.storage.aws_conn_id, self.job_dir
        sampler = SampleWorker(job_dir, env=lambda uris: worker_env(conn_id, uris, job_dir))
        plan_uri, spec_uris, plan = plan_run(
            files,
            self.job,
            target,
            step=self.step,
            previous_plan_uri=self.previous_plan_uri,
            runner="airflow",
            is_running=_dag_run_is_running(ti),
            run_sample=sampler,  # partitioner.kind total_order: the mapper on a sample
        )
        for line in plan_summary(plan):
            self.log.info("%s", line)
        emit_plan_metrics(plan, context)
        ti.xcom_push(key="plan_uri", value=plan_uri)
        # Which connection reads it: what the MapReduce view (in the API server) needs.
        ti.xcom_push(key=STORAGE_CONN_XCOM_KEY, value=self.job.storage.aws_conn_id)
        from airflow_mapreduce.airflow.backends import backend_for  # (it imports this module)

        return None if backend_for(self.job).pulls_map_tasks else spec_uris

    def _max_map_tasks(self) -> int:
        requested = _as_int(self.max_map_tasks, "parallelism")
        from airflow_mapreduce.airflow.backends import backend_for  # (it imports this module)

        # Work-queue backends run every map in one Airflow task: no max_map_length cap.
        if backend_for(self.job).pulls_map_tasks:
            return requested
        return min(requested, airflow_max_map_length())

    def _render_again(self, value: str, context: Context) -> str:
        rendered = self.render_template(value, context) if "{{" in value else value
        return str(rendered)


class _PlanFollowerOperator(BaseOperator):
    """Base of the steps that find everything through the plan's URI (from XCom)."""

    template_fields: Sequence[str] = ("plan_uri",)

    def __init__(self, *, plan_uri: Any, aws_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan_uri = plan_uri
        self.aws_conn_id = aws_conn_id

    @cached_property
    def files(self) -> FileSystems:
        return airflow_filesystems(self.aws_conn_id)


class MapReduceShuffleOperator(_PlanFollowerOperator):
    """Check every map manifest in storage (never pod XCom) and write reduce task specs."""

    ui_color = "#fef7e0"

    def __init__(self, *, max_reduce_tasks: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_reduce_tasks = max_reduce_tasks

    def execute(self, context: Context) -> list[str]:
        limit = min(self.max_reduce_tasks, airflow_max_map_length())
        spec_uris = shuffle_run(self.files, self.plan_uri, limit)
        self.log.info("All map outputs present; %d reduce task(s) planned", len(spec_uris))
        return spec_uris


class MapReduceCommitOperator(_PlanFollowerOperator):
    """Verify every output part, publish _manifest.json and _SUCCESS, clean up; then
    tell Airflow the output's asset was updated (through the job's AssetAlias outlet, as
    the output URI is known only once the run has rendered it)."""

    ui_color = "#e6f4ea"
    operator_extra_links = (OutputManifestLink(),)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_alias = output_alias(self.dag_id, self.task_id)
        self.add_outlets([self.output_alias])

    def execute(self, context: Context) -> str:
        manifest = commit_run(self.files, self.plan_uri)
        for line in commit_summary(manifest):
            self.log.info("%s", line)
        emit_commit_metrics(self.files, manifest, context)
        manifest_uri = f"{manifest.output_uri.rstrip('/')}/_manifest.json"
        asset = output_asset(manifest.output_uri)
        context["outlet_events"][self.output_alias].add(
            asset,
            extra={  # what a downstream run reads from triggering_asset_events
                "output": manifest.output_uri,
                "manifest": manifest_uri,
                "input": manifest.input_uri,
                "records": manifest.records,
                "bytes": manifest.bytes,
                "parts": len(manifest.files),
            },
        )
        self.log.info("Asset event for %s (alias %s)", asset.name, self.output_alias.name)
        return manifest_uri


class LocalWorkerOperator(BaseOperator):
    """Run the worker command on one task spec as a subprocess; its output goes to the log.

    The ``local`` backend: the same command, task specs and files as a pod would use.
    """

    template_fields: Sequence[str] = ("task_spec_uri",)
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        task_spec_uri: str,
        aws_conn_id: str,
        job_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task_spec_uri = task_spec_uri
        self.aws_conn_id = aws_conn_id
        self.job_dir = job_dir

    def execute(self, context: Context) -> None:
        from airflow.providers.standard.hooks.subprocess import SubprocessHook

        from airflow_mapreduce.airflow.labels import LABEL_CONTEXT_KEY, task_label

        spec = read_task_spec(airflow_filesystems(self.aws_conn_id), self.task_spec_uri)
        cast(dict[str, Any], context)[LABEL_CONTEXT_KEY] = task_label(spec)  # map_index_template

        uris = [self.task_spec_uri, *spec.storage_uris()]
        env = worker_env(self.aws_conn_id, uris, self.job_dir)
        self._hook = SubprocessHook()
        result = self._hook.run_command(
            [*worker_command(sys.executable), self.task_spec_uri], env=env, cwd=self.job_dir
        )
        if result.exit_code != 0:
            raise TaskFailedError(
                f"worker exited with code {result.exit_code} on {self.task_spec_uri}: "
                f"{result.output}"
            )

    def on_kill(self) -> None:
        """Timeout, "mark failed" or a killed run: stop the worker and its mapper/reducer.

        The hook starts the worker in its own process group and signals the whole group.
        An attempt stopped before its manifest is never read (plan/layout.py).
        """
        hook = getattr(self, "_hook", None)
        if hook is not None and hook.sub_process is not None and hook.sub_process.poll() is None:
            hook.send_sigterm()


def _dag_run_is_running(ti: Any) -> Callable[[OutputLease], bool]:
    """Whether the run holding an output's lease still runs, asked of Airflow itself."""

    def is_running(lease: OutputLease) -> bool:
        if lease.runner != "airflow":
            return process_is_running(lease)
        try:
            state = ti.get_dagrun_state(lease.dag_id, lease.run_id)
        except Exception:
            return True  # cannot tell (e.g. the run was deleted): refuse, the message says how
        return str(getattr(state, "value", state)) in ("queued", "running")

    return is_running


def _as_int(value: int | str, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PlanRefusedError(f"{field} must be an integer, found {value!r}") from None
