"""Multi-step jobs (steps:) and multiple inputs (inputs:) through the driver, every task in
this process, on local files and on a real S3 server (SeaweedFS); each output against a
reference computed with plain Python (tests/pipelines.py). Retries and reruns of a step,
the output's guarantees (one commit, nothing foreign touched) and what the commit records
of earlier steps (counters, dead letters)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.errors import PlanRefusedError, TaskFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.job.models import JobFile
from airflow_mapreduce.plan.commit import OutputManifest, commit_run
from airflow_mapreduce.plan.driver import Phase, run_phases
from airflow_mapreduce.plan.planner import PlannedRun, RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.run import run_task
from tests.example_references import events_by_country, write_users_and_events
from tests.pipelines import (
    JobFolder,
    job_yaml,
    output_records,
    reference,
    word_reference,
    write_job_folder,
)
from tests.wordcount import read_parts


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobFolder:
    written = write_job_folder(tmp_path / "job")
    monkeypatch.chdir(written.folder)  # the streaming scripts' relative paths
    monkeypatch.syspath_prepend(str(written.folder))  # the callables' module
    return written


def load(jobs: JobFolder, kind: str, output: str, **more: Any) -> JobFile:
    return parse_job_text(job_yaml(f"multi_{kind}", kind, jobs, output, **more))


def target(
    job: JobFile, output: str, run_id: str = "r1", inputs: tuple[str, ...] = ()
) -> RunTarget:
    uris = inputs or tuple(f"file://{entry.uri}" for entry in job.all_inputs)
    return RunTarget(job.dag_id, run_id, uris, output, None, job.output_reducers, 6)


def run_all(files: FileSystems, job: JobFile, run: RunTarget) -> OutputManifest:
    def run_tasks(phase: Phase, spec_uris: list[str]) -> None:
        for uri in spec_uris:
            run_task(uri, files)

    return run_phases(files, job, run, run_tasks, max_reduce_tasks=2)


@pytest.mark.parametrize("kind", ["pipeline", "mixed", "join"])
def test_the_output_matches_the_python_reference_on_local_files(
    jobs: JobFolder, tmp_path: Path, kind: str
) -> None:
    output = tmp_path / "out"
    job = load(jobs, kind, str(output))
    manifest = run_all(FileSystems(), job, target(job, f"file://{output}"))

    assert output_records(read_parts(output)) == reference(jobs, kind)
    assert manifest.records == len(reference(jobs, kind))
    # One commit, of the last step's parts only: earlier steps' stayed in the work area,
    # which is gone.
    names = sorted(p.name for p in output.iterdir())
    expected_parts = {"pipeline": ["part-m-"], "mixed": ["part-m-"], "join": ["part-0"]}[kind]
    assert all(n.startswith((*expected_parts, "_")) for n in names), names
    assert {"_SUCCESS", "_manifest.json", "_job_history.json"} <= set(names)
    assert not (output / "_temporary").exists()


def test_earlier_steps_counters_are_recorded_under_their_step(
    jobs: JobFolder, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    job = load(jobs, "pipeline", str(output))
    manifest = run_all(FileSystems(), job, target(job, f"file://{output}"))

    counts = reference(jobs, "pipeline")
    words = sum(len(path.read_text(encoding="utf-8").split()) for path in jobs.text.iterdir())
    lines = sum(len(path.read_text(encoding="utf-8").splitlines()) for path in jobs.text.iterdir())
    first = manifest.counters["step 1: airflow-mapreduce"]
    assert first["map_input_records"] == lines
    assert first["combine_input_records"] == words
    distinct = len(
        set(" ".join(p.read_text(encoding="utf-8") for p in jobs.text.iterdir()).split())
    )
    assert first["reduce_output_records"] == distinct
    second = manifest.counters["step 2: airflow-mapreduce"]
    assert second["map_input_records"] == distinct  # step 1's records, one per word
    # The last step (map-only here) keeps the plain group name: it read step 2's records,
    # one per distinct count, and wrote those of counts >= 2.
    distinct_counts = len(set(word_reference(jobs).values()))
    assert manifest.counters["airflow-mapreduce"]["map_input_records"] == distinct_counts
    assert manifest.records == len(counts) < distinct_counts


def test_a_later_step_mapper_reads_key_and_value_and_its_bad_records_go_to_its_own_dead_letters(
    jobs: JobFolder, tmp_path: Path
) -> None:
    (jobs.text / "bad.txt").write_text("badword badword other\nbadder\n")
    output = tmp_path / "out"
    text = job_yaml("multi_bad", "pipeline", jobs, str(output))
    text = text.replace("pipeline_steps:by_count", "pipeline_steps:strict_by_count")
    job = parse_job_text(text + "bad_records: {max_count: 5}\n")
    manifest = run_all(FileSystems(), job, target(job, f"file://{output}"))

    dead = sorted((output / "_bad_records").iterdir())
    assert [p.name.startswith("step-2-map-") for p in dead] == [True] * len(dead) and dead
    skipped = [json.loads(line) for p in dead for line in p.read_text().splitlines()]
    # The records as step 1 handed them over: JSON lines of its (key, value).
    assert sorted(list(json.loads(s["record"]).items()) for s in skipped) == [
        [("key", "badder"), ("value", 1)],
        [("key", "badword"), ("value", 2)],
    ]
    assert manifest.counters["step 2: airflow-mapreduce"]["bad_records"] == 2
    assert len(manifest.bad_records) == len(dead)


class StepByStep:
    """A run driven step by step as Airflow's tasks drive it, to fail and retry one."""

    def __init__(self, files: FileSystems, job: JobFile, run: RunTarget) -> None:
        self.files, self.job, self.run = files, job, run
        self.plans: list[PlannedRun] = []

    def plan(self, step: int) -> PlannedRun:
        previous = self.plans[step - 1].plan_uri if step else None
        planned = plan_run(self.files, self.job, self.run, step=step, previous_plan_uri=previous)
        self.plans[step:] = [planned]
        return planned

    def maps(self, step: int) -> None:
        for uri in self.plans[step].map_specs:
            run_task(uri, self.files)

    def reduces(self, step: int) -> list[str]:
        return shuffle_run(self.files, self.plans[step].plan_uri, 2)

    def whole(self, step: int) -> None:
        """Plan, maps and (unless map-only) reduces of a step."""
        self.plan(step)
        self.maps(step)
        if self.plans[step].plan.job.num_partitions:
            for uri in self.reduces(step):
                run_task(uri, self.files)

    def commit(self) -> OutputManifest:
        return commit_run(self.files, self.plans[-1].plan_uri)


def test_a_failed_reduce_of_a_later_step_is_retried_alone(
    jobs: JobFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "fail-once"
    marker.write_text("")
    monkeypatch.setenv("FLAKY_MARKER", str(marker))
    output = tmp_path / "out"
    text = job_yaml("multi_retry", "mixed", jobs, str(output))
    job = parse_job_text(text.replace("pipeline_steps:total", "pipeline_steps:flaky_total"))
    files = FileSystems()
    run = StepByStep(files, job, target(job, f"file://{output}"))
    run.whole(0)
    run.plan(1), run.maps(1)
    first, *others = run.reduces(1)
    with pytest.raises(TaskFailedError, match="flaky reducer"):
        run_task(first, files)
    run_task(first, files)  # the retry: a new attempt of the same task
    for uri in others:
        run_task(uri, files)
    run.whole(2)
    run.commit()

    assert output_records(read_parts(output)) == reference(jobs, "mixed")


def test_a_rerun_of_a_later_step_plan_keeps_the_earlier_step_output(
    jobs: JobFolder, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    job = load(jobs, "pipeline", str(output))
    files = FileSystems()
    run = StepByStep(files, job, target(job, f"file://{output}"))
    run.whole(0)
    run.plan(1), run.maps(1)
    stale = run.plans[1].plan.job
    run.whole(1)  # cleared in Airflow: the step's own folder is planned anew
    assert run.plans[1].plan.job == stale
    run.whole(2)
    run.commit()

    assert output_records(read_parts(output)) == reference(jobs, "pipeline")


@pytest.mark.parametrize(
    ("kind", "codec", "handover"), [("pipeline", "json", "jsonlines"), ("mixed", "raw", "text")]
)
def test_one_codec_for_the_whole_pipeline_and_an_uncompressed_handover(
    jobs: JobFolder, tmp_path: Path, kind: str, codec: str, handover: str
) -> None:
    output = tmp_path / "out"
    job = load(jobs, kind, str(output), formats={"output": "jsonlines", "compression": "gzip"})
    files = FileSystems()
    run = StepByStep(files, job, target(job, f"file://{output}"))
    run.whole(0)
    second = run.plan(1).plan.job
    # (mixed: step 2 is Python only, yet its records are text as the streaming step's)
    assert [run.plans[0].plan.job.codec, second.codec] == [codec, codec]
    first_formats = run.plans[0].plan.job.dataplane.formats
    assert (first_formats.output, first_formats.compression) == (handover, None)
    assert second.dataplane.formats.input == handover and second.input_pairs
    assert second.dataplane.formats.compression is None  # step 3 writes the output
    run.whole(1)
    last = run.plan(2).plan.job.dataplane.formats
    assert (last.output, last.compression) == ("jsonlines", "gzip")


def test_a_later_step_refuses_once_another_run_took_the_output(
    jobs: JobFolder, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    job = load(jobs, "pipeline", str(output))
    files = FileSystems()
    first = StepByStep(files, job, target(job, f"file://{output}", "first"))
    first.whole(0)
    # Another run of the job takes the output over (the first one is no longer running).
    plan_run(files, job, target(job, f"file://{output}", "second"), is_running=lambda _: False)

    with pytest.raises(PlanRefusedError, match="taken over by"):
        first.plan(1)


def test_the_first_step_refuses_an_output_holding_foreign_objects_before_any_work(
    jobs: JobFolder, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "report.csv").write_text("not this job's\n")
    job = load(jobs, "join", str(output))
    with pytest.raises(PlanRefusedError, match=r"report\.csv"):
        run_all(FileSystems(), job, target(job, f"file://{output}"))
    assert sorted(p.name for p in output.iterdir()) == ["report.csv"]


def test_a_join_shares_the_map_tasks_across_inputs_each_task_of_one_input(
    jobs: JobFolder, tmp_path: Path
) -> None:
    job = load(jobs, "join", str(tmp_path / "out"))
    files = FileSystems()
    planned = plan_run(files, job, target(job, f"file://{tmp_path}/out"))
    specs = [json.loads(files.read_bytes(uri)) for uri in planned.map_specs]
    inputs = [{split["input"] for split in spec["splits"]} for spec in specs]
    assert all(len(found) == 1 for found in inputs)  # one mapper per task
    assert {0, 1} == set().union(*inputs)
    assert len(specs) <= 6  # max_map_tasks, shared across the inputs
    assert [m["name"] for m in specs[0]["job"]["inputs"]] == ["users", "orders"]


def test_a_run_giving_the_wrong_number_of_inputs_is_refused(
    jobs: JobFolder, tmp_path: Path
) -> None:
    job = load(jobs, "join", str(tmp_path / "out"))
    run = target(job, f"file://{tmp_path}/out", inputs=(f"file://{jobs.users}",))
    with pytest.raises(PlanRefusedError, match="reads 2 input"):
        plan_run(FileSystems(), job, run)


@pytest.fixture
def bucket(s3_server) -> Iterator[tuple[Any, str]]:  # type: ignore[no-untyped-def]
    s3 = s3_server.filesystem()
    name = f"multi-{uuid.uuid4().hex[:10]}"
    s3.mkdir(name)
    yield s3, name


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["pipeline", "join"])
def test_the_output_matches_the_python_reference_on_s3(
    jobs: JobFolder, bucket: tuple[Any, str], kind: str
) -> None:
    s3, name = bucket
    for folder in (jobs.text, jobs.users, jobs.orders):
        s3.put(f"{folder}/", f"{name}/{folder.name}/", recursive=True)
    output = f"s3://{name}/out"
    job = load(jobs, kind, output)
    inputs = tuple(f"s3://{name}/{Path(entry.uri).name}/" for entry in job.all_inputs)
    files = FileSystems({"s3": s3})

    run_all(files, job, target(job, output, inputs=inputs))

    s3.invalidate_cache()
    parts = {p.rsplit("/", 1)[1]: s3.cat(p) for p in s3.find(f"{name}/out") if "/part-" in p}
    assert output_records(parts) == reference(jobs, kind)
    assert [p for p in s3.find(f"{name}/out") if "/_temporary" in p] == []


def test_a_retried_commit_after_the_cleanup_finds_the_committed_output(
    jobs: JobFolder, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    job = load(jobs, "pipeline", str(output))
    files = FileSystems()
    plans: list[str] = []

    def run_tasks(phase: Phase, spec_uris: list[str]) -> None:
        for uri in spec_uris:
            run_task(uri, files)

    def on_plan(plan: Any) -> None:
        plans.append(plan.layout.plan_uri)

    first = run_phases(files, job, target(job, f"file://{output}"), run_tasks, on_plan=on_plan)
    assert plans[-1].endswith("/_temporary/multi_pipeline/r1/step-3/plan.json")
    assert not (output / "_temporary").exists()  # the plan is gone with the work area

    again = commit_run(files, plans[-1])  # Airflow retrying a commit whose cleanup finished
    assert again == first
    assert output_records(read_parts(output)) == reference(jobs, "pipeline")


DAGS = Path(__file__).resolve().parents[2] / "dags"
SWAP = """\
import sys
for line in sys.stdin:
    key, value = line.rstrip("\\n").split("\\t")
    print(f"{value}\\t{key}")
"""


def test_a_later_step_sorts_the_whole_output_by_count(jobs: JobFolder, tmp_path: Path) -> None:
    # Word count, then a total order on the counts, largest first, over three reducers.
    (jobs.folder / "swap.py").write_text(SWAP)
    output = tmp_path / "out"
    job = parse_job_text(
        f"""dag_id: sorted_counts
input: {{uri: {jobs.text}, split_size: 2KiB}}
steps:
  - mapper: {{command: [python3, wc_mapper.py]}}
    reducer: {{command: [python3, wc_reducer.py]}}
    reducers: 2
  - mapper: {{command: [python3, swap.py]}}
    reducer: {{command: [cat]}}
    reducers: 3
    partitioner: {{kind: total_order, samples: 200}}
    comparator: {{keys: [{{field: 1, numeric: true, reverse: true}}]}}
output: {output}
"""
    )
    run_all(FileSystems(), job, target(job, f"file://{output}"))

    lines = [
        line.split("\t")
        for part in sorted(output.glob("part-*"))
        for line in part.read_text(encoding="utf-8").splitlines()
    ]
    counts = [int(count) for count, _ in lines]
    assert counts == sorted(counts, reverse=True)  # part-00000, -00001, -00002 in order
    assert {word: int(count) for count, word in lines} == dict(word_reference(jobs))
    assert len([p for p in output.glob("part-*") if p.stat().st_size]) >= 2


def test_a_join_feeds_an_aggregating_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users, events = write_users_and_events(tmp_path / "data")
    monkeypatch.chdir(DAGS)
    output = tmp_path / "out"
    tag = "[python3, mapreduce_jobs/join/tag.py"
    job = parse_job_text(
        f"""dag_id: join_then_count
inputs:
  - {{name: users, uri: {users}, mapper: {{command: {tag}, "0"]}}}}
  - {{name: events, uri: {events}, mapper: {{command: {tag}, "1"]}}}}
streaming: {{key_fields: 2}}
steps:
  - reducer: {{command: [python3, mapreduce_jobs/join/reducer.py]}}
    reducers: 2
    partitioner: {{key_fields: 1}}
    comparator: {{keys: [{{field: 1}}, {{field: 2}}]}}
  - mapper: {{command: [awk, '-F\\t', '{{print $4 "\\t1"}}']}}
    streaming: {{key_fields: 1}}
    reducer: {{command: [python3, mapreduce_jobs/wordcount/reducer.py]}}
    reducers: 2
output: {output}
"""
    )
    run_all(FileSystems(), job, target(job, f"file://{output}"))

    per_country: dict[str, int] = {}
    for line in events_by_country(users, events).elements():
        country = line.split("\t")[3]
        per_country[country] = per_country.get(country, 0) + 1
    assert output_records(read_parts(output)) == {c: str(n) for c, n in per_country.items()}
