"""The contract between planner and worker: task specs and manifests (JSON in storage)."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.job.dataplane import DataPlane
from airflow_mapreduce.job.models import JobSpec, StepSpec
from airflow_mapreduce.plan.layout import RunLayout

Counters = dict[str, dict[str, int]]
MIB = 1 << 20


def _key_from_base64(value: object) -> object:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


# Record keys are any bytes (streaming output need not be UTF-8): base64 in JSON.
KeyBytes = Annotated[
    bytes,
    BeforeValidator(_key_from_base64),
    PlainSerializer(lambda key: base64.b64encode(key).decode(), return_type=str),
]


class StagedFile(Model):
    """A shipped file as the plan staged it in the run's work area: each task copies it
    into its working folder as `name`."""

    name: str
    uri: str
    size: int = Field(ge=0)
    executable: bool = Field(default=False, description="A local source with an x bit.")


class MapInput(Model):
    """One of a job's inputs (inputs:), as the map tasks reading it see it."""

    name: str = Field(description="Its name, or position from 1: mapreduce_map_input_name.")
    mapper: StepSpec


class JobRuntime(Model):
    """What a worker needs of one step of the job: user code and the shape of the shuffle.
    No secrets."""

    mapper: StepSpec | None = Field(description="None: every input has its own (inputs).")
    inputs: list[MapInput] = Field(
        default_factory=list, description="inputs: (the first step only); InputSplit.input."
    )
    input_pairs: bool = Field(
        default=False,
        description="A later step's Python mapper: called with the previous step's "
        "(key, value), not (None, line).",
    )
    combiner: StepSpec | None = None
    reducer: StepSpec | None = None
    num_partitions: int = Field(ge=0)
    # When every step is a Python callable, keys and values keep their types through the
    # shuffle as JSON (as in mrjob); once a streaming command takes part, records are
    # text as in Hadoop Streaming and callables receive str.
    codec: Literal["raw", "json"]
    dataplane: DataPlane = Field(default_factory=DataPlane)
    files: list[StagedFile] = Field(
        default_factory=list, description="Shipped files, in the run's work area (plan)."
    )
    # partitioner.kind total_order: the keys that cut the key range into partitions, in
    # the job's key order, strictly increasing (at most num_partitions - 1), picked by the
    # plan from the sampled map output (plan/sampling.py). None: hash partitioning.
    split_points: list[KeyBytes] | None = None

    @classmethod
    def from_job(
        cls, job: JobSpec, num_partitions: int, *, only_callables: bool | None = None
    ) -> JobRuntime:
        """A step's runtime; `only_callables` is the whole pipeline's (one codec for all)."""
        inputs = [
            MapInput(name=spec.name or str(index + 1), mapper=spec.mapper or job.mapper)
            for index, spec in enumerate(job.inputs or [])
            if (spec.mapper or job.mapper) is not None
        ]
        every_callable = job.only_callables if only_callables is None else only_callables
        return cls(
            mapper=job.mapper,
            inputs=inputs,
            combiner=job.combiner,
            reducer=job.reducer,
            num_partitions=num_partitions,
            codec="json" if every_callable else "raw",
            dataplane=DataPlane.model_validate(job, from_attributes=True),
        )

    def mapper_of(self, input_index: int) -> StepSpec:
        """The mapper of the job's input number `input_index` (InputSplit.input)."""
        mapper = self.inputs[input_index].mapper if self.inputs else self.mapper
        assert mapper is not None, "JobSpec checks that every input has a mapper"
        return mapper


class InputSplit(Model):
    uri: str
    input: int = Field(default=0, ge=0, description="Which of the job's inputs it is of.")
    offset: int = Field(ge=0)
    length: int | None = Field(default=None, description="None: the whole (compressed) file.")
    compression: str | None = None

    def describe(self) -> str:
        if self.length is None:
            return f"{self.uri} (whole file)"
        return f"{self.uri}[{self.offset}:{self.offset + self.length}]"


class MapTaskSpec(Model):
    kind: Literal["map"] = "map"
    dag_id: str
    run_id: str
    task_index: int
    job: JobRuntime
    splits: list[InputSplit]
    task_dir: str
    manifest_uri: str
    output_uri: str | None = Field(default=None, description="Map-only jobs write here.")

    def storage_uris(self) -> list[str]:
        """Every place the task reads or writes (which storage it needs credentials for)."""
        return [*(s.uri for s in self.splits), self.task_dir, *filter(None, [self.output_uri])]

    @property
    def input_index(self) -> int:
        """Which of the job's inputs its splits are of (the plan gives a task one)."""
        return self.splits[0].input if self.splits else 0


class ReduceTaskSpec(Model):
    kind: Literal["reduce"] = "reduce"
    dag_id: str
    run_id: str
    task_index: int
    job: JobRuntime
    inputs: dict[int, list[str]] = Field(description="partition -> sorted runs, one per map")
    outputs: dict[int, str] = Field(description="partition -> part-NNNNN URI")
    task_dir: str
    manifest_uri: str

    def storage_uris(self) -> list[str]:
        """Every place the task reads or writes (which storage it needs credentials for)."""
        runs = [uri for uris in self.inputs.values() for uri in uris]
        return [*runs, *self.outputs.values(), self.task_dir]


TaskSpec = Annotated[MapTaskSpec | ReduceTaskSpec, Field(discriminator="kind")]


class PartFile(Model):
    partition: int
    uri: str
    records: int = Field(ge=0)
    bytes: int = Field(ge=0)


class PeakMemory(Model):
    """Peak resident memory of a task (what its worker pod must hold), in bytes."""

    worker_bytes: int = Field(ge=0, description="The worker process (sort buffer included).")
    commands_bytes: int = Field(
        default=0, ge=0, description="The largest mapper/combiner/reducer command it ran."
    )

    def describe(self) -> str:
        text = f"{self.worker_bytes / MIB:.1f} MiB"
        if self.commands_bytes:
            text += f" (its commands: up to {self.commands_bytes / MIB:.1f} MiB)"
        return text

    def max(self, other: PeakMemory) -> PeakMemory:
        return PeakMemory(
            worker_bytes=max(self.worker_bytes, other.worker_bytes),
            commands_bytes=max(self.commands_bytes, other.commands_bytes),
        )


class TaskManifest(Model):
    kind: Literal["map", "reduce"]
    dag_id: str
    run_id: str
    task_index: int
    attempt: str
    files: list[PartFile]
    input_records: int
    output_records: int
    counters: Counters = Field(default_factory=dict)
    bad_records: int = Field(default=0, ge=0)
    bad_records_uri: str | None = Field(
        default=None, description="Dead-letter object of this attempt's skipped records."
    )
    peak_memory: PeakMemory | None = None
    input_bytes: int = Field(default=0, ge=0, description="Bytes of input the attempt read.")
    source: str = Field(default="", description="What the task read, e.g. 'split 3: a.txt'.")
    # Unix times of the attempt (manifests of older workers have none): what the UI's
    # durations and the phase metrics come from in every backend, queue mode included.
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def output_bytes(self) -> int:
        return sum(part.bytes for part in self.files)


class RunPlan(Model):
    """One step's plan (a one-step job has one): where it reads, writes and works."""

    dag_id: str
    run_id: str
    input_uris: list[str] = Field(
        min_length=1, description="The job's inputs; a later step reads the previous one's."
    )
    output_uri: str
    work_uri: str
    keep_intermediate: bool
    overwrite_output: bool = False
    num_map_tasks: int
    num_splits: int
    input_bytes: int
    job: JobRuntime
    skipped_inputs: list[str] = Field(
        default_factory=list, description="Hidden objects ('_' or '.' names) under the input."
    )
    step: int = Field(default=0, ge=0, description="0-based step of a multi-step job.")
    num_steps: int = Field(default=1, ge=1)
    previous_plan_uri: str | None = Field(
        default=None, description="The plan of the step before, whose output this one reads."
    )

    @property
    def input_uri(self) -> str:
        """The (first) input of the job."""
        return self.input_uris[0]

    @property
    def layout(self) -> RunLayout:
        """Where this step's objects live in the work area."""
        return RunLayout(self.work_uri, self.dag_id, self.run_id, self.step)

    @property
    def is_final_step(self) -> bool:
        """It writes the job's output (its parts are what the commit publishes)."""
        return self.step == self.num_steps - 1


class ShufflePlan(Model):
    num_reduce_tasks: int


def add_counters(total: Counters, more: Counters) -> None:
    for group, names in more.items():
        bucket = total.setdefault(group, {})
        for name, amount in names.items():
            bucket[name] = bucket.get(name, 0) + amount


class SamplePiece(Model):
    """Where the sampling reads: up to `records` of the lines starting in `split`."""

    split: InputSplit
    records: int = Field(ge=1)


class SampleTaskSpec(Model):
    """partitioner.kind total_order: run the mapper on these pieces of the input, at plan
    time, and pick the split points from its keys (worker/sampler.py)."""

    kind: Literal["sample"] = "sample"
    dag_id: str
    run_id: str
    job: JobRuntime
    pieces: list[SamplePiece]
    max_seconds: float = Field(gt=0)
    manifest_uri: str


class SampleManifest(Model):
    """What the sampling found: the split points and how much it read."""

    split_points: list[KeyBytes]
    records: int = Field(ge=0, description="Input records the mapper ran on.")
    keys: int = Field(ge=0, description="Keys the mapper emitted for them.")
    seconds: float = Field(ge=0)
    stopped_early: bool = Field(description="The time bound stopped it before every piece.")
