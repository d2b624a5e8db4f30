"""One backend object per `backend:` of the YAML, chosen in one place."""

from __future__ import annotations

from typing import get_args

import pytest

from airflow_mapreduce.airflow.backends import BACKENDS, backend_for
from airflow_mapreduce.airflow.backends.kubernetes import KubernetesBackend
from airflow_mapreduce.airflow.backends.local import LocalBackend
from airflow_mapreduce.airflow.backends.work_queue import WorkQueueBackend
from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import JobSpec, parse_job_text

JOB = parse_job_text(
    "dag_id: wc\ninput: {uri: s3://b/in/}\nmapper: {command: [cat]}\n"
    "reducer: {command: [cat]}\nreducers: 2\noutput: s3://b/out/\n"
)
NAMES = get_args(JobSpec.model_fields["backend"].annotation)


def with_backend(name: str) -> JobSpec:
    return JOB.model_copy(update={"backend": name})


@pytest.mark.parametrize("name", NAMES)
def test_each_backend_of_the_yaml_is_one_object(name: str) -> None:
    backend = backend_for(with_backend(name))
    assert backend is BACKENDS[name] and backend.name == name
    assert backend_for(with_backend(name)) is backend


def test_the_backends_are_the_yamls() -> None:
    assert sorted(BACKENDS) == sorted(NAMES)
    assert len({id(b) for b in BACKENDS.values()}) == len(NAMES)


def test_only_work_queue_backends_pull_map_tasks_and_their_reduces_are_their_twins() -> None:
    assert {name for name, b in BACKENDS.items() if b.pulls_map_tasks} == {
        "kubernetes_job", "local_pool",
    }  # fmt: skip
    pods, pool = BACKENDS["kubernetes_job"], BACKENDS["local_pool"]
    assert isinstance(pods, WorkQueueBackend) and isinstance(pool, WorkQueueBackend)
    assert isinstance(pods.reduces, KubernetesBackend) and isinstance(pool.reduces, LocalBackend)


def test_an_unknown_backend_is_refused_with_the_known_ones() -> None:
    with pytest.raises(JobSpecError, match=r"expected one of local, kubernetes, .*found 'yarn'"):
        backend_for(with_backend("yarn"))
