"""Render the exact pods KubernetesPodOperator would create, without a cluster."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from airflow.sdk import DAG


def render_worker_pods(dag: DAG, run_id: str = "manual__render") -> dict[str, dict[str, Any]]:
    """{"map": pod, "reduce": pod} as the API server would receive them, for map_index 0
    (a multi-step job: {"step_1.map": pod, "step_1.reduce": pod, "step_2.map": ...}).

    Uses the operator's own pod-building code (build_pod_request_obj, dry run), so what is
    rendered is what a run would submit, apart from the task-spec URI in the arguments.
    """
    from kubernetes.client import ApiClient

    pods: dict[str, dict[str, Any]] = {}
    for task_id in dag.task_dict:
        if task_id.rsplit(".", 1)[-1] not in ("map", "reduce"):
            continue
        mapped = dag.get_task(task_id)
        spec_uri = f"<work>/{dag.dag_id}/{run_id}/{task_id}/00000/spec.json"
        operator = cast(Any, mapped).unmap({"arguments": [spec_uri]})
        ti = SimpleNamespace(
            dag_id=dag.dag_id, task_id=task_id, run_id=run_id, map_index=0, try_number=1
        )
        context = {"ti": ti, "run_id": run_id, "dag": dag}
        pod = operator.build_pod_request_obj(context, dry_run=True)
        pods[task_id] = ApiClient().sanitize_for_serialization(pod)
    return pods
