"""The word-count DAG through the real KubernetesPodOperator code on an emulated cluster.

dag.test() runs plan -> map pods -> shuffle -> reduce pods -> commit. Each pod is created
through the Kubernetes API (kmock emulator), run by the test kubelet as a local process,
its log streamed back through the API, its completion detected and the pod deleted.
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.dags_folder import yaml_dag
from tests.kubernetes.emulator import NAMESPACE, EmulatedCluster
from tests.kubernetes.emulator import REPO_DAGS as DAGS
from tests.wordcount import input_counts, output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB = """\
dag_id: {dag_id}
input: {{uri: data/wordcount, split_size: 512B}}
mapper: {{command: [{mapper}]}}
reducer: {{command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}}
reducers: 2
output: /nonexistent/overridden-by-conf
backend: kubernetes
retries: {retries}
retry_delay_seconds: 1
kubernetes:
  image: airflow-mapreduce-worker:dev
  namespace: {namespace}
  labels: {{team: data}}
  startup_check_interval_seconds: 1
  poll_interval_seconds: 1
  deferrable: {deferrable}
{storage}"""

CORPUS = DAGS / "data" / "wordcount"  # small: one map pod per file keeps the test quick
WORDCOUNT_MAPPER = "python3, mapreduce_jobs/wordcount/mapper.py"


def kubernetes_dag(dags: Path, dag_id: str, *, mapper: str = WORDCOUNT_MAPPER, retries: int = 0,
                   deferrable: bool = False, storage: str = "") -> Any:  # fmt: skip
    """The job as a YAML file in `dags` (which must be Airflow's dags folder), parsed by Airflow."""
    text = JOB.format(
        dag_id=dag_id, mapper=mapper, retries=retries, namespace=NAMESPACE,
        deferrable=str(deferrable).lower(), storage=storage,
    )  # fmt: skip
    return yaml_dag(dags, dag_id, text)


def task_states(dag_id: str, run_id: str) -> dict[tuple[str, int], tuple[str, int]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {(ti.task_id, ti.map_index): (ti.state, ti.try_number) for ti in tis}


def s3_storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               cluster: EmulatedCluster, corpus: Path) -> tuple[str, str, str]:  # fmt: skip
    """Input in a real S3 server; Airflow reaches it through its connection and the pods
    through the endpoint in the job's env plus keys from a Kubernetes Secret only."""
    server = request.getfixturevalue("s3_server")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", server.airflow_conn_json())
    cluster.create_secret(NAMESPACE, "s3-credentials", {
        "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
    })  # fmt: skip
    s3 = server.filesystem()
    s3.mkdir("k8s-bucket")
    s3.put(f"{corpus}/", "k8s-bucket/input/", recursive=True)
    storage = (
        "  storage_secret: s3-credentials\n"
        f"  env: {{AWS_ENDPOINT_URL_S3: '{server.endpoint}', AWS_DEFAULT_REGION: us-east-1}}\n"
    )
    return storage, "s3://k8s-bucket/input/", "s3://k8s-bucket/out/"


def read_output(output: str, request: pytest.FixtureRequest) -> collections.Counter[str]:
    if output.startswith("file://"):
        return output_counts(Path(output.removeprefix("file://")))
    s3 = request.getfixturevalue("s3_server").filesystem()
    s3.invalidate_cache()
    counts: collections.Counter[str] = collections.Counter()
    for key in sorted(s3.find(output.removeprefix("s3://"))):
        if key.rsplit("/", 1)[1].startswith("part-"):
            for line in s3.cat(key).decode().splitlines():
                word, count = line.split("\t")
                assert word not in counts, f"{word!r} emitted twice"
                counts[word] = int(count)
    return counts


@pytest.mark.parametrize(
    ("deferrable", "storage"), [(False, "file"), (True, "s3")], ids=["sync-file", "deferrable-s3"]
)
def test_word_count_runs_as_pods(airflow_db, k8s_cluster, test_dags, tmp_path, capsys, request,
                                 monkeypatch, deferrable, storage) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    cluster, kubelet = k8s_cluster
    dag_id = f"wordcount_k8s_{'deferrable' if deferrable else 'sync'}"
    if storage == "s3":
        settings, input_uri, output = s3_storage(request, monkeypatch, cluster, CORPUS)
    else:
        settings, input_uri, output = "", f"file://{CORPUS}", f"file://{tmp_path / 'out'}"

    dag = kubernetes_dag(test_dags, dag_id, deferrable=deferrable, storage=settings)
    run = dag.test(run_conf={"input": input_uri, "output": output})

    assert run.state == "success"
    assert read_output(output, request) == input_counts(CORPUS)
    pods = cluster.created_pods
    phases = collections.Counter(p["metadata"]["labels"]["app.kubernetes.io/component"]
                                 for p in pods)  # fmt: skip
    states = task_states(dag_id, run.run_id)
    maps = sum(1 for task_id, _ in states if task_id == "map")
    # The planner's rule: about split_size (512 B) of input per map task.
    expected_maps = math.ceil(sum(p.stat().st_size for p in CORPUS.iterdir()) / 512)
    assert maps == expected_maps and phases == {"map": maps, "reduce": 2}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["dag_id"] == dag_id and labels["team"] == "data"
        assert labels["task_id"] == labels["app.kubernetes.io/component"]
        assert labels["airflow-mapreduce/job"] == f"mr-{dag_id.replace('_', '-')}"
        assert pod["metadata"]["namespace"] == NAMESPACE
        [container] = pod["spec"]["containers"]  # no XCom sidecar
        assert container["command"] == ["python", "-m", "airflow_mapreduce.worker"]
        assert container["args"][0].endswith("/spec.json")
    assert set(kubelet.exit_codes().values()) == {0}
    assert cluster.pods(NAMESPACE) == []  # every pod deleted after its task
    # The worker's summary line (in the kubelet's process output only) reached the task log
    # through the pod log API.
    task_log = capsys.readouterr().out
    for task in [*(f"map[{i}]" for i in range(maps)), "reduce[0]", "reduce[1]"]:
        assert f"airflow-mapreduce worker: {task} attempt" in task_log


FLAKY_MAPPER = """\
import os, sys
try:  # atomic: exactly the first invocation of all map pods fails
    os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL))
except FileExistsError:
    os.execvp("python3", ["python3", "mapreduce_jobs/wordcount/mapper.py"])
sys.stderr.write("flaky mapper: failing on purpose\\n")
sys.exit(3)
"""


def test_failed_pod_fails_its_task_and_the_retry_succeeds(airflow_db, k8s_cluster, test_dags,
                                                          tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    cluster, kubelet = k8s_cluster
    mapper = tmp_path / "flaky_mapper.py"
    mapper.write_text(FLAKY_MAPPER)
    output = tmp_path / "out"
    dag = kubernetes_dag(
        test_dags, "wordcount_k8s_retry", retries=1,
        mapper=f"python3, {mapper}, {tmp_path / 'failed-once'}",
    )  # fmt: skip

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{output}"})

    assert run.state == "success"
    assert output_counts(output) == input_counts(CORPUS)
    states = task_states("wordcount_k8s_retry", run.run_id)
    maps = {index: state for (task_id, index), state in states.items() if task_id == "map"}
    assert len(maps) > 1  # every map pod but the first succeeds on its first try
    assert sorted(maps.values()) == [("success", 1)] * (len(maps) - 1) + [("success", 2)]
    map_pods = [p for p in cluster.created_pods
                if p["metadata"]["labels"]["app.kubernetes.io/component"] == "map"]  # fmt: skip
    assert len(map_pods) == len(maps) + 1  # the retry ran in a new pod
    [retried] = [index for index, (_, tries) in maps.items() if tries == 2]
    tries = [p["metadata"]["labels"]["try_number"] for p in map_pods
             if p["metadata"]["labels"]["map_index"] == str(retried)]  # fmt: skip
    assert tries == ["1", "2"]
    assert sorted(kubelet.exit_codes().values()) == [0] * (len(maps) + 2) + [1]
    assert cluster.pods(NAMESPACE) == []  # the failed pod was deleted too
    # The failed pod's output reached the task log: the streaming error quotes the mapper.
    assert "flaky mapper: failing on purpose" in capsys.readouterr().out


def test_a_timed_out_task_deletes_its_pods_and_commits_nothing(airflow_db, k8s_cluster, test_dags,
                                                              tmp_path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """Cancellation (task timeout): the hung map pods are deleted, no output is committed."""
    cluster, kubelet = k8s_cluster
    dag = kubernetes_dag(
        test_dags, "wordcount_k8s_timeout",
        mapper="python3, -c, 'import time; time.sleep(600)'",
        storage="task_timeout_seconds: 3\n",
    )  # fmt: skip
    output = tmp_path / "out"

    run = dag.test(run_conf={"input": f"file://{CORPUS}", "output": f"file://{output}"})

    assert run.state == "failed"
    states = task_states("wordcount_k8s_timeout", run.run_id)
    assert {state for (task_id, _), (state, _) in states.items() if task_id == "map"} == {"failed"}
    assert states[("commit", -1)][0] == "upstream_failed"
    started = [p for p in cluster.created_pods
               if p["metadata"]["labels"]["app.kubernetes.io/component"] == "map"]  # fmt: skip
    assert started  # the pods did start before the timeout
    assert cluster.pods(NAMESPACE) == []  # and every one of them was deleted,
    assert None not in kubelet.exit_codes().values()  # which stopped its process
    assert not (output / "_SUCCESS").exists()
    assert not list(output.glob("part-*"))


PYTHON_DAG = """
import json
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mapreduce import MapReduceOperator

with DAG("python_on_pods", schedule=None):

    @task
    def extract() -> str:
        return {corpus!r}

    @task
    def report(manifest_uri: str) -> None:
        Path({report!r}).write_text(Path(manifest_uri.removeprefix("file://")).read_text())

    counts = MapReduceOperator(
        task_id="wordcount",
        job_dir={dags!r},
        input="{{{{ ti.xcom_pull(task_ids='extract') }}}}",
        output={output!r},
        mapper=["python3", "mapreduce_jobs/wordcount/mapper.py"],
        reducer=["python3", "mapreduce_jobs/wordcount/reducer_current_word.py"],
        reducers=2,
        backend="kubernetes",
        kubernetes={{"image": "airflow-mapreduce-worker:dev", "namespace": {namespace!r},
                    "startup_check_interval_seconds": 1, "poll_interval_seconds": 1}},
    )
    extract() >> counts
    report(counts.output)
"""


def test_a_python_dag_runs_the_operator_as_pods(
    airflow_db, k8s_cluster, test_dags, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """@task -> MapReduceOperator(backend=kubernetes) -> @task on .output, built in Python."""
    from airflow.dag_processing.dagbag import DagBag

    cluster, kubelet = k8s_cluster
    output, report = tmp_path / "out", tmp_path / "report.json"
    test_dags.mkdir(exist_ok=True)
    text = PYTHON_DAG.format(corpus=f"file://{CORPUS}", dags=str(DAGS), output=str(output),
                             report=str(report), namespace=NAMESPACE)  # fmt: skip
    (test_dags / "python_on_pods.py").write_text(text)
    bag = DagBag(str(test_dags))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("python_on_pods").test()

    assert run.state == "success"
    assert output_counts(output) == input_counts(CORPUS)
    phases = collections.Counter(
        p["metadata"]["labels"]["app.kubernetes.io/component"] for p in cluster.created_pods
    )
    assert phases["reduce"] == 2 and phases["map"] >= 1
    for pod in cluster.created_pods:  # the job's name is the DAG's and the operator's
        assert pod["metadata"]["labels"]["airflow-mapreduce/job"] == "mr-python-on-pods-wordcount"
    assert set(kubelet.exit_codes().values()) == {0}
    assert cluster.pods(NAMESPACE) == []
    assert json.loads(report.read_text())["records"] == len(input_counts(CORPUS))
