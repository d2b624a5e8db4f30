"""Pydantic models of a MapReduce job: the single source of truth for the YAML schema."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from airflow_mapreduce.job.base import Model, deep_merge
from airflow_mapreduce.job.dataplane import (
    DataPlaneSettings,
    check_comparator_fields,
    check_partition_fields,
)
from airflow_mapreduce.job.kubernetes import (
    Quantity,
    ResourcesSpec,
    SecurityContextSpec,
    TolerationSpec,
)
from airflow_mapreduce.job.quantities import ByteSize
from airflow_mapreduce.job.queue import QueueSpec
from airflow_mapreduce.job.shipped_files import ShippedFile, check_shipped_files
from airflow_mapreduce.job.validators import (
    CALLABLE,
    ENV_NAME_PATTERN,
    INT32_MAX,
    MAX_DURATION_SECONDS,
    URI_PATTERN,
    FieldError,
    ScheduleValue,
    check_schedule,
    check_uri,
)

# Airflow's own rule for dag and task ids (airflow.utils.helpers.KEY_REGEX).
DAG_ID_PATTERN = r"^[\w.-]+$"

Backend = Literal["local", "kubernetes", "kubernetes_job", "local_pool"]

MAX_REDUCERS = 100_000
MAX_TASKS = 100_000  # map tasks, reduce tasks, tasks at once

# An input's name: a part of its Trigger-form param's name (input_<name>).
INPUT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"
# Kubernetes object names (DNS-1123 subdomain).
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
K8sName = Annotated[str, StringConstraints(pattern=K8S_NAME_PATTERN, max_length=253)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
Uri = Annotated[str, AfterValidator(check_uri), Field(json_schema_extra={"pattern": URI_PATTERN})]
# A container image reference (registry/name:tag@digest): its grammar is the registry's to
# check; here only what no reference holds (whitespace, control characters) is refused.
IMAGE_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
Image = Annotated[str, StringConstraints(pattern=IMAGE_PATTERN, max_length=4096)]
_ASSET_URI_SCHEMA = {"type": "string", "pattern": URI_PATTERN, "description": "An asset URI."}
_ASSET_LIST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {"anyOf": [_ASSET_URI_SCHEMA, {"type": "object"}]},
}
Schedule = Annotated[
    ScheduleValue,
    PlainValidator(check_schedule),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "Cron expression or preset (@daily)."},
                {**_ASSET_LIST_SCHEMA, "description": "A run once every asset was updated."},
                {
                    "type": "object",
                    "properties": {
                        "any": _ASSET_LIST_SCHEMA,
                        "all": _ASSET_LIST_SCHEMA,
                        "alias": {"type": "string", "minLength": 1},
                    },
                    "additionalProperties": False,
                    "minProperties": 1,
                    "maxProperties": 1,
                },
            ]
        }
    ),
]


def _duration_not_bool(value: object) -> object:
    # pydantic reads true as 1 second; YAML turns yes/on into true.
    if isinstance(value, bool):
        raise ValueError(
            "expected a duration: seconds (3600), 'HH:MM:SS' or ISO 8601 (PT1H), found the "
            f"boolean {str(value).lower()} (YAML reads yes/no/on/off/true/false as booleans)"
        )
    return value


def _positive_duration(value: dt.timedelta) -> dt.timedelta:
    if not dt.timedelta(0) < value <= dt.timedelta(seconds=MAX_DURATION_SECONDS):
        raise ValueError(
            f"expected a duration above 0 and at most a year ({MAX_DURATION_SECONDS} s), "
            f"found {value.total_seconds():g} s; e.g. PT2H or 7200"
        )
    return value


Timeout = Annotated[
    dt.timedelta,
    BeforeValidator(_duration_not_bool),
    AfterValidator(_positive_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_SECONDS},
                {"type": "string"},
            ]
        }
    ),
]


class StepSpec(Model):
    """A mapper, combiner or reducer: a streaming command, a Python callable, or (combiner
    and reducer) a binary function that folds each key's values."""

    command: list[str] | None = Field(
        default=None,
        description="argv of an executable speaking the Hadoop Streaming contract "
        "(key<TAB>value lines on stdin/stdout). Relative paths resolve in the job's folder.",
    )
    callable: str | None = Field(
        default=None,
        description="'module:function' of a generator function yielding (key, value) pairs.",
    )
    reduce_by: str | None = Field(
        default=None,
        description="Combiner or reducer only: 'module:function' of an associative, "
        "commutative f(a, b) folding each key's values into one (Spark's reduceByKey), e.g. "
        "operator:add. As the reducer it is also the map-side combiner.",
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
        if value is not None and "" in value:
            raise FieldError(
                (value.index(""),),
                "empty argument: the command would get '' as this argument; remove it "
                "(or quote the text that was meant)",
            )
        return value

    @field_validator("callable", "reduce_by")
    @classmethod
    def _callable_shape(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not CALLABLE.match(value):
            example = (
                "operator:add"
                if info.field_name == "reduce_by"
                else "mapreduce_jobs.wordcount:mapper"
            )
            raise ValueError(f"expected 'package.module:function', found {value!r}; e.g. {example}")
        return value

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> StepSpec:
        if sum(kind is not None for kind in (self.command, self.callable, self.reduce_by)) != 1:
            raise ValueError(
                "give exactly one of 'command' (a Hadoop Streaming executable), "
                "'callable' ('module:function' of a generator) or, for a combiner or "
                "reducer, 'reduce_by' ('module:function' of f(a, b), e.g. operator:add)"
            )
        return self

    @property
    def kind(self) -> Literal["command", "callable", "reduce_by"]:
        if self.command is not None:
            return "command"
        return "callable" if self.callable is not None else "reduce_by"

    @property
    def python(self) -> str | None:
        """'module:function' of a Python step (callable or reduce_by); None for a command."""
        return self.callable or self.reduce_by


class InputSpec(Model):
    uri: Uri = Field(
        description="File, folder, glob or object prefix (file://, s3://, memory://; a plain "
        "path is relative to the YAML file). Jinja-templated, e.g. s3://logs/{{ ds }}/."
    )
    split_size: ByteSize = Field(
        default=64 * 1024**2, description="Target bytes per split (64MiB, 1GB, 1048576)."
    )
    name: str | None = Field(
        default=None,
        pattern=INPUT_NAME_PATTERN,
        description="inputs: only: names the input's Trigger-form param (input_<name>) and "
        "its streaming env mapreduce_map_input_name; default: its position (1, 2, ...).",
    )
    mapper: StepSpec | None = Field(
        default=None,
        description="inputs: only: this input's own mapper (Hadoop's MultipleInputs), e.g. "
        "one tagging each record with its source for a reduce-side join; default: the "
        "job's (or first step's) mapper.",
    )

    @field_validator("mapper")
    @classmethod
    def _mapper_maps(cls, value: StepSpec | None) -> StepSpec | None:
        if value is not None and value.reduce_by is not None:
            raise FieldError(
                "reduce_by",
                "reduce_by folds a key's values: give a mapper a 'command' or a 'callable'",
            )
        return value


class StorageSpec(Model):
    aws_conn_id: str = Field(
        default="aws_default",
        description="Airflow connection used by plan/shuffle/commit (and the local backend's "
        "workers) for s3:// URIs.",
    )


class KubernetesSpec(Model):
    image: Image = Field(
        default="airflow-mapreduce-worker:latest",
        description="Worker image: airflow-mapreduce[worker] plus the job's mapper/reducer files.",
    )
    map_image: Image | None = Field(
        default=None, description="Image of the map pods (and the work-queue Job); default: image."
    )
    reduce_image: Image | None = Field(
        default=None, description="Image of the reduce pods; default: image."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[K8sName] = Field(
        default_factory=list, description="Names of docker-registry Secrets."
    )
    namespace: K8sName = "default"
    kubernetes_conn_id: str = "kubernetes_default"
    service_account_name: K8sName | None = None
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Plain env vars (no secrets)."
    )
    env_from_secrets: list[K8sName] = Field(
        default_factory=list, description="Secrets whose keys become env vars."
    )
    env_from_config_maps: list[K8sName] = Field(
        default_factory=list, description="ConfigMaps whose keys become env vars."
    )
    storage_secret: K8sName | None = Field(
        default=None,
        description="Name of a Kubernetes Secret whose keys (AWS_ACCESS_KEY_ID, ...) become the "
        "pods' env; leave unset with IRSA/workload identity.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    cpu: Quantity | None = Field(
        default=None, description="CPU request and limit of every pod, e.g. '1' or 500m."
    )
    memory: Quantity | None = Field(
        default=None, description="Memory request and limit of every pod, e.g. 1Gi."
    )
    map_resources: ResourcesSpec | None = Field(
        default=None, description="requests/limits of map pods (instead of cpu/memory)."
    )
    reduce_resources: ResourcesSpec | None = Field(
        default=None, description="requests/limits of reduce pods (instead of cpu/memory)."
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[TolerationSpec] = Field(default_factory=list)
    affinity: dict[Literal["nodeAffinity", "podAffinity", "podAntiAffinity"], Any] = Field(
        default_factory=dict,
        description="Kubernetes Affinity exactly as in a pod spec (camelCase keys).",
    )
    security_context: SecurityContextSpec = Field(default_factory=SecurityContextSpec)
    pod_template_file: str | None = Field(
        default=None,
        description="A pod YAML the pods start from (relative to the job file); the "
        "settings above override it.",
    )
    startup_timeout_seconds: StrictInt = Field(default=300, ge=1, le=MAX_DURATION_SECONDS)
    deferrable: bool = Field(
        default=False, description="Wait for pods in the triggerer instead of a worker slot."
    )
    on_finish_action: Literal["delete_pod", "delete_succeeded_pod", "keep_pod"] = "delete_pod"
    startup_check_interval_seconds: StrictInt = Field(default=5, ge=1, le=MAX_DURATION_SECONDS)
    poll_interval_seconds: StrictFloat = Field(
        default=2, gt=0, le=MAX_DURATION_SECONDS, description="Deferrable mode's poll."
    )

    @field_validator("labels")
    @classmethod
    def _label_values(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(label):
                raise ValueError(
                    f"label {key}: {label!r} is not a valid Kubernetes label: keys are "
                    "[prefix/]name and values at most 63 characters of [A-Za-z0-9._-], "
                    "starting and ending alphanumeric"
                )
        return value

    def image_of(self, phase: str) -> str:
        """The image of the pods of `phase` ("map" or "reduce")."""
        own = self.map_image if phase == "map" else self.reduce_image
        return own if own is not None else self.image

    @model_validator(mode="after")
    def _one_way_to_size_pods(self) -> KubernetesSpec:
        if (self.cpu or self.memory) and (self.map_resources or self.reduce_resources):
            raise FieldError(
                "map_resources" if self.map_resources else "reduce_resources",
                "give either cpu/memory (same for every pod) or map_resources/"
                "reduce_resources (per phase), not both",
            )
        return self


class DagSettings(Model):
    """The DAG a job file becomes: id, schedule and the DAG-level settings. A
    MapReduceOperator in a DAG of the user's needs none of them."""

    dag_id: str = Field(pattern=DAG_ID_PATTERN, max_length=200)
    description: str | None = None
    schedule: Schedule | None = Field(
        default=None,
        description="Cron expression, preset (@daily), the assets a run waits for (a list "
        "of URIs: all of them; any:/all: lists, which nest; alias: an AssetAlias such as "
        "mapreduce:<dag_id>), or null (manual/API only).",
    )
    start_date: dt.date | dt.datetime | None = Field(
        default=None, description="First data interval's start (UTC unless an offset is given)."
    )
    end_date: dt.date | dt.datetime | None = None
    catchup: bool = Field(
        default=False, description="Run every missed interval since start_date (backfill)."
    )
    tags: list[str] = Field(default_factory=list)
    max_active_runs: StrictInt | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="Runs of this DAG at once; default: the deployment's "
        "[core] max_active_runs_per_dag (16 unless changed).",
    )
    dagrun_timeout: Timeout | None = Field(
        default=None, description="Seconds, 'HH:MM:SS' or ISO 8601 (PT2H); the run fails after it."
    )
    owner: str = "airflow"
    email: list[str] = Field(
        default_factory=list, description="Addresses told when a task fails (needs SMTP)."
    )
    email_on_failure: bool = True

    @field_validator("email")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            # 254: RFC 5321's limit, which also keeps the regex's backtracking small.
            if len(address) > 254 or not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", address):
                raise ValueError(
                    f"expected an e-mail address like team@example.com, found {address[:254]!r}"
                )
        return value

    @model_validator(mode="after")
    def _dates_fit_the_schedule(self) -> DagSettings:
        # An asset schedule has no intervals: it needs no start_date, nor can it catch up.
        timed = isinstance(self.schedule, str)
        if timed and self.start_date is None:
            raise FieldError(
                "schedule",
                f"schedule {self.schedule!r} needs a start_date (the first interval starts "
                "there); add e.g. start_date: 2024-01-01, or set schedule: null",
            )
        if self.catchup and self.schedule is None:
            raise FieldError("catchup", "catchup needs a schedule; set schedule or catchup: false")
        if self.catchup and not timed:
            raise FieldError(
                "catchup",
                "catchup needs a cron or preset schedule: an asset schedule has no intervals "
                "to catch up (a run follows each update); set catchup: false",
            )
        if (
            self.start_date
            and self.end_date
            and as_utc_datetime(self.end_date) < as_utc_datetime(self.start_date)
        ):
            raise FieldError(
                "end_date",
                f"end_date {self.end_date} is before start_date {self.start_date}; swap them",
            )
        return self


MAX_STEPS = 64
MAX_INPUTS = 64
# The mapper of a later step that gives none: records pass on unchanged.
IDENTITY_CALLABLE = "airflow_mapreduce.worker.callables:identity_mapper"
IDENTITY_COMMAND = ["cat"]
_STEP_FIELDS = ("mapper", "combiner", "reducer", "reducers")


class JobStep(DataPlaneSettings):
    """One step of a multi-step job (mrjob's MRStep): its mapper, combiner, reducer and
    reducers, and the data-plane settings it changes (the job's top-level ones are its
    defaults). A one-step job has these fields at its top level."""

    mapper: StepSpec | None = Field(
        default=None,
        description="In a step after the first, default: the identity (each record passes "
        "on as it is, to be re-partitioned by this step's reducers).",
    )
    combiner: StepSpec | None = None
    reducer: StepSpec | None = None
    reducers: StrictInt = Field(
        default=1, ge=0, le=MAX_REDUCERS, description="0 makes a map-only job (or step)."
    )

    def _checked_alone(self) -> bool:
        """Whether its rules apply to it as it is: a step of `steps:` is checked once
        merged with its job's top-level settings (JobSpec.pipeline)."""
        return False

    @model_validator(mode="after")
    def _fields_within_key(self) -> JobStep:
        if self._checked_alone():
            check_partition_fields(self.streaming, self.partitioner)
            check_comparator_fields(self.streaming, self.comparator)
        return self

    @model_validator(mode="before")
    @classmethod
    def _reduce_by_combines(cls, data: Any) -> Any:
        # A reduce_by reducer is associative and commutative, so it is also the map-side
        # combiner (as in Spark's reduceByKey) unless the job names another.
        if isinstance(data, dict) and data.get("combiner") is None:
            reducer = data.get("reducer")
            reduce_by = (
                reducer.get("reduce_by")
                if isinstance(reducer, dict)
                else getattr(reducer, "reduce_by", None)
            )
            if reduce_by is not None:
                return {**data, "combiner": {"reduce_by": reduce_by}}
        return data

    @model_validator(mode="after")
    def _mapper_maps(self) -> JobStep:
        if self.mapper is not None and self.mapper.reduce_by is not None:
            raise FieldError(
                ("mapper", "reduce_by"),
                "reduce_by folds the values of a key, so it can be the combiner or reducer "
                "only; give the mapper a 'command' or a 'callable'",
            )
        return self

    @model_validator(mode="after")
    def _reducer_matches_reducers(self) -> JobStep:
        if not self._checked_alone():
            return self
        if self.reducers > 0 and self.reducer is None:
            raise FieldError(
                "reducers",
                f"reducers is {self.reducers} but no 'reducer' is given; add a reducer "
                "or set reducers: 0 for a map-only job",
            )
        if self.reducers == 0 and self.reducer is not None:
            raise FieldError(
                "reducer", "reducers is 0 (map-only) but a 'reducer' is given; remove one"
            )
        if self.reducers == 0 and self.combiner is not None:
            raise FieldError(
                "combiner", "a combiner needs reducers >= 1; a map-only job has no shuffle"
            )
        return self

    @model_validator(mode="after")
    def _dataplane_consistent(self) -> JobStep:
        if not self._checked_alone():
            return self
        if self.partitioner.key_fields is not None and self.only_callables:
            raise ValueError(
                "partitioner.key_fields splits text keys of streaming commands; with only "
                "Python callables, keys are JSON values: partition on a key of its own instead"
            )
        if self.comparator.keys and self.only_callables:
            raise ValueError(
                "comparator.keys orders text keys of streaming commands; with only Python "
                "callables, keys are JSON values sorted by their encoding: make the key sort "
                "as wanted (e.g. zero-padded numbers), or use a streaming step"
            )
        if self.partitioner.kind == "total_order" and self.map_only:
            raise FieldError(
                ("partitioner", "kind"),
                "kind: total_order orders the reducers' output, but the job is map-only "
                "(reducers: 0); add a reducer (e.g. command: [cat]) or remove it",
            )
        return self

    @property
    def map_only(self) -> bool:
        return self.reducers == 0

    def _user_steps(self) -> list[StepSpec]:
        return [s for s in (self.mapper, self.combiner, self.reducer) if s is not None]

    @property
    def only_callables(self) -> bool:
        """Every step is a Python callable: records keep their types (the JSON codec)."""
        return all(s.python for s in self._user_steps())


class JobSpec(JobStep):
    """One MapReduce job: input(s), step(s), output, data plane, backend, pods; the keyword
    arguments of MapReduceOperator."""

    pool: str | None = Field(default=None, description="Airflow pool of the map/reduce tasks.")
    priority_weight: StrictInt = Field(
        default=1,
        ge=-INT32_MAX - 1,
        le=INT32_MAX,
        description="Airflow priority of map/reduce tasks.",
    )

    input: InputSpec | None = Field(
        default=None, description="What the job reads (or give inputs: for several)."
    )
    inputs: list[InputSpec] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INPUTS,
        description="Several inputs, each with its own mapper if it sets one (Hadoop's "
        "MultipleInputs), all into the same shuffle: a reduce-side join. Instead of input.",
    )
    steps: list[JobStep] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_STEPS,
        description="A pipeline of steps (mrjob's MRStep), each step's output the next "
        "one's input, all in one run; instead of mapper/combiner/reducer/reducers at the "
        "top level. The last step writes the output; the others' stays in the work area.",
    )
    output: Uri = Field(description="Output folder or prefix; Jinja-templated.")
    work: Uri | None = Field(
        default=None,
        description="Intermediate data root (default: <output>/_temporary), removed on commit.",
    )
    keep_intermediate: bool = False
    files: list[ShippedFile] = Field(
        default_factory=list,
        description="Files copied into every task's working folder before its commands start "
        "(Hadoop's -files): paths relative to the job file, or URIs; a path/URI alone is named "
        "after its last segment, {source: ..., name: ...} names it.",
    )
    overwrite_output: bool = Field(
        default=False,
        description="Let runs delete or replace objects in the output folder that no earlier "
        "run of this job recorded in its _manifest.json (like Spark's overwrite mode). By "
        "default a run refuses and names them.",
    )

    backend: Backend = "local"
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)

    max_map_tasks: StrictInt = Field(default=256, ge=1, le=MAX_TASKS)
    max_reduce_tasks: StrictInt = Field(default=64, ge=1, le=MAX_TASKS)
    max_parallel_tasks: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_TASKS,
        description="Map/reduce tasks (pods) running at once per run.",
    )
    retries: StrictInt = Field(default=2, ge=0, le=INT32_MAX)
    retry_delay_seconds: StrictInt = Field(default=10, ge=0, le=MAX_DURATION_SECONDS)
    task_timeout_seconds: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_DURATION_SECONDS,
        description="A map or reduce task (pod) running longer fails, its worker or pod is "
        "stopped, and retries apply (Airflow's execution_timeout).",
    )

    # Work-queue settings (queue-pulling backends).
    queue: QueueSpec = Field(
        default_factory=QueueSpec,
        description="Backends kubernetes_job and local_pool: map tasks pulled from Redis/NATS.",
    )

    def _checked_alone(self) -> bool:
        return self.steps is None

    @model_validator(mode="wrap")
    @classmethod
    def _required_listed_together(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # input and mapper are required unless inputs/steps stand in for them, which only
        # a model validator can tell, and those run once every field is valid: list them
        # with the other fields' problems, as pydantic lists missing fields together.
        try:
            return handler(data)
        except ValidationError as exc:
            if not isinstance(data, dict):
                raise
            missing = []
            if not {"input", "inputs"} & data.keys():
                missing.append(("input",))
            if not {"mapper", "steps", "inputs"} & data.keys():
                missing.append(("mapper",))
            errors = exc.errors()
            found = {tuple(error["loc"]) for error in errors}
            more: list[Any] = [
                {"type": "missing", "loc": loc, "input": data}
                for loc in missing
                if loc not in found
            ]
            if not more:
                raise
            details: list[Any] = [*errors, *more]
            raise ValidationError.from_exception_data(exc.title, details) from None

    @field_validator("files")
    @classmethod
    def _shipped_files(cls, value: list[ShippedFile]) -> list[ShippedFile]:
        return check_shipped_files(value)

    # Data-plane settings (streaming, partitioner, comparator, memory, formats, bad_records,
    # lifecycle) and their checks come from DataPlaneSettings and JobStep.

    @model_validator(mode="after")
    def _queue_secret_for_pods(self) -> JobSpec:
        if self.backend == "kubernetes_job" and not self.queue.secret:
            raise ValueError(
                "backend kubernetes_job needs queue.secret: the name of a Kubernetes Secret "
                "whose key 'url' holds the queue URL (e.g. redis://:password@redis:6379/0)"
            )
        return self

    @model_validator(mode="after")
    def _inputs_have_mappers(self) -> JobSpec:
        if (self.input is None) == (self.inputs is None):
            raise FieldError(
                "input",
                "give input: (one URI, or {uri: ..., split_size: ...}) or inputs: (a list of "
                "them, each with its own mapper if it needs one), exactly one of the two",
            )
        if self.input is not None:
            for name in ("name", "mapper"):
                if getattr(self.input, name) is not None:
                    raise FieldError(
                        ("input", name),
                        f"{name} belongs to an entry of inputs: (several inputs); with one "
                        "input, give the job's mapper instead, or use inputs: [...]",
                    )
        names = [spec.name for spec in self.inputs or [] if spec.name is not None]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise FieldError(
                    ("inputs", index, "name"), f"two inputs are named {name!r}; rename one"
                )
        first = self.steps[0].mapper if self.steps else self.mapper
        for index, spec in enumerate(self.all_inputs):
            if spec.mapper is not None or first is not None:
                continue
            if self.inputs is None and self.steps is None:
                raise FieldError("mapper", "required field is missing; add 'mapper:' here")
            raise FieldError(
                ("inputs", index) if self.inputs else ("steps", 0, "mapper"),
                "no mapper for this input: give the job a mapper (or the first step), "
                "or the input its own (inputs: [{uri: ..., mapper: {command: [...]}}])",
            )
        return self

    @model_validator(mode="after")
    def _steps_consistent(self) -> JobSpec:
        if self.steps is None:
            return self
        for name in _STEP_FIELDS:
            if name in self.model_fields_set:
                raise FieldError(
                    name,
                    f"with steps:, each step has its own {name}; move the top-level {name} "
                    "into the step it belongs to",
                )
        self.pipeline()  # each step merged with the job's settings obeys a job's rules
        return self

    @property
    def all_inputs(self) -> list[InputSpec]:
        """input, or the entries of inputs."""
        return [self.input] if self.input is not None else list(self.inputs or [])

    def input_name(self, index: int) -> str:
        """The Trigger-form param name of an input: input, or input_<name or position>."""
        if self.inputs is None:
            return "input"
        return f"input_{self.inputs[index].name or index + 1}"

    @property
    def output_reducers(self) -> int:
        """The reducers of the step that writes the output (a run may change them)."""
        return self.steps[-1].reducers if self.steps else self.reducers

    @property
    def map_only(self) -> bool:
        """The output is written by mappers (the last step is map-only)."""
        return self.output_reducers == 0

    @property
    def only_callables(self) -> bool:
        """Every step, and every input's mapper, is a Python callable: records keep their
        types through every shuffle (the JSON codec)."""
        steps: list[JobStep] = list(self.steps) if self.steps else [self]
        users = [s for step in steps for s in step._user_steps()]
        users += [spec.mapper for spec in self.all_inputs if spec.mapper is not None]
        return all(s.python for s in users)

    def pipeline(self) -> list[JobSpec]:
        """One single-step job per step, with the job's settings: each step's data-plane
        settings are the job's, deep-merged with those the step sets. Steps after the
        first read the previous step's output (their input is only nominal here)."""
        if self.steps is None:
            return [self]
        identity = (
            StepSpec(callable=IDENTITY_CALLABLE)
            if self.only_callables
            else StepSpec(command=IDENTITY_COMMAND)
        )
        own_fields = {"steps", "input", "inputs", *_STEP_FIELDS}
        shared = self.model_dump(include=set(JobSpec.model_fields) - own_fields)
        first_input = self.all_inputs[0]
        jobs = []
        for index, step in enumerate(self.steps):
            own = step.model_dump(exclude_unset=True)
            merged = deep_merge(shared, own)
            if index == 0:
                merged["input"] = self.input
                merged["inputs"] = self.inputs
            else:
                # Its splits: the previous step's parts, cut at the (first) input's size.
                merged["input"] = {"uri": first_input.uri, "split_size": first_input.split_size}
                merged.setdefault("mapper", identity)
            try:
                jobs.append(JobSpec.model_validate(merged))
            except ValidationError as exc:
                error = exc.errors()[0]
                cause = (error.get("ctx") or {}).get("error")
                field = cause.field if isinstance(cause, FieldError) else tuple(error["loc"])
                raise FieldError(("steps", index, *field), str(cause or error["msg"])) from None
        return jobs

    @property
    def uses_pods(self) -> bool:
        """Map/reduce tasks run as Kubernetes pods (kubernetes_job's reduces too)."""
        return self.backend in ("kubernetes", "kubernetes_job")


class JobFile(DagSettings, JobSpec):
    """A job YAML under dags/: the DAG's settings and its job, side by side in one flat file."""

    def job(self) -> JobSpec:
        """The job part, as a MapReduceOperator takes it."""
        # Only the fields set: with steps:, a top-level mapper must stay unset.
        fields = self.model_dump(include=set(JobSpec.model_fields), exclude_unset=True)
        return JobSpec.model_validate(fields)


def as_utc_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    """A YAML date or datetime as an aware datetime: naive ones and dates mean UTC."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
