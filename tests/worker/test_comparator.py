"""Key comparators (KeyFieldBasedComparator's -k<n>,<n>[n][r]): unit and end to end."""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.job.dataplane import SortKey
from airflow_mapreduce.worker.keys import RecordFormat


def ordered(keys: list[bytes], *fields: SortKey) -> list[bytes]:
    fmt = RecordFormat(b"\t", key_fields=2, comparator=fields)
    assert fmt.sort_key is not None
    return sorted(keys, key=fmt.sort_key)


def test_reverse_text_is_descending_bytes_order_even_for_prefixes_and_nul() -> None:
    rng = random.Random(2)
    keys = [bytes(rng.choice(b"ab\x00\xff") for _ in range(rng.randrange(4))) for _ in range(400)]
    assert ordered(keys, SortKey(field=1, reverse=True)) == sorted(keys, reverse=True)


def test_numeric_orders_by_value_then_non_numbers_by_bytes() -> None:
    keys = [b"x\t10", b"x\t9", b"x\t-2.5", b"x\tabc", b"x\t1e3", b"x\t", b"x\tnan", b"x\t 7"]
    ascending = ordered(keys, SortKey(field=2, numeric=True))
    values = [b"-2.5", b" 7", b"9", b"10", b"1e3", b"", b"abc", b"nan"]
    assert ascending == [b"x\t" + v for v in values]
    descending = ordered(keys, SortKey(field=2, numeric=True, reverse=True))
    assert descending == [b"x\t" + v for v in reversed(values)]


def test_keys_equal_under_the_comparator_stay_apart_in_bytes_order() -> None:
    keys = [b"a\t01", b"a\t1", b"a\t1.0", b"a\t01"]
    assert ordered(keys, SortKey(field=2, numeric=True)) == [b"a\t01", b"a\t01", b"a\t1", b"a\t1.0"]


def job(body: str) -> str:
    head = "dag_id: cmp\ninput: {uri: unused, split_size: 16KiB}\noutput: unused\nreducers: 3\n"
    return head + textwrap.dedent(body)


SECONDARY_SORT = """
streaming: {key_fields: 2}
partitioner: {key_fields: 1}
comparator: {keys: [{field: 1}, {field: 2, numeric: true, reverse: true}]}
"""


def write_scores(folder: Path, seed: int, count: int, scores: range) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = [(f"user{rng.randrange(30)}", rng.choice(scores)) for _ in range(count)]
    folder.mkdir()
    (folder / "scores.txt").write_text("".join(f"{u}\t{s}\n" for u, s in rows))
    return rows


def read_scores(folder: Path) -> list[tuple[str, int]]:
    """Every (user, score) of the output, checking that each part is in the comparator's
    order and that a user's scores are all in one part (partitioned on the first field)."""
    seen: list[tuple[str, int]] = []
    partition_of: dict[str, str] = {}
    for part in sorted(folder.glob("part-*")):
        got = [(u, int(s)) for u, s in (line.split("\t") for line in part.read_text().splitlines())]
        assert got == sorted(got, key=lambda row: (row[0], -row[1])), part.name
        for user, _ in got:
            assert partition_of.setdefault(user, part.name) == part.name, user
        seen += got
    assert len(set(partition_of.values())) > 1  # the reducers really split the users
    return seen


def test_scores_per_user_come_out_highest_first(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Secondary sort with a numeric, descending second field, spills included."""
    rows = write_scores(tmp_path / "in", 9, 8000, range(-500, 5000))
    steps = "mapper: {command: [cat]}\nreducer: {command: [cat]}\nmemory: {sort_buffer: 64KiB}"
    spec = parse_job_text(job(steps + SECONDARY_SORT))
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert manifest.counters["airflow-mapreduce"]["spills"] > 0
    assert sorted(read_scores(tmp_path / "out")) == sorted(rows)


def test_secondary_sort_after_a_combiner_on_gnu_sort(run_job, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """`uniq` as combiner and reducer: it needs equal lines adjacent, which GNU sort ahead of
    the combiner gives (byte order); the output still follows the comparator."""
    rows = write_scores(tmp_path / "in", 4, 20_000, range(-50, 200))
    steps = "mapper: {command: [cat]}\ncombiner: {command: [uniq]}\nreducer: {command: [uniq]}"
    spec = parse_job_text(job(steps + SECONDARY_SORT))
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert "sorted for the combiner by" in capfd.readouterr().err
    counters = manifest.counters["airflow-mapreduce"]
    assert counters["combine_output_records"] < counters["combine_input_records"] == len(rows)
    assert sorted(read_scores(tmp_path / "out")) == sorted(set(rows))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "mapper: {command: [cat]}\ncomparator: {keys: [{field: 2}]}\n",
            "comparator.keys[0].field is 2 but the key has only streaming.key_fields=1",
        ),
        (
            "mapper: {callable: m:f}\nreducer: {callable: m:g}\n"
            "comparator: {keys: [{field: 1, numeric: true}]}\n",
            "with only Python callables",
        ),
    ],
)
def test_comparator_mistakes_are_explained(body: str, message: str) -> None:
    with pytest.raises(JobSpecError, match=re.escape(message)):
        parse_job_text(job(body))
