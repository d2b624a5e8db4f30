"""Data-plane settings of a job: what happens to records inside a map or reduce task.

Streaming contract (Hadoop's ``stream.map.output.field.separator`` and
``stream.num.map.output.key.fields``), partitioning for secondary sort
(``KeyFieldBasedPartitioner``), the map-side sort buffer, input/output formats, the
bad-record budget and the per-task lifecycle (setup, teardown). Everything here travels in
task specs: no secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.job.quantities import ByteSize
from airflow_mapreduce.job.validators import CALLABLE, ENV_NAME, INT32_MAX, FieldError

MIN_SORT_BUFFER = 64 * 1024
MAX_SAMPLES = 1_000_000

Compression = Literal["gzip", "bz2", "zstd"]


class StreamingSettings(Model):
    """How a streaming command's output lines become (key, value) records."""

    separator: str = Field(
        default="\t",
        min_length=1,
        description="Field separator of mapper output lines "
        "(Hadoop: stream.map.output.field.separator). A line without it is all key.",
    )
    key_fields: StrictInt = Field(
        default=1,
        ge=1,
        le=64,
        description="How many leading fields form the key; the rest is the value "
        "(Hadoop: stream.num.map.output.key.fields). Fewer fields: the whole line is the key.",
    )
    cmdenv: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables for the job's commands (Hadoop: -cmdenv). "
        "Plain values only; secrets belong in kubernetes.storage_secret or the image.",
    )
    per_split_env: bool = Field(
        default=False,
        description="Start the streaming mapper once per input split, each process with "
        "its split's mapreduce_map_input_file/_start/_length. Default: once per map task "
        "(fast with many small files); a task of several splits then has none of those.",
    )

    @field_validator("cmdenv")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [name for name in value if not ENV_NAME.match(name)]
        if bad:
            raise ValueError(
                f"invalid environment variable name(s) {bad}; expected letters, digits and "
                "underscores, not starting with a digit (e.g. MY_SETTING)"
            )
        return value


class PartitionerSettings(Model):
    """Which reduce partition a record goes to: a stable hash of the key (or of its first
    fields: KeyFieldBasedPartitioner -k1,N), or its place among split points sampled at
    plan time (TotalOrderPartitioner with InputSampler)."""

    kind: Literal["hash", "total_order"] = Field(
        default="hash",
        description="hash: crc32 of the key picks the partition. total_order: the plan step "
        "runs the mapper on a sample of the input and cuts the sampled keys' range into "
        "ranges of about equal records, one per reducer, so part-00000, part-00001, ... "
        "concatenated are sorted by key (in the comparator's order).",
    )
    key_fields: StrictInt | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Partition on the first N fields of the key only; the remaining key "
        "fields still sort records within the partition (secondary sort). "
        "Default: the whole key.",
    )
    samples: StrictInt = Field(
        default=10_000,
        ge=1,
        le=MAX_SAMPLES,
        description="total_order: input records the plan step runs the mapper on, taken "
        "from evenly spaced places of the whole input (Hadoop InputSampler's numSamples).",
    )
    sample_seconds: StrictInt = Field(
        default=60,
        ge=1,
        le=3600,
        description="total_order: the sampling stops taking input records after this long; "
        "the keys found so far pick the split points.",
    )

    @model_validator(mode="after")
    def _sampling_needs_total_order(self) -> PartitionerSettings:
        if self.kind == "hash":
            for name in ("samples", "sample_seconds"):
                # (by value, not model_fields_set: task specs carry every field)
                if getattr(self, name) != type(self).model_fields[name].default:
                    raise FieldError(
                        name,
                        f"{name} sets the sampling of kind: total_order; add "
                        "kind: total_order or remove it",
                    )
        elif self.key_fields is not None:
            raise FieldError(
                "key_fields",
                "kind: total_order ranges whole keys in the comparator's order; partitioning "
                "on leading key fields (key_fields) is for hash partitioning; remove one",
            )
        return self


class SortKey(Model):
    """One key field to sort on (KeyFieldBasedComparator's -k<field>,<field>[n][r])."""

    field: StrictInt = Field(ge=1, le=64, description="1-based field of the key.")
    numeric: bool = Field(
        default=False,
        description="Compare as numbers (10 after 9); text that is not a number sorts after "
        "every number, in bytes order.",
    )
    reverse: bool = Field(default=False, description="Descending order.")


class ComparatorSettings(Model):
    """How keys are ordered (Hadoop: mapreduce.partition.keycomparator.options)."""

    keys: list[SortKey] = Field(
        default_factory=list,
        description="Sort on these key fields, in this order, e.g. [{field: 1}, {field: 2, "
        "numeric: true, reverse: true}] for Hadoop's '-k1,1 -k2,2nr'. Ties (and the default, "
        "no fields) are ordered by the key's bytes.",
    )


class MemorySettings(Model):
    sort_buffer: ByteSize = Field(
        default=64 * 1024**2,
        description="Map-side sort buffer (Hadoop: mapreduce.task.io.sort.mb). When full, "
        "records are sorted, combined and spilled to local disk (TMPDIR), then merged. In a "
        "job with a combiner and a streaming command, GNU sort (if the worker has it) sorts "
        "the map output within a quarter of this; the combiner's output gets the rest.",
    )

    @field_validator("sort_buffer")
    @classmethod
    def _at_least_minimum(cls, value: int) -> int:
        if value < MIN_SORT_BUFFER:
            raise ValueError(f"expected a sort_buffer of at least 64KiB, found {value} bytes")
        return value


class FormatSettings(Model):
    input: Literal["text", "jsonlines"] = Field(
        default="text",
        description="text: each line is a record. jsonlines: each line is one JSON work "
        "item; Python mappers receive the parsed object, bad JSON is a bad record.",
    )
    output: Literal["text", "jsonlines"] = Field(
        default="text",
        description='text: key<TAB>value lines. jsonlines: {"key": ..., "value": ...} lines.',
    )
    compression: Compression | None = Field(
        default=None, description="Compress output parts (adds .gz, .bz2 or .zst)."
    )


class BadRecordSettings(Model):
    """Records that make a mapper fail go to a dead-letter object instead, within a budget."""

    max_count: StrictInt = Field(
        default=0,
        ge=0,
        le=INT32_MAX,
        description="Bad records a map task may skip (0: fail on the first).",
    )
    max_ratio: StrictFloat | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Alternatively, the fraction of a map task's input records that may be bad.",
    )

    @property
    def enabled(self) -> bool:
        return self.max_count > 0 or self.max_ratio is not None


class LifecycleSettings(Model):
    """Python functions ('module:function', no arguments) run once per map or reduce task."""

    setup: str | None = Field(default=None, description="Runs before the task's first record.")
    teardown: str | None = Field(
        default=None, description="Runs after the task's last record, also when it fails."
    )

    @field_validator("setup", "teardown")
    @classmethod
    def _callable_shape(cls, value: str | None) -> str | None:
        if value is not None and not CALLABLE.match(value):
            raise ValueError(
                f"expected 'package.module:function', found {value!r}; e.g. my_job.lifecycle:setup"
            )
        return value


class DataPlaneSettings(Model):
    """The data-plane fields, declared once: a job's YAML has them at its top level
    (JobSpec) and the worker receives them in each task spec (DataPlane)."""

    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    partitioner: PartitionerSettings = Field(default_factory=PartitionerSettings)
    comparator: ComparatorSettings = Field(default_factory=ComparatorSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    formats: FormatSettings = Field(default_factory=FormatSettings)
    bad_records: BadRecordSettings = Field(default_factory=BadRecordSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)

    @model_validator(mode="after")
    def _fields_within_key(self) -> DataPlaneSettings:
        check_partition_fields(self.streaming, self.partitioner)
        check_comparator_fields(self.streaming, self.comparator)
        return self


class DataPlane(DataPlaneSettings):
    """The data-plane settings of a job, as the worker receives them."""


def check_partition_fields(streaming: StreamingSettings, partitioner: PartitionerSettings) -> None:
    fields = partitioner.key_fields
    if fields is not None and fields > streaming.key_fields:
        raise ValueError(
            f"partitioner.key_fields is {fields} but the key has only "
            f"streaming.key_fields={streaming.key_fields} field(s); partition on at "
            "most as many fields as the key has"
        )


def check_comparator_fields(streaming: StreamingSettings, comparator: ComparatorSettings) -> None:
    for index, key in enumerate(comparator.keys):
        if key.field > streaming.key_fields:
            raise ValueError(
                f"comparator.keys[{index}].field is {key.field} but the key has only "
                f"streaming.key_fields={streaming.key_fields} field(s); sort on a field of "
                "the key, or raise streaming.key_fields"
            )
