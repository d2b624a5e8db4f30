"""The classic word-count jobs through every phase, compared with collections.Counter."""

from __future__ import annotations

import collections

import pytest

from airflow_mapreduce.job import parse_job_text
from tests.wordcount import output_counts, read_parts

STREAMING = "mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}\n"
CALLABLES = (
    "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n"
    "combiner: {callable: mapreduce_jobs.wordcount_callables:combiner}\n"
)
# The benchmark's in-mapper-combining variants (bench/wordcount_bench.py b2, c2).
MAPPERS = {
    "streaming": STREAMING,
    "callables": CALLABLES,
    "combining": (
        "mapper: {command: [python3, mapreduce_jobs/wordcount/mapper_combining.py]}\n"
        "combiner: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n"
    ),
    "batch": (
        "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper_batch}\n"
        "combiner: {callable: mapreduce_jobs.wordcount_callables:combiner}\n"
    ),
    # no combiner: a reduce_by reducer is its own (bench b3, b4)
    "batch_alone": "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper_batch}\n",
    "callable_alone": "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n",
}
REDUCERS = {
    "dict": "reducer: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n",
    "current_word": (
        "reducer: {command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}\n"
    ),
    "callable": "reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}\n",
    "reduce_by": "reducer: {reduce_by: 'operator:add'}\n",
}


def job_text(steps: str, reducers: int = 3, split_size: str = "256KiB") -> str:
    return (
        f"dag_id: wc\ninput: {{uri: unused, split_size: {split_size}}}\n"
        f"{steps}reducers: {reducers}\noutput: unused\n"
    )


@pytest.mark.parametrize(
    ("mapper", "reducer"),
    [("streaming", "dict"), ("streaming", "current_word"), ("callables", "callable"),
     ("streaming", "callable"), ("callables", "current_word"), ("combining", "dict"),
     ("batch", "callable"), ("batch_alone", "reduce_by"), ("callable_alone", "reduce_by"),
     ("callables", "reduce_by")],
)  # fmt: skip
def test_word_count_matches_counter(run_job, word_corpus, tmp_path, mapper, reducer) -> None:  # type: ignore[no-untyped-def]
    steps = MAPPERS[mapper] + REDUCERS[reducer]
    job = parse_job_text(job_text(steps))
    manifest = run_job(job, f"file://{word_corpus.folder}", f"file://{tmp_path}/out")
    assert output_counts(tmp_path / "out") == word_corpus.counts
    assert sorted(read_parts(tmp_path / "out")) == ["part-00000", "part-00001", "part-00002"]
    assert manifest.records == len(word_corpus.counts)
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert not (tmp_path / "out" / "_temporary").exists()
    mapped = manifest.counters["airflow-mapreduce"]["map_input_records"]
    assert mapped == sum(len(p.read_bytes().splitlines()) for p in word_corpus.folder.iterdir())


def test_reducer_input_is_sorted_and_grouped_per_partition(run_job, word_corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # An identity reducer shows exactly what a streaming reducer receives on stdin.
    steps = STREAMING + "reducer: {command: [cat]}\n"
    run_job(parse_job_text(job_text(steps, reducers=2)), f"file://{word_corpus.folder}",
            f"file://{tmp_path}/out")  # fmt: skip
    total = 0
    for data in read_parts(tmp_path / "out").values():
        keys = [line.split(b"\t")[0] for line in data.splitlines()]
        assert keys == sorted(keys)
        total += len(keys)
    assert total == sum(word_corpus.counts.values())


def test_map_only_job_writes_mapper_output(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x y\nz\n")
    job = parse_job_text(job_text(STREAMING, reducers=0))
    manifest = run_job(job, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert read_parts(tmp_path / "out") == {"part-m-00000": b"x\t1\ny\t1\nz\t1\n"}
    assert manifest.records == 3


def test_fewer_reducers_than_before_leaves_no_stale_parts(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("a b c d e f g h a b\n")
    out = f"file://{tmp_path}/out"
    steps = CALLABLES + REDUCERS["callable"]
    run_job(parse_job_text(job_text(steps, reducers=5)), f"file://{tmp_path}/in", out)
    run_job(parse_job_text(job_text(steps, reducers=2)), f"file://{tmp_path}/in", out)
    assert sorted(read_parts(tmp_path / "out")) == ["part-00000", "part-00001"]
    expected = collections.Counter(["a", "b", "c", "d", "e", "f", "g", "h", "a", "b"])
    assert output_counts(tmp_path / "out") == expected
