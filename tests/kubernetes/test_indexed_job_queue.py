"""The `kubernetes_job` backend on an emulated cluster: the map phase as ONE Indexed Job.

dag.test() runs plan -> run_map_queue -> shuffle -> reduce pods -> commit. run_map_queue
enqueues the map task specs into a real Redis (with a password), creates the Indexed Job
through the provider's KubernetesJobOperator, and watches the queue. The test Job
controller (tests/kubernetes/job_controller.py) turns the Job into pods, the test kubelet
runs each as `python -m airflow_mapreduce.worker --pull <queue>` with the queue URL from
a Kubernetes Secret, and the pods pull the map tasks until the queue is finished.
"""

from __future__ import annotations

import collections
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.queue import QUEUE_URL_ENV, open_queue, queue_name
from tests.dags_folder import yaml_dag
from tests.kubernetes.conftest import JobsCluster
from tests.kubernetes.emulator import NAMESPACE
from tests.kubernetes.emulator import REPO_DAGS as DAGS
from tests.servers import REDIS_PASSWORD
from tests.wordcount import input_counts, output_counts

# A broken failure path would otherwise wait for a queue nobody pulls until the global timeout.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CORPUS = DAGS / "data" / "wordcount"
SPLIT_SIZE = 256  # bytes: ~2 KB of corpus gives 8 map tasks
CONN_ID = "mapreduce_queue_k8s"
SECRET = "mapreduce-queue"
WORDCOUNT_MAPPER = "python3, mapreduce_jobs/wordcount/mapper.py"
# A map task takes ~50 ms, less than the spread of the pods' start-up, so the first pod up
# could take them all. This mapper first waits until every pod (every completion index)
# holds a map task: each pod must get work, and the run shows JOB_COMPLETION_INDEX reached
# the workers' commands.
BARRIER_MAPPER = """\
import os, sys, time
barrier, workers = sys.argv[1], int(sys.argv[2])
open(os.path.join(barrier, os.environ["JOB_COMPLETION_INDEX"]), "w").close()
deadline = time.monotonic() + 30
while len(os.listdir(barrier)) < workers and time.monotonic() < deadline:
    time.sleep(0.05)
os.execvp("python3", ["python3", "mapreduce_jobs/wordcount/mapper.py"])
"""

JOB = """\
dag_id: {dag_id}
input: {{uri: data/wordcount, split_size: {split_size}B}}
mapper: {{command: [{mapper}]}}
reducer: {{command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}}
reducers: 2
output: /nonexistent/overridden-by-conf
work: file://{work}
keep_intermediate: true
backend: kubernetes_job
retries: 0
kubernetes:
  image: airflow-mapreduce-worker:dev
  namespace: {namespace}
  startup_check_interval_seconds: 1
  startup_timeout_seconds: {startup_timeout}
  poll_interval_seconds: 1
queue:
  conn_id: {conn_id}
  secret: {secret}
  workers: {workers}
  max_attempts: {max_attempts}
  backoff_seconds: 0.1
  max_backoff_seconds: 0.2
  progress_interval_seconds: 1
"""


@pytest.fixture
def queue_job(airflow_db, k8s_jobs_cluster, redis_with_password, test_dags, tmp_path,  # type: ignore[no-untyped-def]
              monkeypatch) -> Callable[..., Any]:  # fmt: skip
    """Write a kubernetes_job word count into the test's dags folder; return its DAG."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", redis_with_password.airflow_conn_json())

    def build(dag_id: str, *, workers: int, max_attempts: int = 3,
              mapper: str = WORDCOUNT_MAPPER, startup_timeout: int = 120) -> Any:  # fmt: skip
        text = JOB.format(
            dag_id=dag_id, split_size=SPLIT_SIZE, mapper=mapper, work=tmp_path / "work",
            namespace=NAMESPACE, conn_id=CONN_ID, secret=SECRET, workers=workers,
            max_attempts=max_attempts, startup_timeout=startup_timeout,
        )  # fmt: skip
        return yaml_dag(test_dags, dag_id, text)

    return build


def expected_map_tasks() -> int:
    """The planner's rule: about split_size of input per map task (fewer than splits here)."""
    return math.ceil(sum(p.stat().st_size for p in CORPUS.iterdir()) / SPLIT_SIZE)


def map_specs_in_storage(work: Path, dag_id: str) -> set[str]:
    """The map task specs the plan wrote (kept: keep_intermediate), as file:// URIs."""
    return {f"file://{p}" for p in (work / dag_id).glob("*/map/*/spec.json")}


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in tis}


def job_pods(jobs: JobsCluster, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods the Job controller created for `job` (as submitted), in creation order."""
    uid = job["metadata"]["uid"]
    return [p for p in jobs.cluster.created_pods
            if any(r["uid"] == uid for r in p["metadata"].get("ownerReferences", []))]  # fmt: skip


TOOK = re.compile(r" took (\S+) \(attempt (\d+)\)$")


def pulled_items(jobs: JobsCluster, pod: dict[str, Any]) -> list[tuple[str, int]]:
    """(spec URI, attempt) of every item the pod's worker took, from its container output."""
    run = jobs.kubelet.runs.get(f"{NAMESPACE}/{pod['metadata']['name']}")
    found = []
    for line in run.log.lines if run else []:  # (a pod deleted at once may never have run)
        if match := TOOK.search(line.text.decode().rstrip("\n")):
            found.append((match[1], int(match[2])))
    return found


def wait_for(condition: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def job_condition(jobs: JobsCluster, name: str) -> str | None:
    [job] = [j for j in jobs.cluster.jobs(NAMESPACE) if j["metadata"]["name"] == name]
    final = [c for c in job["status"].get("conditions", []) if c["status"] == "True"]
    return str(final[0]["type"]) if final else None


def test_indexed_job_pods_pull_every_map_task(queue_job, k8s_jobs_cluster, redis_with_password,  # type: ignore[no-untyped-def]
                                              tmp_path, capsys) -> None:  # fmt: skip
    jobs: JobsCluster = k8s_jobs_cluster
    workers, dag_id = 3, "wordcount_indexed_job"
    jobs.cluster.create_secret(NAMESPACE, SECRET, {"url": redis_with_password.url})
    mapper, barrier = tmp_path / "barrier_mapper.py", tmp_path / "barrier"
    mapper.write_text(BARRIER_MAPPER)
    barrier.mkdir()
    dag = queue_job(dag_id, workers=workers, mapper=f"python3, {mapper}, {barrier}, '{workers}'")
    output = tmp_path / "out"

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{output}"})

    assert run.state == "success", task_states(dag_id, run.run_id)
    assert output_counts(output) == input_counts(CORPUS)
    assert "map[0]" not in task_states(dag_id, run.run_id)  # no per-task map instances

    # One Indexed Job, one completion per worker, the queue URL only by Secret reference.
    [job] = jobs.cluster.created_jobs
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == workers
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "airflow_mapreduce.worker"]
    assert container["args"] == ["--pull", queue_name(dag_id, run.run_id)]
    [url] = [e for e in container["env"] if e["name"] == QUEUE_URL_ENV]
    assert url["valueFrom"] == {"secretKeyRef": {"name": SECRET, "key": "url"}}
    submitted = json.dumps(job)
    assert REDIS_PASSWORD not in submitted and "redis://" not in submitted
    assert all(REDIS_PASSWORD not in json.dumps(p) for p in jobs.cluster.created_pods)

    # One pod per index, and together they ran every map task the plan wrote, once each.
    pods = job_pods(jobs, job)
    indexes = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
                     for p in pods)  # fmt: skip
    assert indexes == list(range(workers))
    specs = map_specs_in_storage(tmp_path / "work", dag_id)
    assert len(specs) == expected_map_tasks() > workers
    taken = {p["metadata"]["name"]: pulled_items(jobs, p) for p in pods}
    all_taken = [item for items in taken.values() for item in items]
    assert sorted(all_taken) == sorted((uri, 1) for uri in specs)  # each once, first attempt
    per_pod = sorted(len(items) for items in taken.values())
    assert per_pod[0] >= 1  # every pod got work,
    assert per_pod[-1] > 1  # and a pod pulled several;
    assert sorted(p.name for p in barrier.iterdir()) == [str(i) for i in range(workers)]
    # The workers exit by themselves once the queue is finished: the Job completes.
    assert wait_for(lambda: job_condition(jobs, job["metadata"]["name"]), 30) == "Complete"
    assert {jobs.kubelet.exit_codes()[f"{NAMESPACE}/{p['metadata']['name']}"] for p in pods} == {0}
    # The run's queue state is gone, and the URL reached no task log.
    queue = open_queue(redis_with_password.url, queue_name(dag_id, run.run_id))
    assert queue.progress().total == 0
    queue.close()
    assert REDIS_PASSWORD not in capsys.readouterr().out


def test_a_mapper_that_always_fails_dead_letters_and_fails_the_run(  # type: ignore[no-untyped-def]
    queue_job, k8s_jobs_cluster, redis_with_password, tmp_path, capsys
) -> None:
    jobs: JobsCluster = k8s_jobs_cluster
    dag_id = "wordcount_indexed_job_dead_letters"
    jobs.cluster.create_secret(NAMESPACE, SECRET, {"url": redis_with_password.url})
    dag = queue_job(dag_id, workers=2, max_attempts=2,
                    mapper="python3, -c, 'import sys; sys.exit(3)'")  # fmt: skip

    # A hang (the map phase waiting for a queue nobody finishes) hits the module's timeout.
    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{tmp_path / 'out'}"})

    assert run.state == "failed"
    states = task_states(dag_id, run.run_id)
    assert states["run_map_queue[-1]"] == "failed"
    assert states["commit[-1]"] == "upstream_failed"
    specs = map_specs_in_storage(tmp_path / "work", dag_id)
    assert len(specs) == expected_map_tasks()
    log = capsys.readouterr().out
    assert f"{len(specs)} map task(s) failed 2 times and were dead-lettered" in log
    for uri in specs:
        assert f"  - {uri} (2 attempts): " in log
    # Every map task was pulled exactly twice (max_attempts) by the Job's pods.
    [job] = jobs.cluster.created_jobs
    attempts = collections.Counter(
        item for pod in job_pods(jobs, job) for item in pulled_items(jobs, pod)
    )
    assert attempts == {(uri, attempt): 1 for uri in specs for attempt in (1, 2)}
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_failed_job_fails_the_map_phase(queue_job, k8s_jobs_cluster, redis_with_password,  # type: ignore[no-untyped-def]
                                          tmp_path, capsys) -> None:  # fmt: skip
    """Workers that exit before pulling (the Secret's queue URL is empty) exhaust the Job's
    backoffLimit; the operator sees the Job failed (it polls every
    JOB_STATUS_INTERVAL_SECONDS) and fails instead of waiting for a queue nobody pulls."""
    jobs: JobsCluster = k8s_jobs_cluster
    dag_id = "wordcount_indexed_job_fails"
    # (Not a missing Secret: the kubelet keeps such a pod Pending, it never fails; that
    # case is test_pods_that_never_start_fail_the_map_phase_after_the_startup_timeout.)
    jobs.cluster.create_secret(NAMESPACE, SECRET, {"url": ""})
    dag = queue_job(dag_id, workers=2, max_attempts=1)

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{tmp_path / 'out'}"})

    assert run.state == "failed"
    states = task_states(dag_id, run.run_id)
    assert states["run_map_queue[-1]"] == "failed"
    assert states["commit[-1]"] == "upstream_failed"
    [job] = jobs.cluster.created_jobs
    name = job["metadata"]["name"]
    log = capsys.readouterr().out
    assert (
        f"Kubernetes Job {name} failed before the map queue finished: BackoffLimitExceeded" in log
    )
    [current] = [j for j in jobs.cluster.jobs(NAMESPACE) if j["metadata"]["name"] == name]
    # More failed pods than the backoffLimit (both pods may fail in the same round).
    failed = current["status"]["failed"]
    assert failed > job["spec"]["backoffLimit"] == 6  # max(6, workers * max_attempts)
    # The failed pods remain; a replacement still running at the end was deleted.
    remaining = jobs.cluster.pods(NAMESPACE)
    assert len(remaining) == failed and {p["status"]["phase"] for p in remaining} == {"Failed"}
    codes = jobs.kubelet.exit_codes()
    assert all(codes[f"{NAMESPACE}/{p['metadata']['name']}"] == 2 for p in remaining)
    assert all(b"--pull needs the queue URL" in b"".join(line.text for line in pod.log.lines)
               for key, pod in jobs.kubelet.runs.items() if codes[key] == 2)  # fmt: skip
    pods = job_pods(jobs, job)
    assert failed <= len(pods) <= failed + 2  # at most `workers` pods deleted
    assert all(pulled_items(jobs, p) == [] for p in pods)  # none ever got a map task
    queue = open_queue(redis_with_password.url, queue_name(dag_id, run.run_id))
    assert queue.progress().total == 0  # cleaned up on failure too
    queue.close()


def test_pods_that_never_start_fail_the_map_phase_after_the_startup_timeout(  # type: ignore[no-untyped-def]
    queue_job, k8s_jobs_cluster, redis_with_password, tmp_path, capsys, monkeypatch
) -> None:
    """Pods stuck in Pending (here: the queue Secret is missing; also an image that cannot
    be pulled, no node that fits) never fail the Job; the operator fails once no map task
    was taken within startup_timeout_seconds, naming the pods and why they wait."""
    from airflow_mapreduce.airflow import queue_backend

    monkeypatch.setattr(queue_backend, "JOB_STATUS_INTERVAL_SECONDS", 0.5)
    jobs: JobsCluster = k8s_jobs_cluster
    dag_id = "wordcount_indexed_job_pending"
    dag = queue_job(dag_id, workers=2, startup_timeout=2)  # (no Secret created)

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{tmp_path / 'out'}"})

    assert run.state == "failed"
    assert task_states(dag_id, run.run_id)["run_map_queue[-1]"] == "failed"
    [job] = jobs.cluster.created_jobs
    pods = sorted(p["metadata"]["name"] for p in job_pods(jobs, job))
    assert len(pods) == 2
    log = capsys.readouterr().out
    name = job["metadata"]["name"]
    assert (
        f"no pod of Kubernetes Job {name} took a map task within "
        f"kubernetes.startup_timeout_seconds (2 s): " in log
    )
    for pod in pods:
        assert f'{pod} Pending (CreateContainerConfigError: secret "{SECRET}" not found)' in log


def test_a_job_that_completes_with_map_tasks_left_fails_the_map_phase(  # type: ignore[no-untyped-def]
    queue_job, k8s_jobs_cluster, redis_with_password, tmp_path, capsys, monkeypatch
) -> None:
    """The Secret points to another Redis database than the Airflow connection: the pods
    find no queue there, exit 0, and the Job completes. The operator fails, saying so,
    rather than wait for a queue no one pulls."""
    from airflow_mapreduce.airflow import queue_backend

    monkeypatch.setattr(queue_backend, "JOB_STATUS_INTERVAL_SECONDS", 0.5)
    jobs: JobsCluster = k8s_jobs_cluster
    dag_id = "wordcount_indexed_job_elsewhere"
    assert redis_with_password.url.endswith("/0")
    jobs.cluster.create_secret(NAMESPACE, SECRET, {"url": redis_with_password.url[:-1] + "1"})
    dag = queue_job(dag_id, workers=2)

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{tmp_path / 'out'}"})

    assert run.state == "failed"
    [job] = jobs.cluster.created_jobs
    [current] = [
        j for j in jobs.cluster.jobs(NAMESPACE) if j["metadata"]["name"] == job["metadata"]["name"]
    ]
    assert any(c["type"] == "Complete" for c in current["status"]["conditions"])
    assert all(pulled_items(jobs, p) == [] for p in job_pods(jobs, job))
    log = capsys.readouterr().out
    assert (
        f"Kubernetes Job {job['metadata']['name']} completed, but the map queue is not "
        "finished" in log
    )


# The test Job controller itself, through the Kubernetes API only (no Airflow).

TRACED_POD = """\
import os, sys, time
index, trace = os.environ["JOB_COMPLETION_INDEX"], sys.argv[1]
def note(what):
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, f"{what} {index} {time.time()}\\n".encode())
    os.close(fd)
note("start")
time.sleep(0.3)
note("end")
if index == "1" and not os.path.exists(trace + ".failed"):  # index 1 fails once
    open(trace + ".failed", "w").close()
    sys.exit(1)
"""


def batch_api(jobs: JobsCluster) -> Any:
    from kubernetes import client

    return client.BatchV1Api(jobs.cluster.api_client())


def indexed_job(name: str, command: list[str], *, completions: int, parallelism: int,
                backoff_limit: int = 6) -> dict[str, Any]:  # fmt: skip
    container = {"name": "base", "image": "ignored:1", "command": command}
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed", "completions": completions, "parallelism": parallelism,
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": {"team": "data"}},
                         "spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }  # fmt: skip


def test_controller_keeps_parallelism_and_replaces_a_failed_pod(k8s_jobs_cluster,  # type: ignore[no-untyped-def]
                                                                tmp_path) -> None:  # fmt: skip
    jobs: JobsCluster = k8s_jobs_cluster
    trace = tmp_path / "trace"
    command = ["python3", "-c", TRACED_POD, str(trace)]
    created = batch_api(jobs).create_namespaced_job(
        NAMESPACE, indexed_job("traced", command, completions=4, parallelism=2)
    )

    assert wait_for(lambda: job_condition(jobs, "traced"), 30) == "Complete"
    [job] = jobs.cluster.jobs(NAMESPACE)
    status = job["status"]
    assert (status["succeeded"], status["failed"], status["active"]) == (4, 1, 0)
    assert status["completedIndexes"] == "0-3"
    assert status["startTime"] <= status["completionTime"]
    pods = [p for p in jobs.cluster.created_pods if p["metadata"]["name"].startswith("traced-")]
    indexes = [p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
               for p in pods]  # fmt: skip
    assert sorted(indexes) == ["0", "1", "1", "2", "3"]  # index 1 again after its failure
    for pod, index in zip(pods, indexes, strict=True):
        meta = pod["metadata"]
        assert re.fullmatch(rf"traced-{index}-[a-z0-9]{{5}}", meta["name"])
        assert meta["labels"]["team"] == "data"  # the template's labels, plus the Job's
        assert meta["labels"]["job-name"] == meta["labels"]["batch.kubernetes.io/job-name"]
        assert meta["labels"]["controller-uid"] == created.metadata.uid
        assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == index
        [owner] = meta["ownerReferences"]
        assert owner["kind"] == "Job" and owner["name"] == "traced"
        assert owner["uid"] == created.metadata.uid
        [env] = pod["spec"]["containers"][0]["env"]
        assert env == {"name": "JOB_COMPLETION_INDEX", "value": index}
    # Never more than `parallelism` pods running at once, and that many at some point.
    running, most = 0, 0
    events = sorted((float(t), what) for what, _, t in
                    (line.split() for line in trace.read_text().splitlines()))  # fmt: skip
    for _, what in events:
        running += 1 if what == "start" else -1
        most = max(most, running)
    assert most == 2
    assert sorted(line.split()[1] for line in trace.read_text().splitlines()
                  if line.startswith("start")) == ["0", "1", "1", "2", "3"]  # fmt: skip


def test_controller_fails_a_job_past_its_backoff_limit_and_deletes_pods_with_the_job(  # type: ignore[no-untyped-def]
    k8s_jobs_cluster,
) -> None:
    jobs: JobsCluster = k8s_jobs_cluster
    api = batch_api(jobs)
    failing = ["python3", "-c", "import os, sys, time; i = os.environ['JOB_COMPLETION_INDEX']; "
               "time.sleep(60) if i == '0' else sys.exit(2)"]  # fmt: skip
    api.create_namespaced_job(
        NAMESPACE, indexed_job("doomed", failing, completions=2, parallelism=2, backoff_limit=2)
    )
    assert wait_for(lambda: job_condition(jobs, "doomed"), 30) == "Failed"
    [job] = jobs.cluster.jobs(NAMESPACE)
    [condition] = job["status"]["conditions"]
    assert condition["reason"] == "BackoffLimitExceeded"
    assert (job["status"]["failed"], job["status"]["active"]) == (3, 0)
    # The index-0 pod, still running, was deleted (and its process killed).
    assert wait_for(lambda: all(p["status"]["phase"] == "Failed"
                                for p in jobs.cluster.pods(NAMESPACE)), 10)  # fmt: skip
    assert len(jobs.cluster.pods(NAMESPACE)) == 3

    api.create_namespaced_job(
        NAMESPACE, indexed_job("deleted", ["sleep", "60"], completions=2, parallelism=2)
    )
    wait_for(lambda: sum(p["metadata"]["name"].startswith("deleted-")
                         and p["status"]["phase"] == "Running"
                         for p in jobs.cluster.pods(NAMESPACE)) == 2, 10)  # fmt: skip
    api.delete_namespaced_job("deleted", NAMESPACE, propagation_policy="Foreground")
    wait_for(lambda: not any(p["metadata"]["name"].startswith("deleted-")
                             for p in jobs.cluster.pods(NAMESPACE)), 10)  # fmt: skip
    codes = {k: v for k, v in jobs.kubelet.exit_codes().items() if "/deleted-" in k}
    assert len(codes) == 2
    wait_for(lambda: all(jobs.kubelet.exit_codes()[k] == -9 for k in codes), 10)


def test_the_emulator_lists_by_label_selector() -> None:
    """What lets a reduce pod's KubernetesPodOperator ignore the Job's pods (kmock does not)."""
    from tests.kubernetes.emulator import label_selector_matches as matches

    labels = {"task_id": "reduce", "map_index": "1", "already_checked": "True"}
    assert matches("task_id=reduce,map_index=1", labels)
    assert matches("task_id==reduce,!airflow-worker,map_index in (0, 1)", labels)
    assert not matches("task_id=run_map_queue", labels)
    assert not matches("already_checked!=True", labels)
    assert not matches("!map_index", labels) and not matches("job-name", labels)
    assert not matches("map_index notin (1,2)", labels) and matches("team notin (x)", labels)
