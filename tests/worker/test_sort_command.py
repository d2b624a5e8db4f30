"""GNU sort ahead of the combiner (worker/sort_command.py), end to end with real commands.

Every result is compared with a reference computed here by plain Python (Counter, a stable
sorted()) and with the Python sort buffer's result on the same job.
"""

from __future__ import annotations

import collections
import os
import random
import textwrap
from pathlib import Path

import pytest

from airflow_mapreduce.errors import CommandFailedError, TaskFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.worker import sort_command
from airflow_mapreduce.worker.keys import RecordFormat

pytestmark = pytest.mark.skipif(sort_command.gnu_sort() is None, reason="needs GNU sort")

# A combiner and reducer for any separator and number of key fields (from the job's
# environment): the lines of each key summed (a line's value, or 1 if it has none).
# It fails if a key comes back after another key: its input must be grouped by key.
GROUP_SUM = r"""
import os, sys
sep = os.environ["stream_map_output_field_separator"].encode()
fields = int(os.environ["stream_num_map_output_key_fields"])
out, seen, current, total = sys.stdout.buffer, set(), None, 0
for line in sys.stdin.buffer:
    line = line[:-1]
    parts = line.split(sep, fields)
    key, value = (line, b"1") if len(parts) <= fields else (sep.join(parts[:fields]), parts[fields])
    if key != current:
        if key in seen:
            sys.exit(f"key {key!r} came back after other keys: the input is not grouped")
        if current is not None:
            out.write(current + sep + b"%d\n" % total)
        seen.add(key)
        current, total = key, 0
    total += int(value)
if current is not None:
    out.write(current + sep + b"%d\n" % total)
"""
# Writes its input without the final newline: the worker must not join it to what follows.
NO_FINAL_EOL = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read().rstrip(b'\\n'))"


def key_of(line: bytes, sep: bytes, fields: int) -> bytes:
    parts = line.split(sep, fields)
    return line if len(parts) <= fields else sep.join(parts[:fields])


def job(body: str, split_size: str = "16KiB", reducers: int = 3) -> str:
    head = f"dag_id: sc\ninput: {{uri: unused, split_size: {split_size}}}\noutput: unused\n"
    return head + f"reducers: {reducers}\n" + textwrap.dedent(body)


def awkward_lines(rng: random.Random, sep: bytes, fields: int, count: int) -> list[bytes]:
    """Keys of bytes below the separator, above ASCII, spaces and empty fields; some lines
    without a value (the whole line is then the key)."""
    alphabet = [b"\x01", b"\x7f", b"\xff", b" ", b"a", b"b", b"A"]

    def field() -> bytes:
        return b"".join(rng.choice(alphabet) for _ in range(rng.randrange(3)))

    lines = []
    for _ in range(count):
        key = sep.join(field() for _ in range(fields))
        lines.append(key if rng.random() < 0.1 else key + sep + b"%d" % rng.randrange(1, 9))
    return lines


def reference(lines: list[bytes], sep: bytes, fields: int) -> collections.Counter[bytes]:
    counts: collections.Counter[bytes] = collections.Counter()
    for line in lines:
        key = key_of(line, sep, fields)
        counts[key] += 1 if key == line else int(line[len(key) + len(sep) :])
    return counts


def summed_output(folder: Path, sep: bytes, fields: int) -> collections.Counter[bytes]:
    counts: collections.Counter[bytes] = collections.Counter()
    for part in sorted(folder.glob("part-*")):
        lines = part.read_bytes().split(b"\n")[:-1]
        keys = [key_of(line, sep, fields) for line in lines]
        assert keys == sorted(keys), f"{part.name} is not in key order"
        for key, line in zip(keys, lines, strict=True):
            assert key not in counts, f"{key!r} twice in the output"
            counts[key] = int(line[len(key) + len(sep) :])
    return counts


def use_python_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_mapreduce.worker.map_task.groups_by_sort", lambda fmt: False)


@pytest.mark.parametrize(("sep", "fields"), [("\t", 1), (",", 2)])
@pytest.mark.parametrize("mapper", ["cat", "no final EOL"])
def test_sums_match_a_counter_and_the_python_buffer(  # type: ignore[no-untyped-def]
    run_job, tmp_path, monkeypatch, capfd, sep, fields, mapper
) -> None:
    rng = random.Random(5)
    raw_sep = sep.encode()
    lines = awkward_lines(rng, raw_sep, fields, 12_000)
    (tmp_path / "in").mkdir()
    for index in range(6):  # small files: several go to one map task, one mapper run each
        chunk = lines[index::6]
        (tmp_path / "in" / f"f{index}.txt").write_bytes(b"\n".join(chunk) + b"\n")
    (tmp_path / "group_sum.py").write_text(GROUP_SUM)
    (tmp_path / "no_eol.py").write_text(NO_FINAL_EOL)
    python = f"[python3, {tmp_path}/group_sum.py]"
    map_command = "[cat]" if mapper == "cat" else f"[python3, {tmp_path}/no_eol.py]"
    streaming = f'{{separator: "{sep.encode("unicode_escape").decode()}", key_fields: {fields}}}'
    spec = parse_job_text(
        job(
            f"mapper: {{command: {map_command}}}\ncombiner: {{command: {python}}}\n"
            f"reducer: {{command: {python}}}\nstreaming: {streaming}\n",
            split_size="64KiB",
        )
    )
    expected = reference(lines, raw_sep, fields)

    sorted_run = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/sorted")
    assert "sorted for the combiner by" in capfd.readouterr().err
    assert summed_output(tmp_path / "sorted", raw_sep, fields) == expected

    use_python_buffer(monkeypatch)
    python_run = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/python")
    assert "sorted for the combiner by" not in capfd.readouterr().err
    assert summed_output(tmp_path / "python", raw_sep, fields) == expected

    ours, theirs = (run.counters["airflow-mapreduce"] for run in (sorted_run, python_run))
    assert ours["map_output_records"] == theirs["map_output_records"] == len(lines)
    assert ours["combine_input_records"] == len(lines)
    # Once over each task's output, not per partition: at most one line per key and task.
    assert ours["combine_output_records"] <= theirs["combine_output_records"]
    assert ours["combine_output_records"] < len(lines)


def identity_job(reducers: int = 1) -> str:
    return job(
        "mapper: {command: [cat]}\ncombiner: {command: [cat]}\nreducer: {command: [cat]}\n",
        split_size="64MiB",
        reducers=reducers,
    )


def test_text_is_sorted_as_whole_lines(run_job, tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    """No byte below TAB: with identity steps the output is the input in bytes order
    (a key's lines by value), lines without a TAB included."""
    rng = random.Random(8)
    lines = [b"k%d\t%d" % (rng.randrange(50), rng.randrange(10**6)) for i in range(20_000)]
    lines += [b"k7", b"k7!\t1", b"k7 x", b"k\xff\t2"]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_bytes(b"\n".join(lines) + b"\n")
    run_job(parse_job_text(identity_job()), f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    err = capfd.readouterr().err
    assert "sorted for the combiner by" in err and "whole lines" in err and "by key" not in err
    assert (tmp_path / "out" / "part-00000").read_bytes().split(b"\n")[:-1] == sorted(lines)


def test_a_byte_below_the_separator_switches_to_sorting_by_key(  # type: ignore[no-untyped-def]
    run_job, tmp_path, capfd
) -> None:
    """Files of text, then one whose lines hold 0x01 after a key that also comes alone:
    in whole-line order "k" < "k\x01..." < "k\t...", which would split key k. What was
    sorted as whole lines goes on to a sort by key: the strict combiner (it fails on a
    key it has seen before) sees every key once, and the sums are right."""
    (tmp_path / "in").mkdir()
    rng = random.Random(9)
    lines = []
    for index in range(8):  # several files, one mapper run each (per_split_env): the
        # sort starts on the first files' output, before the byte below TAB arrives
        chunk = [b"k%d\t%d" % (rng.randrange(40), rng.randrange(1, 9)) for _ in range(3000)]
        chunk += [b"k%d" % i for i in range(0, 40, 7)]  # all key, value 1 for GROUP_SUM
        if index == 7:
            chunk += [b"k%d\x01\t5" % i for i in range(40)]
        (tmp_path / "in" / f"f{index}.txt").write_bytes(b"\n".join(chunk) + b"\n")
        lines += chunk
    (tmp_path / "group_sum.py").write_text(GROUP_SUM)
    python = f"[python3, {tmp_path}/group_sum.py]"
    spec = parse_job_text(
        job(
            f"mapper: {{command: [cat]}}\ncombiner: {{command: {python}}}\n"
            f"reducer: {{command: {python}}}\nstreaming: {{per_split_env: true}}\n",
            split_size="1MiB",
            reducers=2,
        )
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    err = capfd.readouterr().err
    assert err.index("whole lines") < err.index("sorting by key from here on")
    assert summed_output(tmp_path / "out", b"\t", 1) == reference(lines, b"\t", 1)
    ours = manifest.counters["airflow-mapreduce"]
    assert ours["map_output_records"] == ours["combine_input_records"] == len(lines)


def test_sorting_by_key_keeps_a_keys_lines_in_the_mappers_order(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With a byte below TAB from the first line on, sort cuts keys from the start and
    keeps each key's lines as the mapper wrote them (--stable)."""
    rng = random.Random(8)
    lines = [b"k%d\x01\t%d" % (rng.randrange(50), i) for i in range(20_000)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_bytes(b"\n".join(lines) + b"\n")
    run_job(parse_job_text(identity_job()), f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    expected = sorted(lines, key=lambda line: line.split(b"\t")[0])
    assert (tmp_path / "out" / "part-00000").read_bytes().split(b"\n")[:-1] == expected


def test_a_python_combiner_reads_sorts_output(run_job, word_corpus, tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    from tests.wordcount import output_counts

    spec = parse_job_text(
        job("""
            mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}
            combiner: {callable: mapreduce_jobs.wordcount_callables:combiner}
            reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}
        """)
    )
    manifest = run_job(spec, f"file://{word_corpus.folder}", f"file://{tmp_path}/out")
    assert "sorted for the combiner by" in capfd.readouterr().err
    assert output_counts(tmp_path / "out") == word_corpus.counts
    ours = manifest.counters["airflow-mapreduce"]
    assert ours["combine_output_records"] < ours["combine_input_records"]


def test_a_separator_sort_cannot_cut_uses_the_python_buffer(run_job, tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_text("a::1\nb::2\na::3\n")
    (tmp_path / "group_sum.py").write_text(GROUP_SUM)
    python = f"[python3, {tmp_path}/group_sum.py]"
    spec = parse_job_text(
        job(f"""
            mapper: {{command: [cat]}}
            combiner: {{command: {python}}}
            reducer: {{command: {python}}}
            streaming: {{separator: "::"}}
        """)
    )
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert "sorted for the combiner by" not in capfd.readouterr().err
    assert summed_output(tmp_path / "out", b"::", 1) == {b"a": 4, b"b": 2}


def children_named(name: str) -> list[int]:
    """Live child processes of this one whose command line mentions `name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        state = stat.rsplit(")", 1)[1].split()[0]
        if parent == os.getpid() and state != "Z" and name.encode() in cmdline:
            found.append(int(entry.name))
    return found


def write_counts(folder: Path) -> None:
    folder.mkdir()
    (folder / "data.txt").write_text("".join(f"w{i % 97}\t1\n" for i in range(5000)))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


@pytest.mark.parametrize("failing", ["mapper", "combiner"])
def test_a_failing_step_stops_sort_and_removes_its_files(  # type: ignore[no-untyped-def]
    run_job, tmp_path, private_tmp, failing
) -> None:
    write_counts(tmp_path / "in")
    fail = "[sh, -c, 'cat >/dev/null; echo cannot go on >&2; exit 3']"
    steps = {"mapper": "[cat]", "combiner": "[cat]", "reducer": "[cat]", failing: fail}
    spec = parse_job_text(
        job("".join(f"{role}: {{command: {argv}}}\n" for role, argv in steps.items()))
    )
    with pytest.raises(
        CommandFailedError, match=f"(?s){failing}.*exited with code 3.*cannot go on"
    ):
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert children_named(sort_command.gnu_sort() or "sort") == []
    assert not list(private_tmp.glob("amr-sort-*"))


def test_a_failing_sort_fails_the_task_with_what_it_said(  # type: ignore[no-untyped-def]
    run_job, tmp_path, private_tmp, monkeypatch
) -> None:
    write_counts(tmp_path / "in")
    said = "sort: cannot create temporary file in '/full': No space left on device"
    broken = ["sh", "-c", f'head -c 100 >/dev/null; echo "{said}" >&2; exit 2']
    monkeypatch.setattr(sort_command, "sort_argv", lambda *args, **kwargs: broken)
    spec = parse_job_text(
        job("mapper: {command: [cat]}\ncombiner: {command: [cat]}\nreducer: {command: [cat]}\n")
    )
    with pytest.raises(TaskFailedError) as failed:
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    message = str(failed.value)
    assert "sorting the map output failed" in message and "exited with code 2" in message
    assert said in message and "TMPDIR" in message
    assert not list(private_tmp.glob("amr-sort-*"))


def test_a_whole_line_sort_failing_at_the_switch_fails_the_task(  # type: ignore[no-untyped-def]
    run_job, tmp_path, private_tmp, monkeypatch, capfd
) -> None:
    """The sort of whole lines fails only once its input ends, at the switch to sorting
    by key: the task fails with what it said, and the sort by key is stopped."""
    real = sort_command.sort_argv
    failing = ["sh", "-c", "cat >/dev/null; echo 'whole lines: no' >&2; exit 3"]
    monkeypatch.setattr(
        sort_command,
        "sort_argv",
        lambda fmt, budget, folder, by_key: (
            real(fmt, budget, folder, by_key) if by_key else failing
        ),
    )
    write_counts(tmp_path / "in")
    (tmp_path / "in" / "z.txt").write_bytes(b"w1\x01\t1\n")  # read after data.txt
    # One map task: data.txt, then z.txt, each its own mapper run (per_split_env).
    spec = parse_job_text(identity_job() + "streaming: {per_split_env: true}\n")
    with pytest.raises(TaskFailedError, match=r"(?s)exited with code 3.*whole lines: no"):
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert "sorting by key from here on" in capfd.readouterr().err
    assert children_named(sort_command.gnu_sort() or "sort") == []
    assert not list(private_tmp.glob("amr-sort-*"))


@pytest.mark.parametrize(
    ("version", "found"), [("sort (GNU coreutils) 9.1", True), ("2.3-Apple (190)", False)]
)
def test_only_gnu_sort_is_used(tmp_path, monkeypatch, version, found) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "sort"
    fake.write_text(f"#!/bin/sh\necho '{version}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    sort_command.gnu_sort.cache_clear()
    try:
        assert sort_command.gnu_sort() == (str(fake) if found else None)
        assert sort_command.groups_by_sort(RecordFormat()) is found
        assert not sort_command.groups_by_sort(RecordFormat(separator=b"::"))
    finally:
        sort_command.gnu_sort.cache_clear()


def test_no_sort_on_the_path_means_the_python_buffer(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path))
    sort_command.gnu_sort.cache_clear()
    try:
        assert sort_command.gnu_sort() is None
        assert not sort_command.groups_by_sort(RecordFormat())
    finally:
        sort_command.gnu_sort.cache_clear()
