"""Settings of the work-queue backends (`kubernetes_job`, `local_pool`)."""

from __future__ import annotations

from pydantic import Field

from airflow_mapreduce.spec.base import Model


class QueueSpec(Model):
    """Map tasks are pulled from a real queue by `workers` workers instead of being mapped
    Airflow tasks. The queue's URL and credentials never appear here: the Airflow side reads
    them from the connection `conn_id`, pods from the Kubernetes Secret `secret`."""

    conn_id: str = Field(
        default="mapreduce_queue",
        description="Airflow connection of the queue: conn type 'redis' (host, port, password, "
        'extra {"db": 0, "ssl": false}) or \'nats\' (host, port, login/password).',
    )
    secret: str | None = Field(
        default=None,
        description="Kubernetes Secret whose key 'url' holds the queue URL for the pods "
        "(required by backend kubernetes_job).",
    )
    workers: int = Field(
        default=4, ge=1, le=10_000, description="Worker pods (parallelism) or local processes."
    )
    max_attempts: int = Field(default=3, ge=1, description="Deliveries before dead-lettering.")
    backoff_seconds: float = Field(
        default=1.0, ge=0, description="Delay before the 2nd attempt; doubles for each next one."
    )
    max_backoff_seconds: float = Field(default=60.0, ge=0)
    visibility_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A task not acknowledged (no heartbeat) for this long goes to another worker.",
    )
    dead_letter_allowance: int = Field(
        default=0,
        ge=0,
        description="Dead-lettered map tasks tolerated; above it the run fails. Any dead task "
        "still fails the shuffle (its output is missing), so keep 0 unless reduce is skipped.",
    )
    progress_interval_seconds: float = Field(default=5.0, gt=0)
