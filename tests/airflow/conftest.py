"""One real `airflow standalone` over the repository's dags/ for the REST tests of a session
(start-up costs 20-100 s on a busy machine); s3:// through aws_default reaches SeaweedFS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.standalone import Airflow, standalone
from tests.conftest import S3Server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def airflow(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> Iterator[Airflow]:
    env = {"AIRFLOW_CONN_AWS_DEFAULT": s3_server.airflow_conn_json()}
    home = tmp_path_factory.mktemp("airflow-standalone")
    with standalone(home, REPO / "dags", "wordcount", env) as running:
        yield running
