"""A dags folder of a test's own, holding YAML jobs the test writes (dag.test() runs DAGs
parsed from Airflow's dags folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_DAGS = Path(__file__).resolve().parent.parent / "dags"


def yaml_dag(dags: Path, dag_id: str, job_yaml: str) -> Any:
    """Write `job_yaml` as <dag_id>.yaml into `dags` (Airflow's dags folder, see the
    `test_dags` fixture) beside the repository's loader file; return the parsed DAG."""
    from airflow.dag_processing.dagbag import DagBag

    dags.mkdir(exist_ok=True)
    (dags / f"{dag_id}.yaml").write_text(job_yaml)
    (dags / "mapreduce_dags.py").write_text((REPO_DAGS / "mapreduce_dags.py").read_text())
    bag = DagBag(str(dags))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)
