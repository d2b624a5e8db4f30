"""steps: and inputs: in the job model: how a step inherits the job's settings, and what a
run's plan gives each map task (the errors are in the invalid corpus)."""

from __future__ import annotations

from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.job.models import IDENTITY_CALLABLE, IDENTITY_COMMAND
from airflow_mapreduce.plan.tasks import JobRuntime

PIPELINE = """\
dag_id: steps
input: {uri: /data/in}
streaming: {key_fields: 2, cmdenv: {LANG: C}}
memory: {sort_buffer: 8MiB}
formats: {output: jsonlines, compression: gzip}
steps:
  - mapper: {command: [python3, m.py]}
    reducer: {command: [python3, r.py]}
    reducers: 4
    streaming: {separator: ","}
  - reducer: {command: [python3, r2.py]}
    comparator: {keys: [{field: 2, numeric: true}]}
  - reducers: 0
output: /data/out
"""


def test_a_step_inherits_the_jobs_settings_and_deep_merges_its_own() -> None:
    job = parse_job_text(PIPELINE)
    first, second, third = job.pipeline()
    # streaming merged key by key: the step's separator, the job's key_fields and cmdenv
    assert first.streaming.separator == ","
    assert first.streaming.key_fields == 2 and first.streaming.cmdenv == {"LANG": "C"}
    assert second.streaming.separator == "\t"
    assert [k.field for k in second.comparator.keys] == [2] and not first.comparator.keys
    assert {s.memory.sort_buffer for s in (first, second, third)} == {8 * 1024**2}
    assert (first.reducers, second.reducers, third.reducers) == (4, 1, 0)
    assert job.output_reducers == 0 and job.map_only


def test_a_later_step_without_a_mapper_gets_the_identity_of_the_jobs_kind() -> None:
    streaming = parse_job_text(PIPELINE).pipeline()
    assert streaming[1].mapper is not None and streaming[1].mapper.command == IDENTITY_COMMAND
    python = parse_job_text(
        PIPELINE.replace("{command: [python3, m.py]}", "{callable: 'a:m'}")
        .replace("{command: [python3, r.py]}", "{callable: 'a:r'}")
        .replace("{command: [python3, r2.py]}", "{callable: 'a:r2'}")
        .replace("    comparator: {keys: [{field: 2, numeric: true}]}\n", "")
    ).pipeline()
    assert python[2].mapper is not None and python[2].mapper.callable == IDENTITY_CALLABLE


def test_each_input_brings_its_mapper_or_the_jobs() -> None:
    job = parse_job_text(
        """\
dag_id: join
inputs:
  - {uri: /data/users, name: users, mapper: {command: [tag, "0"]}}
  - {uri: /data/events}
mapper: {command: [tag, "1"]}
reducer: {command: [join]}
output: /data/out
"""
    )
    runtime = JobRuntime.from_job(job, 1)
    assert [(i.name, i.mapper.command) for i in runtime.inputs] == [
        ("users", ["tag", "0"]),
        ("2", ["tag", "1"]),
    ]
    assert runtime.mapper_of(0).command == ["tag", "0"]
    assert runtime.mapper_of(1).command == ["tag", "1"]
    assert [job.input_name(i) for i in range(2)] == ["input_users", "input_2"]


def test_later_steps_cut_the_previous_output_at_the_inputs_split_size() -> None:
    job = parse_job_text(
        PIPELINE.replace("input: {uri: /data/in}", "input: {uri: /in, split_size: 1MiB}")
    )
    assert {step.all_inputs[0].split_size for step in job.pipeline()} == {1024**2}
