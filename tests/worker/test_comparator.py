"""Key comparators (KeyFieldBasedComparator's -k<n>,<n>[n][r]): unit and end to end."""

from __future__ import annotations

import random
import re
import textwrap
from pathlib import Path

import pytest

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.spec import parse_job_text
from airflow_mapreduce.spec.dataplane import SortKey
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


def test_scores_per_user_come_out_highest_first(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Secondary sort with a numeric, descending second field, spills included."""
    rng = random.Random(9)
    rows = [(f"user{rng.randrange(30)}", rng.randrange(-500, 5000)) for _ in range(8000)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "scores.txt").write_text("".join(f"{u}\t{s}\n" for u, s in rows))
    spec = parse_job_text(
        job("""
            mapper: {command: [cat]}
            reducer: {command: [cat]}
            streaming: {key_fields: 2}
            partitioner: {key_fields: 1}
            comparator: {keys: [{field: 1}, {field: 2, numeric: true, reverse: true}]}
            memory: {sort_buffer: 64KiB}
        """)
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert manifest.counters["airflow-mapreduce"]["spills"] > 0
    seen, partition_of = [], {}
    for part in sorted((tmp_path / "out").glob("part-*")):
        got = [(u, int(s)) for u, s in (line.split("\t") for line in part.read_text().splitlines())]
        assert got == sorted(got, key=lambda row: (row[0], -row[1])), part.name
        for user, _ in got:  # partitioned on the first field only
            assert partition_of.setdefault(user, part.name) == part.name, user
        seen += got
    assert sorted(seen) == sorted(rows)
    assert len(set(partition_of.values())) > 1  # the reducers really split the users


def test_secondary_sort_after_a_combiner_on_gnu_sort(run_job, tmp_path: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    """`uniq` as combiner and reducer: it needs equal lines adjacent, which GNU sort ahead of
    the combiner gives (byte order); the output still follows the comparator."""
    rng = random.Random(4)
    rows = [(f"user{rng.randrange(30)}", rng.randrange(-50, 200)) for _ in range(20_000)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "scores.txt").write_text("".join(f"{u}\t{s}\n" for u, s in rows))
    spec = parse_job_text(
        job("""
            mapper: {command: [cat]}
            combiner: {command: [uniq]}
            reducer: {command: [uniq]}
            streaming: {key_fields: 2}
            partitioner: {key_fields: 1}
            comparator: {keys: [{field: 1}, {field: 2, numeric: true, reverse: true}]}
        """)
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert "sorted by key for the combiner by" in capfd.readouterr().err
    counters = manifest.counters["airflow-mapreduce"]
    assert counters["combine_output_records"] < counters["combine_input_records"] == len(rows)
    seen = []
    for part in sorted((tmp_path / "out").glob("part-*")):
        got = [(u, int(s)) for u, s in (line.split("\t") for line in part.read_text().splitlines())]
        assert got == sorted(got, key=lambda row: (row[0], -row[1])), part.name
        seen += got
    assert sorted(seen) == sorted(set(rows))


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
