"""The real DAG processor (`airflow standalone`) over the example dags folder plus a broken
job YAML: each YAML is a DAG file of its own, so the broken one is an import error naming
file:line:col and field, and hides no other DAG.
"""

from __future__ import annotations

import collections
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.job import load_job_file
from airflow_mapreduce.job.folder import job_files
from tests.airflow.standalone import Airflow, standalone
from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VALID_DAG_IDS = {load_job_file(path).dag_id for path in job_files(REPO / "dags")}

BROKEN = """\
dag_id: broken_job
input: {uri: data/wordcount}
maper: {command: [cat]}
reducers: 0
output: out
"""
NOT_YAML = "dag_id: second\ninput: [unclosed\n"


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("processor") / "dags"
    shutil.copytree(REPO / "dags", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "zz_broken.yaml").write_text(BROKEN)
    return folder


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, dags: Path) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    with standalone(home, dags, wait_for_dag="wordcount") as af:
        yield af


def _dags(airflow: Airflow) -> dict[str, dict[str, Any]]:
    listed = airflow.client.get("/api/v2/dags", params={"limit": 100, "exclude_stale": False})
    listed.raise_for_status()
    return {dag["dag_id"]: dag for dag in listed.json()["dags"]}


def _import_errors(airflow: Airflow) -> dict[str, str]:
    errors = airflow.client.get("/api/v2/importErrors")
    errors.raise_for_status()
    return {e["filename"]: e["stack_trace"] for e in errors.json()["import_errors"]}


def _all_active(airflow: Airflow, dag_ids: set[str]) -> dict[str, dict[str, Any]] | None:
    dags = _dags(airflow)
    active = {dag_id for dag_id, dag in dags.items() if not dag["is_stale"]}
    return dags if dag_ids <= active else None


def test_a_broken_yaml_hides_only_itself(airflow: Airflow, dags: Path) -> None:
    listed = airflow.wait("every valid DAG", lambda: _all_active(airflow, VALID_DAG_IDS), 180)
    assert set(listed) == VALID_DAG_IDS  # neither the broken job nor a loader-file DAG
    errors = airflow.wait("the import error", lambda: _import_errors(airflow), 60)
    assert list(errors) == ["zz_broken.yaml"]  # relative to the dags folder (the bundle)
    [trace] = errors.values()
    assert f"{dags}/zz_broken.yaml:3:1: maper: unknown key 'maper'; did you mean 'mapper'?" in (
        trace
    )
    assert f"{dags}/zz_broken.yaml:1:1: mapper: required field is missing" in trace


def test_the_code_tab_shows_the_yaml(airflow: Airflow, dags: Path) -> None:
    details = airflow.client.get("/api/v2/dags/wordcount/details").json()
    assert details["fileloc"] == str(dags / "wordcount.yaml")
    assert details["relative_fileloc"] == "wordcount.yaml"
    source = airflow.client.get("/api/v2/dagSources/wordcount").json()
    assert source["content"] == (dags / "wordcount.yaml").read_text()


def test_a_valid_dag_beside_the_broken_one_runs(airflow: Airflow, tmp_path: Path) -> None:
    corpus = tmp_path / "in"
    corpus.mkdir()
    texts = ["one fish two fish\nred fish blue fish\n", "the cat in the hat\n"]
    for index, text in enumerate(texts):
        (corpus / f"part-{index}.txt").write_text(text)
    output = tmp_path / "out"
    airflow.unpause("wordcount")
    conf = {"input": f"file://{corpus}", "output": f"file://{output}", "parallelism": 1}
    response = airflow.trigger("wordcount", conf)
    assert response.status_code == 200, response.text
    assert airflow.wait_for_run("wordcount", response.json()["dag_run_id"]) == "success"
    assert output_counts(output) == collections.Counter("".join(texts).split())


def test_fixing_a_file_clears_its_error_and_a_new_one_is_its_own(
    airflow: Airflow, dags: Path
) -> None:
    (dags / "zz_broken.yaml").write_text(BROKEN.replace("maper:", "mapper:"))
    (dags / "zz_second.yaml").write_text(NOT_YAML)
    errors = airflow.wait(
        "the fixed file's import error to clear and the new file's to appear",
        lambda: (found := _import_errors(airflow)).keys() == {"zz_second.yaml"} and found,
        120,
    )
    assert "zz_second.yaml:3:1" in errors["zz_second.yaml"]
    airflow.wait(
        "the fixed job's DAG", lambda: _all_active(airflow, {*VALID_DAG_IDS, "broken_job"}), 120
    )
