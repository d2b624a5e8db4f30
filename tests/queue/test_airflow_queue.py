"""The work-queue backends from Airflow: a local_pool DAG run end to end with dag.test()
(its map phase deferred, the trigger run inline; and waiting in the worker), and the
Indexed Job the kubernetes_job backend would create, validated strictly."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from airflow_mapreduce.airflow import build_dag
from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.queue import QUEUE_URL_ENV, open_queue, queue_name
from tests.conftest import Corpus
from tests.dags_folder import yaml_dag
from tests.example_references import top_words
from tests.wordcount import output_counts

REPO = Path(__file__).resolve().parents[2]
MAPPER = REPO / "dags" / "mapreduce_jobs" / "wordcount" / "mapper.py"

K8S_JOB = """\
dag_id: wordcount_queue_k8s
input: {uri: "s3://data/in/"}
mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}
reducer: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}
reducers: 4
output: s3://data/out/
backend: kubernetes_job
kubernetes:
  image: registry.example/wordcount:1.2
  namespace: mapreduce
  storage_secret: s3-credentials
queue:
  conn_id: mapreduce_queue
  secret: mapreduce-queue
  workers: 250
"""


def _small_corpus(word_corpus: Corpus, tmp_path: Path, lines: int) -> Path:
    text = sorted(word_corpus.folder.iterdir())[0].read_text().splitlines(keepends=True)
    corpus = tmp_path / "in.txt"
    corpus.write_text("".join(text[:lines]))
    return corpus


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize(
    ("server", "deferrable"),
    [("redis", True), ("redis", False), ("nats", True)],
    ids=["redis-deferred", "redis-in-worker", "nats-deferred"],
)
def test_local_pool_dag_matches_counter(  # type: ignore[no-untyped-def]
    airflow_db, word_corpus, tmp_path, monkeypatch, capsys, request, server, deferrable
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    queue_server = request.getfixturevalue(f"{server}_server")
    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", queue_server.airflow_conn_json())
    dag = DagBag(str(REPO / "dags")).get_dag("wordcount_queue")
    map_phase = dag.get_task("run_map_queue")
    assert map_phase.deferrable is True  # the default
    map_phase.deferrable = deferrable
    output = tmp_path / "out"
    corpus = _small_corpus(word_corpus, tmp_path, 3000)  # ~130 KB: map tasks of 64 KiB
    expected = collections.Counter(corpus.read_text().split())

    run = dag.test(run_conf={"input": f"file://{corpus}", "output": f"file://{output}"})

    assert run.state == "success"
    assert output_counts(output) == expected
    assert [t.task_id for t in run.get_task_instances() if t.task_id == "run_map_queue"]
    log = capsys.readouterr().out
    # dag.test() runs the trigger inline, then resumes the task in execute_complete.
    assert ("Pausing task as DEFERRED" in log) is deferrable
    name = queue_name("wordcount_queue", run.run_id)
    [total] = re.findall(rf"Queue {name}: (\d+) map task\(s\), 0 committed", log)
    assert int(total) > 1
    assert f"map queue {name}: {total}/{total} done (100.0%)" in log  # the trigger's line
    assert f"Map queue {name} finished: {total}/{total} done" in log  # execute_complete's
    # The run's queue state is gone.
    queue = open_queue(queue_server.url, name)
    assert queue.progress().total == 0
    queue.close()


# Logs each run's map task index, then fails the first run of all (exactly one, atomic).
LOGGING_FLAKY_MAPPER = """\
import os, sys
with open(sys.argv[1], "a") as log:
    log.write(os.environ["mapreduce_task_partition"] + "\\n")
try:
    os.close(os.open(sys.argv[2], os.O_CREAT | os.O_EXCL))
except FileExistsError:
    os.execvp("python3", ["python3", sys.argv[3]])
sys.exit(3)
"""


@pytest.mark.slow
@pytest.mark.integration
def test_a_retried_map_queue_reruns_only_the_uncommitted_map_tasks(  # type: ignore[no-untyped-def]
    airflow_db, redis_server, word_corpus, test_dags, tmp_path, monkeypatch, capsys
) -> None:
    """The first try dead-letters one map task and fails; the retry enqueues only that one
    (the others' committed output is kept), and the plan's XCom holds no spec list."""
    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", redis_server.airflow_conn_json())
    mapper = tmp_path / "flaky_mapper.py"
    mapper.write_text(LOGGING_FLAKY_MAPPER)
    runs_log = tmp_path / "runs.log"
    job = f"""\
dag_id: wordcount_queue_retry
input: {{uri: unused, split_size: 16KiB}}
mapper: {{command: [python3, {mapper}, {runs_log}, {tmp_path / "failed-once"}, {MAPPER}]}}
reducer: {{command: [python3, {REPO / "dags/mapreduce_jobs/wordcount/reducer.py"}]}}
output: unused-out
backend: local_pool
retries: 1
retry_delay_seconds: 1
queue: {{conn_id: mapreduce_queue, workers: 2, max_attempts: 1, progress_interval_seconds: 1}}
"""
    dag = yaml_dag(test_dags, "wordcount_queue_retry", job)
    lines = sorted(word_corpus.folder.iterdir())[0].read_text().splitlines(keepends=True)
    corpus = tmp_path / "in.txt"
    corpus.write_text("".join(lines[:1000]))
    output = tmp_path / "out"

    run = dag.test(run_conf={"input": f"file://{corpus}", "output": f"file://{output}"})

    assert run.state == "success"
    assert output_counts(output) == collections.Counter(corpus.read_text().split())
    [ti] = [t for t in run.get_task_instances() if t.task_id == "run_map_queue"]
    assert ti.try_number == 2
    runs = collections.Counter(runs_log.read_text().split())
    tasks = len(runs)
    assert tasks > 2
    assert sorted(runs.values()) == [1] * (tasks - 1) + [2]  # only the failed task ran again
    message = f"{tasks} map task(s), {tasks - 1} committed by an earlier attempt, 1 newly enqueued"
    assert message in capsys.readouterr().out  # the task log
    [plan] = [t for t in run.get_task_instances() if t.task_id == "plan"]
    assert plan.xcom_pull(task_ids="plan") is None  # XCom: the plan's URI only
    assert plan.xcom_pull(task_ids="plan", key="plan_uri").endswith("/plan.json")


@pytest.fixture(scope="module")
def rendered_job() -> dict[str, Any]:
    """The Job KubernetesJobOperator would submit, built by the operator's own code."""
    from kubernetes.client import ApiClient

    dag = build_dag(parse_job_text(K8S_JOB))
    operator: Any = dag.get_task("run_map_queue")
    run_id = "manual__2024-05-01"
    operator.arguments = ["--pull", queue_name(dag.dag_id, run_id)]  # as execute() sets it
    # No cluster here: the hook would only be asked whether Airflow runs in-cluster (a label).
    operator.__dict__["hook"] = SimpleNamespace(is_in_cluster=False)
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="run_map_queue", run_id=run_id,
                         map_index=-1, try_number=1)  # fmt: skip
    job = operator.build_job_request_obj({"ti": ti, "run_id": run_id, "dag": dag})
    return ApiClient().sanitize_for_serialization(job)  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", ["1.33.0", "1.37.0"])
def test_indexed_job_validates_strictly(rendered_job: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(rendered_job, version, strict=True)


def test_indexed_job_runs_pull_workers_with_the_url_from_a_secret(
    rendered_job: dict[str, Any],
) -> None:
    spec = rendered_job["spec"]
    assert rendered_job["kind"] == "Job" and rendered_job["metadata"]["namespace"] == "mapreduce"
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] == 250
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "airflow_mapreduce.worker"]
    name = queue_name("wordcount_queue_k8s", "manual__2024-05-01")
    assert container["args"] == ["--pull", name]
    [url] = [e for e in container["env"] if e["name"] == QUEUE_URL_ENV]
    assert url == {
        "name": QUEUE_URL_ENV,
        "valueFrom": {"secretKeyRef": {"name": "mapreduce-queue", "key": "url"}},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "redis://" not in json.dumps(rendered_job)


def test_kubernetes_job_graph_keeps_reduces_as_mapped_pods() -> None:
    dag = build_dag(parse_job_text(K8S_JOB))
    assert dag.get_task("run_map_queue").upstream_task_ids == {"plan"}
    assert dag.get_task("shuffle").upstream_task_ids == {"plan", "run_map_queue"}  # plan_uri
    assert type(dag.get_task("reduce")).__name__ == "MappedOperator"
    assert "map" not in dag.task_dict


def test_kubernetes_job_without_a_queue_secret_is_rejected() -> None:
    with pytest.raises(JobSpecError, match=r"queue\.secret"):
        parse_job_text(K8S_JOB.replace("  secret: mapreduce-queue\n", ""))


def test_dead_letters_beyond_the_allowance_fail_the_map_phase_and_are_listed(  # type: ignore[no-untyped-def]
    queue_server, monkeypatch
) -> None:
    import asyncio
    import logging

    from airflow_mapreduce.airflow.queue_backend import _QueueRun, queue_policy
    from airflow_mapreduce.errors import TaskFailedError
    from airflow_mapreduce.job.queue import QueueSpec
    from airflow_mapreduce.triggers.work_queue import WorkQueueProgressTrigger, first_event

    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", queue_server.airflow_conn_json())
    operator: Any = SimpleNamespace(job_name="dlq", log=logging.getLogger("test"))
    spec = QueueSpec(max_attempts=1, dead_letter_allowance=1, progress_interval_seconds=0.1)
    run = _QueueRun(operator, spec, {"run_id": "r-1"})  # type: ignore[arg-type]
    run.queue.enqueue(["spec-a", "spec-b", "spec-c"], queue_policy(spec))
    worker = open_queue(queue_server.url, run.name)
    handled = 0
    while handled < 3:
        for d in worker.take(1, wait=1):
            handled += 1
            if d.item == "spec-b":
                assert worker.ack(d)
            else:
                assert worker.nack(d, f"TaskFailedError: {d.item} broke")
    event = asyncio.run(first_event(WorkQueueProgressTrigger(**run.trigger_arguments())))
    assert event["status"] == "finished" and event["progress"]["dead"] == 2

    with pytest.raises(TaskFailedError) as failure:
        run.judge(event)
    message = str(failure.value)
    assert "2 map task(s) failed 1 times" in message and "dead_letter_allowance = 1" in message
    assert "spec-a (1 attempts): TaskFailedError: spec-a broke" in message
    assert "spec-c (1 attempts): TaskFailedError: spec-c broke" in message
    run.clean_up()
    assert worker.progress().total == 0
    worker.close()


def test_job_conditions_count_only_when_their_status_is_true() -> None:
    """A Job condition with status "False" (or "Unknown") does not hold: the provider's
    is_job_failed/is_job_successful would take it as failed/complete."""
    from kubernetes.client import models as k8s

    from airflow_mapreduce.triggers.work_queue import job_condition as _job_condition

    def job(*conditions: tuple[str, str]) -> k8s.V1Job:
        return k8s.V1Job(status=k8s.V1JobStatus(conditions=[
            k8s.V1JobCondition(type=kind, status=status, reason=f"{kind}{status}")
            for kind, status in conditions
        ]))  # fmt: skip

    assert _job_condition(job(("Failed", "False"), ("Complete", "Unknown")), "Failed") is None
    assert _job_condition(job(("Failed", "False"), ("Complete", "Unknown")), "Complete") is None
    assert _job_condition(job(("Failed", "True")), "Failed").reason == "FailedTrue"
    assert _job_condition(job(("Complete", "True")), "Complete").reason == "CompleteTrue"
    assert _job_condition(k8s.V1Job(), "Failed") is None


def test_the_indexed_job_operator_waits_deferred_whatever_the_pods_do(
    rendered_job: dict[str, Any],
) -> None:
    """kubernetes.deferrable is how reduce pods wait; the map queue's wait defers anyway,
    and the provider's own wait for the Job stays off."""
    text = K8S_JOB.replace("  storage_secret:", "  deferrable: false\n  storage_secret:")
    dag = build_dag(parse_job_text(text))
    operator: Any = dag.get_task("run_map_queue")
    assert operator.deferrable is True and operator.wait_until_job_complete is False
    assert dag.get_task("reduce").partial_kwargs["deferrable"] is False
    assert rendered_job["metadata"]["name"].startswith(
        "job-mr-wordcount-queue-k8s-map-"
    )  # the DAG's


@pytest.mark.slow
@pytest.mark.integration
def test_a_multi_step_job_pulls_each_steps_map_tasks_from_the_queue(  # type: ignore[no-untyped-def]
    airflow_db, test_dags, word_corpus, tmp_path, monkeypatch, redis_server
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", redis_server.airflow_conn_json())
    job = (REPO / "dags" / "top_words.yaml").read_text()
    job = job.replace("dag_id: top_words", "dag_id: top_words_queue")
    job = job.replace("backend: local", "backend: local_pool\nqueue: {workers: 2}")
    (test_dags / "mapreduce_jobs").mkdir(parents=True)
    (test_dags / "mapreduce_jobs" / "top_words.py").write_text(
        (REPO / "dags" / "mapreduce_jobs" / "top_words.py").read_text()
    )
    (test_dags / "mapreduce_jobs" / "__init__.py").write_text("")
    dag = yaml_dag(test_dags, "top_words_queue", job)
    assert {"step_1.run_map_queue", "step_2.run_map_queue"} <= set(dag.task_ids)
    output = tmp_path / "top"

    run = dag.test(run_conf={"input": f"file://{word_corpus.folder}", "output": str(output)})

    assert run.state == "success"
    assert (output / "part-00000").read_text().splitlines() == top_words(word_corpus.folder)
