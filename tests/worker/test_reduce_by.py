"""reduce_by (Spark's reduceByKey): values folded with f(a, b) in the sort buffer and on the
reduce side, against folds computed here with plain dicts."""

from __future__ import annotations

import collections
import io
import json
import operator
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.worker.callables import ReduceBy
from airflow_mapreduce.worker.fold import fold_sorted_blocks
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.outputs import PartWriter
from airflow_mapreduce.worker.pair_buffer import KEY_OVERHEAD, PairBuffer
from tests.worker.test_sort_buffers import SMALL, check_partitions, drained

HEAD = "dag_id: rb\ninput: {uri: unused, split_size: 64KiB}\noutput: unused\nreducers: 3\n"
KEYS: list[Any] = ["a", "b\tc", 'q"uote', "back\\slash", "ünï", "\udcff-raw", 1, 1.0, True]
KEYS += [None, [1, "x"], {"k": 2}, -7, 2**70] + [f"w{i}" for i in range(300)]


def sorted_lines(pairs: list[tuple[Any, Any]]) -> list[bytes]:
    """Shuffle lines as a reduce task sees them: sorted by encoded key, values in arrival
    order within a key (the sort is stable)."""
    encoded = [(encode(k), encode(v)) for k, v in pairs]
    encoded.sort(key=operator.itemgetter(0))
    return [key + b"\t" + value for key, value in encoded]


def encode(obj: Any) -> bytes:
    """Compact JSON, undecodable input bytes (surrogate escapes) back as they were."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape")


def random_blocks(rng: random.Random, lines: list[bytes]) -> list[list[bytes]]:
    """Cut anywhere, with empty and one-line blocks among them."""
    blocks, start = [], 0
    while start < len(lines):
        size = rng.choice([0, 1, 2, 7, 50, 400])
        blocks.append(lines[start : start + size])
        start += size
    return blocks


def dict_fold(pairs: list[tuple[Any, Any]], f: Callable[[Any, Any], Any]) -> dict[bytes, Any]:
    folded: dict[bytes, Any] = {}
    for key, value in pairs:
        raw = encode(key)
        folded[raw] = f(folded[raw], value) if raw in folded else value
    return folded


def fold_all(blocks: list[list[bytes]], f: Callable[[Any, Any], Any]) -> list[tuple[Any, Any]]:
    out: list[tuple[Any, Any]] = []
    for keys, values in fold_sorted_blocks(blocks, f, "reducer m:f"):
        assert len(keys) == len(values)
        out += zip(keys, values, strict=True)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_reduce_side_fold_matches_a_dict_fold_however_blocks_are_cut(seed: int) -> None:
    rng = random.Random(seed)
    # a few keys with very many values: their groups run over many blocks
    pairs = [(rng.choice(KEYS[:6] if rng.random() < 0.3 else KEYS), rng.randrange(-50, 1000))
             for _ in range(20_000)]  # fmt: skip
    out = fold_all(random_blocks(rng, sorted_lines(pairs)), operator.add)
    raws = [encode(key) for key, _ in out]
    assert raws == sorted(set(raws)), "every key once, in the shuffle's order"
    assert dict(zip(raws, (v for _, v in out), strict=True)) == dict_fold(pairs, operator.add)
    decoded = {encode(k): k for k, _ in out}
    assert decoded[encode(2**70)] == 2**70 and type(decoded[encode(1.0)]) is float
    assert decoded[encode("\udcff-raw")] == "\udcff-raw"  # undecodable input bytes survive


def test_reduce_side_fold_keeps_the_order_of_a_keys_values_across_blocks() -> None:
    """Associative only (str concatenation is not commutative): a key carried from block
    to block is folded left to right."""
    rng = random.Random(3)
    pairs = [(rng.choice("xyz"), rng.choice("abcdefgh")) for _ in range(5_000)]
    out = dict(fold_all(random_blocks(rng, sorted_lines(pairs)), operator.add))
    for key in "xyz":
        assert out[key] == "".join(v for k, v in pairs if k == key)


@pytest.mark.parametrize("bad_key", ["w5", "a"])  # inside a block; carried over blocks
def test_reduce_side_fold_names_the_key_whose_values_it_cannot_fold(bad_key: str) -> None:
    pairs = [(f"w{i % 10}", 1) for i in range(100)] + [("a", 1)] * 30 + [(bad_key, "oops")]
    blocks = [sorted_lines(pairs)[i : i + 7] for i in range(0, 131, 7)]
    with pytest.raises(RecordError, match=rf"reducer m:f raised TypeError.* on key '{bad_key}'"):
        fold_all(blocks, operator.add)


def test_reduce_side_fold_rejects_a_damaged_record() -> None:
    with pytest.raises(RecordError, match=r"b'\"a\"\\t1\\t2' is not one JSON key, a TAB"):
        fold_all([[b'"a"\t1', b'"a"\t1\t2']], operator.add)


@pytest.mark.parametrize("budget", [SMALL, 64 * 1024**2])
def test_sort_buffer_folds_values_as_they_arrive(budget: int) -> None:
    rng = random.Random(11)
    # one value per key is held: spills need many keys (str keys first, then every kind)
    many = [f"k{i}" for i in range(3_000)]
    pairs = [(rng.choice(many + KEYS[:6] if i < 20_000 else many + KEYS), rng.randrange(9))
             for i in range(40_000)]  # fmt: skip
    buffer = PairBuffer(RecordFormat(num_partitions=3, lines_sort_as_keys=True), budget,
                        merge=operator.add)  # fmt: skip
    buffer.add_pairs(pairs[:100])
    buffer.add_pairs(iter(pairs[100:]))
    parts = drained(buffer)
    assert (buffer.spills > 2) == (budget == SMALL)
    lines = [line for ls in parts.values() for line in ls]
    per_spill = collections.Counter(line.split(b"\t")[0] for line in lines)
    assert max(per_spill.values()) <= buffer.spills + 1, "one line per key per spill"
    total: collections.Counter[bytes] = collections.Counter()
    for line in lines:
        key, value = line.split(b"\t")
        total[key] += json.loads(value)
    assert dict(total) == dict_fold(pairs, operator.add)
    assert buffer.combine_input == len(pairs) and buffer.combine_output == len(lines)
    check_partitions(parts, lambda line: line.split(b"\t")[0])


def test_sort_buffer_names_the_key_it_cannot_fold() -> None:
    buffer = PairBuffer(RecordFormat(), SMALL, None, "combiner m:f", merge=operator.add)
    with pytest.raises(RecordError, match=r"combiner m:f raised TypeError.* on key 'b'"):
        buffer.add_pairs([("a", 1), ("b", 1), ("a", 2), ("b", "x")])
    buffer.close()


def test_sort_buffer_folds_a_batch_mappers_mapping_in_whole() -> None:
    """A dict/Counter from a batch mapper: the same lines as its pairs one by one, each
    new key charged its size; keys of other types take the pair-by-pair path."""
    rng = random.Random(4)
    mappings: list[dict[Any, int]] = [
        collections.Counter(rng.choice(["a", "ünï", "b\tc"] + [f"k{i}" for i in range(2_000)])
                            for _ in range(3_000))
        for _ in range(20)
    ]  # fmt: skip
    mappings.insert(10, {"a": 5, 7: 1, None: 2})  # from here on, keys by their encoding
    results = []
    for whole in (True, False):
        buffer = PairBuffer(RecordFormat(num_partitions=2, lines_sort_as_keys=True), SMALL,
                            merge=operator.add)  # fmt: skip
        for mapping in mappings:
            if whole:
                buffer.add_mapping(mapping)
            else:
                buffer.add_pairs(mapping.items())
        results.append((drained(buffer), buffer.records, buffer.spills))
    assert results[0] == results[1]
    assert results[0][2] > 2
    with PairBuffer(RecordFormat(), 64 * 1024**2, merge=operator.add) as buffer:
        buffer.add_mapping(mappings[0])
        assert buffer.used == sum(sys.getsizeof(k) + KEY_OVERHEAD for k in mappings[0])
        buffer.add_mapping(mappings[0])  # no new keys: nothing more held
        assert buffer.used == sum(sys.getsizeof(k) + KEY_OVERHEAD for k in mappings[0])


def test_sort_buffer_names_the_key_of_a_mapping_it_cannot_fold() -> None:
    buffer = PairBuffer(RecordFormat(), SMALL, None, "combiner m:f", merge=operator.add)
    buffer.add_mapping({"a": 1, "b": 1})
    with pytest.raises(RecordError, match=r"combiner m:f raised TypeError.* on key 'b'"):
        buffer.add_mapping({"a": 2, "b": "x", "c": 1})
    buffer.close()


def test_a_reduce_by_reducer_is_also_the_combiner_unless_one_is_given() -> None:
    mapper = "mapper: {callable: 'm:f'}\n"
    job = parse_job_text(HEAD + mapper + "reducer: {reduce_by: 'operator:add'}\n")
    assert job.combiner is not None and job.combiner.reduce_by == "operator:add"
    assert job.only_callables
    job = parse_job_text(
        HEAD + mapper + "combiner: {callable: 'm:c'}\nreducer: {reduce_by: 'm:r'}\n"
    )
    assert job.combiner is not None and job.combiner.callable == "m:c"


def write_module(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.py").write_text(text)


def test_reduce_by_job_with_any_json_values(run_job, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The longest line and its number per first word: tuple values (lists after the
    shuffle), folded with a function of the job's own, through every phase."""
    write_module(tmp_path, "longest_lines", (
        "def mapper(_key, line):\n"
        "    words = line.split()\n"
        "    if words:\n"
        "        yield words[0], [len(line), line]\n"
        "def longest(a, b):\n"
        "    return max(a, b)\n"
    ))  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = random.Random(2)
    (tmp_path / "in").mkdir()
    lines = [" ".join(rng.choice("abcdefg") * rng.randint(1, 3) for _ in range(rng.randint(0, 9)))
             for _ in range(30_000)]  # fmt: skip
    (tmp_path / "in" / "text.txt").write_text("\n".join(lines) + "\n")
    steps = (
        "mapper: {callable: 'longest_lines:mapper'}\n"
        "reducer: {reduce_by: 'longest_lines:longest'}\n"
    )
    manifest = run_job(
        parse_job_text(HEAD + steps), f"file://{tmp_path}/in", f"file://{tmp_path}/out"
    )
    got = {}
    for part in sorted((tmp_path / "out").glob("part-*")):
        for line in part.read_text().splitlines():
            key, value = line.split("\t")
            got[key] = json.loads(value)
    expected: dict[str, list[Any]] = {}
    for line in lines:
        if line.split():
            first = line.split()[0]
            expected[first] = max(expected.get(first, [0, ""]), [len(line), line])
    assert got == expected
    combined = manifest.counters["airflow-mapreduce"]
    assert combined["combine_input_records"] == sum(1 for line in lines if line.split())
    assert combined["combine_output_records"] < combined["combine_input_records"]


def test_reduce_by_after_a_streaming_mapper_folds_text(
    run_job, word_corpus, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """With a command mapper values are text, as for any Python reducer of a streaming job:
    the function must take str (operator:add would concatenate)."""
    write_module(tmp_path, "text_counts", "def add(a, b):\n    return str(int(a) + int(b))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    steps = (
        "mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}\n"
        "reducer: {reduce_by: 'text_counts:add'}\n"
    )
    run_job(parse_job_text(HEAD + steps), f"file://{word_corpus.folder}", f"file://{tmp_path}/out")
    counts: collections.Counter[str] = collections.Counter()
    for part in (tmp_path / "out").glob("part-*"):
        for line in part.read_text(errors="surrogateescape").splitlines():
            word, _, count = line.rpartition("\t")
            counts[word] += int(count)
    assert counts == word_corpus.counts


def test_the_generic_fold_goes_left_to_right() -> None:
    """Where a Python reducer would run (e.g. a combiner of a streaming mapper's lines)."""
    assert list(ReduceBy(operator.sub)("k", iter([10, 3, 2]))) == [("k", 5)]
    assert list(ReduceBy(operator.add)("k", iter(["a", "b", "c"]))) == [("k", "abc")]


@pytest.mark.parametrize("output", ["text", "jsonlines"])
@pytest.mark.parametrize(
    ("keys", "values"),
    [(["a", "ünï", "\udcff", "t\tab"], [1, -2, 3**40, 0]), (["a", 1, None], [1, 2, 3]),
     (["a", "b"], [1, 2.5]), (["a", "b"], [True, 2])],
)  # fmt: skip
def test_columns_are_written_as_the_same_pairs_would_be(
    output: str, keys: list[Any], values: list[Any]
) -> None:
    """write_columns (the reduce_by output path) and write_pair_list (a Python reducer's)
    write the bytes write_pairs writes, C loops or not, after whatever was written before."""
    written = []
    for write in ("pairs", "columns", "pair list"):
        out = io.BytesIO()
        writer = PartWriter(out, output, b"\t")
        writer.write_pairs([("first", 0)])
        if write == "pairs":
            writer.write_pairs(zip(keys, values, strict=True))
        elif write == "columns":
            writer.write_columns(keys, values)
        else:
            writer.write_pair_list(list(zip(keys, values, strict=True)))
        writer.flush()
        written.append((out.getvalue(), writer.records, writer.bytes))
    assert written[0] == written[1] == written[2]
    assert written[0][1] == len(keys) + 1 and written[0][2] == len(written[0][0])


def test_sort_buffer_names_the_key_whose_folded_value_is_no_json() -> None:
    buffer = PairBuffer(RecordFormat(), SMALL, None, "combiner m:f", merge=operator.or_)
    buffer.add_pairs([("a", 1), ("b", {1}), ("b", {2})])
    with pytest.raises(RecordError, match=r"combiner m:f folded key 'b' into \{1, 2\}, which"):
        drained(buffer)


@pytest.mark.parametrize("output", ["text", "jsonlines"])
def test_an_output_pair_that_cannot_be_written_is_named(output: str) -> None:
    for pair, what in ((("b", {1}), "value"), ((frozenset({2}), 1), "key")):
        writer = PartWriter(io.BytesIO(), output, b"\t")
        named = rf"output pair \({re.escape(repr(pair[0]))}, .*its {what} is not"
        with pytest.raises(RecordError, match=named):
            writer.write_pairs([("a", 1), pair])
    with pytest.raises(TypeError, match="unpack"):  # not a pair: not the pair's fault
        PartWriter(io.BytesIO(), output, b"\t").write_pairs([("a", 1), 5])  # type: ignore[list-item]
