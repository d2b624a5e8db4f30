from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from airflow_mapreduce.airflow.factory import INVALID_JOBS_DAG_ID

REPO = Path(__file__).resolve().parents[2]

BROKEN = """\
dag_id: broken_job
input: {uri: in}
maper: {command: [cat]}
reducers: 1
output: out
"""


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


def test_a_broken_yaml_is_an_import_error_and_hides_no_other_dag(dags_folder: Path) -> None:
    (dags_folder / "zz_broken.yaml").write_text(BROKEN)
    bag = DagBag(str(dags_folder))
    assert {"wordcount", "wordcount_python"} <= set(bag.dags)
    assert INVALID_JOBS_DAG_ID not in bag.dags
    [message] = bag.import_errors.values()
    assert (
        f"{dags_folder}/zz_broken.yaml:3:1: maper: unknown key 'maper'; did you mean 'mapper'?"
        in message
    )
    assert f"{dags_folder}/zz_broken.yaml:1:1: mapper: required field is missing" in message


def test_duplicate_dag_ids_across_files_name_both(dags_folder: Path) -> None:
    text = (dags_folder / "wordcount.yaml").read_text()
    (dags_folder / "wordcount_copy.yaml").write_text(text)
    bag = DagBag(str(dags_folder))
    assert "wordcount" in bag.dags
    [message] = bag.import_errors.values()
    assert "wordcount_copy.yaml:2:1: dag_id: 'wordcount' is already used by" in message
    assert f"{dags_folder}/wordcount.yaml" in message


def test_provider_is_registered() -> None:
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers["airflow-mapreduce"]
    assert info.data["name"] == "MapReduce"
