"""Settings of the work-queue backends (`kubernetes_job`, `local_pool`)."""

from __future__ import annotations

from pydantic import Field, StrictFloat, StrictInt

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.job.validators import INT32_MAX, MAX_DURATION_SECONDS


class QueueSpec(Model):
    """Map tasks are pulled from a real queue by `workers` workers instead of being mapped
    Airflow tasks. The queue's URL and credentials never appear here: the Airflow side reads
    them from the connection `conn_id`, pods from the Kubernetes Secret `secret`."""

    conn_id: str = Field(
        default="mapreduce_queue",
        description="Airflow connection of the queue: conn type 'mapreduce_redis' (host, "
        "port, password, db, TLS) or 'mapreduce_nats' (host, port, login/password or token); "
        "the redis provider's 'redis' type works too.",
    )
    deferrable: bool = Field(
        default=True,
        description="Wait for the map queue in the triggerer (no worker slot held while the "
        "map phase runs); false waits in the worker.",
    )
    secret: str | None = Field(
        default=None,
        description="Kubernetes Secret whose key 'url' holds the queue URL for the pods "
        "(required by backend kubernetes_job).",
    )
    workers: StrictInt = Field(
        default=4, ge=1, le=10_000, description="Worker pods (parallelism) or local processes."
    )
    # At most 100: the backoff doubles per attempt (2**attempts must stay a float).
    max_attempts: StrictInt = Field(
        default=3, ge=1, le=100, description="Deliveries before dead-lettering."
    )
    backoff_seconds: StrictFloat = Field(
        default=1.0,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="Delay before the 2nd attempt; doubles for each next one.",
    )
    max_backoff_seconds: StrictFloat = Field(default=60.0, ge=0, le=MAX_DURATION_SECONDS)
    visibility_timeout_seconds: StrictFloat = Field(
        default=300.0,
        gt=0,
        le=MAX_DURATION_SECONDS,
        description="A task not acknowledged (no heartbeat) for this long goes to another worker.",
    )
    dead_letter_allowance: StrictInt = Field(
        default=0,
        ge=0,
        le=INT32_MAX,
        description="Dead-lettered map tasks tolerated; above it the run fails. Any dead task "
        "still fails the shuffle (its output is missing), so keep 0 unless reduce is skipped.",
    )
    progress_interval_seconds: StrictFloat = Field(default=5.0, gt=0, le=MAX_DURATION_SECONDS)
