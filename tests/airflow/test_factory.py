from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_mapreduce.errors import MapReduceError

REPO = Path(__file__).resolve().parents[2]

BROKEN = """\
dag_id: broken_job
input: {uri: in}
maper: {command: [cat]}
reducers: 1
output: out
"""


@pytest.fixture(autouse=True)
def patient_dagbag(monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing imports Airflow providers; on a busy 2-core machine that can exceed 30 s.
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300")


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    shutil.copytree(REPO / "dags", folder)
    return folder


def test_example_dags_load_with_the_mapreduce_graph(dags_folder: Path) -> None:
    bag = DagBag(str(dags_folder))
    assert bag.import_errors == {}
    assert {"wordcount", "wordcount_python"} <= set(bag.dags)
    dag = bag.dags["wordcount"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan",
        "map",
        "shuffle",
        "reduce",
        "commit",
    ]
    assert type(dag.get_task("map")).__name__ == "MappedOperator"
    assert type(dag.get_task("reduce")).__name__ == "MappedOperator"
    assert set(dag.params.keys()) == {"input", "output", "reducers", "parallelism"}


def test_each_yaml_is_a_dag_file_of_its_own(dags_folder: Path) -> None:
    bag = DagBag(str(dags_folder))
    dag = bag.dags["wordcount"]
    assert dag.fileloc == str(dags_folder / "wordcount.yaml")  # the Code tab shows the YAML
    # The loader file is a sentinel that defines no DAG: no dag_id comes from two files.
    assert {d.fileloc for d in bag.dags.values()} == {
        str(path) for path in dags_folder.glob("*.yaml")
    }


def test_a_broken_yaml_is_an_import_error_of_its_own(dags_folder: Path) -> None:
    (dags_folder / "zz_broken.yaml").write_text(BROKEN)
    bag = DagBag(str(dags_folder))
    assert {"wordcount", "wordcount_python"} <= set(bag.dags)
    assert "broken_job" not in bag.dags
    [(path, message)] = bag.import_errors.items()
    assert path == str(dags_folder / "zz_broken.yaml")
    assert (
        f"{dags_folder}/zz_broken.yaml:3:1: maper: unknown key 'maper'; did you mean 'mapper'?"
        in message
    )
    assert f"{dags_folder}/zz_broken.yaml:1:1: mapper: required field is missing" in message


def test_duplicate_dag_ids_across_files_name_both(dags_folder: Path) -> None:
    text = (dags_folder / "wordcount.yaml").read_text()
    (dags_folder / "wordcount_copy.yaml").write_text(text)
    bag = DagBag(str(dags_folder))
    assert bag.dags["wordcount"].fileloc == str(dags_folder / "wordcount.yaml")
    [(path, message)] = bag.import_errors.items()
    assert path == str(dags_folder / "wordcount_copy.yaml")
    assert "wordcount_copy.yaml:2:1: dag_id: 'wordcount' is already used by" in message
    assert f"{dags_folder}/wordcount.yaml" in message


def test_only_job_files_are_dag_files(dags_folder: Path) -> None:
    (dags_folder / "defaults.yaml").write_text("retries: 1\n")
    (dags_folder / "_draft.yaml").write_text(BROKEN)
    (dags_folder / "other_tool").mkdir()
    (dags_folder / "other_tool" / "settings.yml").write_text("unrelated: true\n")
    (dags_folder / ".airflowignore").write_text("other_tool/\n")
    bag = DagBag(str(dags_folder))
    assert bag.import_errors == {}
    assert bag.dags["wordcount"].default_args["retries"] == 1


def test_the_entry_point_installs_the_importer_in_every_airflow_process() -> None:
    from importlib.metadata import entry_points

    from airflow_mapreduce.airflow.dag_importer import installed

    [entry_point] = entry_points(group="airflow.policy", name="airflow_mapreduce_yaml_dags")
    assert entry_point.value == "airflow_mapreduce.airflow.dag_importer_plugin"
    assert installed()  # `import airflow` ran it in this process


def test_the_loader_file_fails_loudly_without_the_importer(
    dags_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.importers import DagImporterRegistry

    from airflow_mapreduce.airflow import load_yaml_dags

    monkeypatch.setattr(DagImporterRegistry, "_instance", None)  # Airflow's own importers only
    with pytest.raises(MapReduceError, match="need airflow-mapreduce's YAML DAG importer"):
        load_yaml_dags(dags_folder / "mapreduce_dags.py", {})


def test_provider_is_registered() -> None:
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers["airflow-mapreduce"]
    assert info.data["name"] == "MapReduce"


def test_scheduling_fields_reach_the_dag(dags_folder: Path) -> None:
    bag = DagBag(str(dags_folder))
    nightly = bag.dags["wordcount_nightly"]
    assert nightly.catchup is True and nightly.max_active_runs == 2
    assert nightly.start_date.isoformat() == "2024-01-01T00:00:00+00:00"
    assert nightly.end_date.isoformat() == "2024-01-03T00:00:00+00:00"
    assert {"mapreduce", "example", "nightly"} <= set(nightly.tags)
    from airflow_mapreduce.airflow import build_dag
    from airflow_mapreduce.job import load_job_file

    k8s = build_dag(load_job_file(REPO / "examples" / "wordcount_kubernetes.yaml"))
    assert k8s.dagrun_timeout.total_seconds() == 7200
    assert k8s.get_task("map").owner == "data-platform"


def test_max_active_runs_defaults_to_the_deployment_setting(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from airflow_mapreduce.airflow import build_dag
    from airflow_mapreduce.job import parse_job_text

    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG", "3")
    job = "dag_id: runs\ninput: {uri: in}\noutput: out\nmapper: {command: [cat]}\nreducers: 0\n"
    assert build_dag(parse_job_text(job)).max_active_runs == 3
    assert build_dag(parse_job_text(job + "max_active_runs: 5\n")).max_active_runs == 5


def test_email_on_failure_uses_the_smtp_notifier() -> None:
    from airflow_mapreduce.airflow import build_dag
    from airflow_mapreduce.job import parse_job_text

    text = (
        "dag_id: mailed\ninput: {uri: in}\nmapper: {command: [cat]}\nreducers: 0\n"
        "output: out\nemail: [oncall@example.com]\n"
    )
    [callback] = build_dag(parse_job_text(text)).get_task("map").on_failure_callback
    assert type(callback).__name__ == "SmtpNotifier" and callback.to == ["oncall@example.com"]
    quiet = build_dag(parse_job_text(text + "email_on_failure: false\n"))
    assert not quiet.get_task("map").on_failure_callback


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("input", "s3://bucket/logs/{{ ds }}/", True),
        ("input", "http://example.com/x", False),
        ("output", "/data/../etc", False),
        ("reducers", 7, True),
        ("reducers", 0, False),
        ("parallelism", 0, False),
        ("parallelism", 4, True),
    ],
)
def test_params_apply_the_yaml_rules_to_conf(name: str, value: object, ok: bool) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    from airflow_mapreduce.airflow import build_dag
    from airflow_mapreduce.job import load_job_file

    param = build_dag(load_job_file(REPO / "dags" / "wordcount.yaml")).params.get_param(name)
    if ok:
        assert param.resolve(value) == value
    else:
        with pytest.raises(ParamValidationError):
            param.resolve(value)
