"""Pydantic models of a MapReduce job: the single source of truth for the YAML schema."""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_mapreduce.spec.quantities import ByteSize

# Airflow's own rule for dag and task ids (airflow.utils.helpers.KEY_REGEX).
DAG_ID_PATTERN = r"^[\w.-]+$"
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

Backend = Literal["local", "kubernetes"]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepSpec(Model):
    """A mapper, combiner or reducer: a streaming command or a Python callable."""

    command: list[str] | None = Field(
        default=None,
        description="argv of an executable speaking the Hadoop Streaming contract "
        "(key<TAB>value lines on stdin/stdout). Relative paths resolve in the job's folder.",
    )
    callable: str | None = Field(
        default=None,
        description="'module:function' of a generator function yielding (key, value) pairs.",
    )

    @field_validator("command", mode="before")
    @classmethod
    def _split_command_string(cls, value: object) -> object:
        # A single string is a convenience; argv lists are what gets executed.
        if isinstance(value, str):
            import shlex

            return shlex.split(value)
        return value

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("expected a non-empty argv list such as [python3, mapper.py]")
        return value

    @field_validator("callable")
    @classmethod
    def _callable_shape(cls, value: str | None) -> str | None:
        if value is not None and not _CALLABLE.match(value):
            raise ValueError(
                f"expected 'package.module:function', found {value!r}; "
                "e.g. mapreduce_jobs.wordcount:mapper"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> StepSpec:
        if (self.command is None) == (self.callable is None):
            raise ValueError(
                "give exactly one of 'command' (a Hadoop Streaming executable) "
                "or 'callable' ('module:function')"
            )
        return self

    @property
    def kind(self) -> Literal["command", "callable"]:
        return "command" if self.command is not None else "callable"


class InputSpec(Model):
    uri: str = Field(
        description="File, folder, glob or object prefix (file://, s3://, memory://; a plain "
        "path is relative to the YAML file). Jinja-templated, e.g. s3://logs/{{ ds }}/."
    )
    split_size: ByteSize = Field(
        default=64 * 1024**2, description="Target bytes per split (64MiB, 1GB, 1048576)."
    )


class StorageSpec(Model):
    aws_conn_id: str = Field(
        default="aws_default",
        description="Airflow connection used by plan/shuffle/commit (and the local backend's "
        "workers) for s3:// URIs.",
    )


class KubernetesSpec(Model):
    image: str = Field(
        default="airflow-mapreduce-worker:latest",
        description="Worker image: airflow-mapreduce[worker] plus the job's mapper/reducer files.",
    )
    namespace: str = "default"
    kubernetes_conn_id: str = "kubernetes_default"
    service_account_name: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Plain env vars (no secrets).")
    storage_secret: str | None = Field(
        default=None,
        description="Name of a Kubernetes Secret whose keys (AWS_ACCESS_KEY_ID, ...) become the "
        "pods' env; leave unset with IRSA/workload identity.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    cpu: str | None = Field(default=None, description="CPU request and limit, e.g. '1' or 500m.")
    memory: str | None = Field(default=None, description="Memory request and limit, e.g. 1Gi.")
    startup_timeout_seconds: int = Field(default=300, ge=1)


class JobSpec(Model):
    """One MapReduce job, as written in a YAML file under dags/."""

    dag_id: str = Field(pattern=DAG_ID_PATTERN, max_length=200)
    description: str | None = None
    schedule: str | None = Field(
        default=None, description="Cron expression, preset (@daily) or null (manual/API only)."
    )
    start_date: dt.date | None = None
    catchup: bool = False
    tags: list[str] = Field(default_factory=list)

    input: InputSpec
    mapper: StepSpec
    combiner: StepSpec | None = None
    reducer: StepSpec | None = None
    reducers: int = Field(default=1, ge=0, le=100_000, description="0 makes a map-only job.")
    output: str = Field(description="Output folder or prefix; Jinja-templated.")
    work: str | None = Field(
        default=None,
        description="Intermediate data root (default: <output>/_temporary), removed on commit.",
    )
    keep_intermediate: bool = False

    backend: Backend = "local"
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)

    max_map_tasks: int = Field(default=256, ge=1, le=100_000)
    max_reduce_tasks: int = Field(default=64, ge=1, le=100_000)
    max_parallel_tasks: int | None = Field(
        default=None, ge=1, description="Map/reduce tasks (pods) running at once per run."
    )
    retries: int = Field(default=2, ge=0)
    retry_delay_seconds: int = Field(default=10, ge=0)

    # Data-plane settings (streaming contract, partitioning, memory, formats, bad records).

    # Work-queue settings (queue-pulling backends).

    @model_validator(mode="after")
    def _reducer_matches_reducers(self) -> JobSpec:
        if self.reducers > 0 and self.reducer is None:
            raise ValueError(
                f"reducers is {self.reducers} but no 'reducer' is given; add a reducer "
                "or set reducers: 0 for a map-only job"
            )
        if self.reducers == 0 and self.reducer is not None:
            raise ValueError("reducers is 0 (map-only) but a 'reducer' is given; remove one")
        if self.reducers == 0 and self.combiner is not None:
            raise ValueError("a combiner needs reducers >= 1; a map-only job has no shuffle")
        return self

    @property
    def map_only(self) -> bool:
        return self.reducers == 0
