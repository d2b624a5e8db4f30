"""The sampling of partitioner.kind total_order (Hadoop's InputSampler), run at plan time.

The mapper defines the keys, so the job's own mapper runs on bounded pieces of the input
(plan/sampling.py picks them); its keys, sorted in the job's key order (worker.keys), give
the split points that cut the key range into partitions of about equal records.

``python -m airflow_mapreduce.worker.sampler <sample-spec-uri>`` is what the plan step
starts where it runs, in the job's folder like a local worker; it writes a SampleManifest.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from airflow_mapreduce.errors import CommandFailedError, MapReduceError
from airflow_mapreduce.plan.tasks import InputSplit, SampleManifest, SamplePiece, SampleTaskSpec
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker import reporter
from airflow_mapreduce.worker.bad_records import DeadLetters
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.lifecycle import task_lifecycle
from airflow_mapreduce.worker.records import iter_split_blocks
from airflow_mapreduce.worker.shipped_files import task_working_folder
from airflow_mapreduce.worker.steps import Step

KEYS_PER_SAMPLE = 4  # keys kept per sampled record at most (a word count emits many)
MIN_KEYS, MAX_KEYS = 4096, 1_000_000  # ... and in all (MAX_KEYS: ~100 MB of small keys)


class KeySample:
    """The keys of the mapper's output lines, evenly thinned: once more than `cap` are
    held, every other one is dropped and from then on only every 2nd (4th, ...) is kept,
    so the sample stays spread over all the input read."""

    def __init__(self, fmt: RecordFormat, cap: int) -> None:
        self.fmt = fmt
        self.cap = max(cap, 2)
        self.keys: list[bytes] = []
        self.seen = 0
        self._stride = 1

    def add_lines(self, lines: list[bytes]) -> None:
        first = -self.seen % self._stride  # the first line whose index is a multiple
        self.seen += len(lines)
        self.keys += map(self.fmt.key_of, lines[first :: self._stride])
        while len(self.keys) > self.cap:
            del self.keys[1::2]
            self._stride *= 2


def pick_split_points(
    keys: list[bytes], num_partitions: int, key_order: Callable[[bytes], Any]
) -> list[bytes]:
    """At most num_partitions - 1 strictly increasing split points: the sorted sample's
    keys at every 1/num_partitions of its length, as Hadoop's InputSampler picks them. A
    key sampled often (skew) takes a share of the partitions' ranges in proportion, and
    where the pick would repeat a split point it moves on to the next larger key: equal
    split points would only make empty partitions. Fewer distinct keys than partitions:
    fewer split points, and the last partitions stay empty."""
    ordered = sorted((key_order(key), key) for key in set(keys))
    counts: dict[bytes, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    # Cumulative counts over the distinct keys: the sorted sample, without repeating keys.
    ends = list(itertools.accumulate(counts[key] for _, key in ordered))
    points: list[bytes] = []
    step = len(keys) / num_partitions
    index = 0  # the first distinct key not yet a split point
    for cut in range(1, num_partitions):
        # The key at position round(step * cut) of the sorted sample (with repeats) ...
        position = round(step * cut)
        while index < len(ordered) and ends[index] <= position:
            index += 1
        # ... or the next larger one when that key is a split point already.
        if index >= len(ordered):
            break
        points.append(ordered[index][1])
        index += 1
    return points


def run_sample_task(files: FileSystems, spec: SampleTaskSpec) -> SampleManifest:
    """Run the mapper on the spec's pieces, pick the split points, write the manifest."""
    started = time.monotonic()
    fmt = RecordFormat.of(spec.job)
    info = reporter.TaskInfo("map", spec.dag_id, spec.run_id, 0, "sample")
    with (
        task_working_folder(files, spec.job.files),  # as a map task: with the shipped files
        reporter.running(info),
        task_lifecycle(spec.job.dataplane.lifecycle),
    ):
        try:
            sample, records, stopped = _sample(files, spec, fmt, info, skip_mode=False)
        except CommandFailedError as exc:
            if exc.role != "mapper" or not spec.job.dataplane.bad_records.enabled:
                raise
            # As the map task would: find the records the command crashes on, skip them.
            print(f"{exc}\nsampling again in skip mode", file=sys.stderr, flush=True)
            sample, records, stopped = _sample(files, spec, fmt, info, skip_mode=True)
    points = pick_split_points(sample.keys, spec.job.num_partitions, fmt.key_order)
    manifest = SampleManifest(
        split_points=points,
        records=records,
        keys=sample.seen,
        seconds=time.monotonic() - started,
        stopped_early=stopped,
    )
    files.write_bytes(spec.manifest_uri, manifest.model_dump_json().encode())
    return manifest


def _sample(
    files: FileSystems,
    spec: SampleTaskSpec,
    fmt: RecordFormat,
    info: reporter.TaskInfo,
    skip_mode: bool,
) -> tuple[KeySample, int, bool]:
    """(the keys, input records read, whether the time bound stopped it)."""
    job, dataplane = spec.job, spec.job.dataplane
    wanted = KEYS_PER_SAMPLE * sum(piece.records for piece in spec.pieces)
    cap = min(MAX_KEYS, max(MIN_KEYS, wanted))
    sample = KeySample(fmt, cap)
    env = {
        **dataplane.streaming.cmdenv,
        "mapreduce_job_name": spec.dag_id,
        "mapreduce_job_id": spec.run_id,
        "mapreduce_job_reduces": str(job.num_partitions),
        "mapreduce_task_attempt_id": "sample",
        "stream_map_output_field_separator": dataplane.streaming.separator,
        "stream_num_map_output_key_fields": str(dataplane.streaming.key_fields),
    }
    mappers = {
        index: Step(job.mapper_of(index), "mapper", Codec(job.codec), fmt, info.counters,
                    env, skip_mode=skip_mode, input_pairs=job.input_pairs)
        for index in {piece.split.input for piece in spec.pieces}
    }  # fmt: skip
    dead = DeadLetters(dataplane.bad_records, "mapper")
    jsonlines = dataplane.formats.input == "jsonlines"
    reader = _PieceReader(files, time.monotonic() + spec.max_seconds)
    # One run of the mapper (its input's) per input object, over all of its pieces.
    for uri, group in itertools.groupby(spec.pieces, key=lambda piece: piece.split.uri):
        pieces = list(group)
        if reader.stopped:
            break
        span = _span(uri, pieces)
        split_env = {
            "mapreduce_task_ismap": "true",
            "mapreduce_task_partition": "0",
            "mapreduce_map_input_file": uri,
            "mapreduce_map_input_start": str(span.offset),
            "mapreduce_map_input_length": str(span.length if span.length is not None else -1),
        }
        mapper = mappers[span.input]
        mapper.map_into(reader.blocks(pieces), span, split_env, dead, jsonlines, sample)
    return sample, reader.records, reader.stopped


def _span(uri: str, pieces: list[SamplePiece]) -> InputSplit:
    """One split covering the pieces of one object (what messages and env name)."""
    first, last = pieces[0].split, pieces[-1].split
    if first.length is None or last.length is None:
        return first
    return InputSplit(uri=uri, offset=first.offset, length=last.offset + last.length - first.offset)


class _PieceReader:
    """The first lines of each piece, up to its record count, until the deadline."""

    def __init__(self, files: FileSystems, deadline: float) -> None:
        self.files = files
        self.deadline = deadline
        self.records = 0
        self.stopped = False

    def blocks(self, pieces: list[SamplePiece]) -> Iterator[tuple[int, bytes]]:
        for piece in pieces:
            wanted = piece.records
            for start, read in iter_split_blocks(self.files, piece.split):
                if time.monotonic() > self.deadline:
                    self.stopped = True
                    return
                block, count = _first_lines(read, wanted)
                self.records += count
                wanted -= count
                yield start, block
                if wanted == 0:
                    break


def _first_lines(block: bytes, most: int) -> tuple[bytes, int]:
    """The block's first `most` lines (all of them if it has fewer) and how many those are."""
    lines = block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)
    if lines <= most:
        return block, lines
    end = -1
    for _ in range(most):
        end = block.find(b"\n", end + 1)
    return block[: end + 1], most


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mapreduce.worker.sampler",
        description="Sample a job's map output keys for total order (run by the plan step).",
    )
    parser.add_argument("sample_spec_uri", help="URI of the sample spec (file://, s3://, ...)")
    args = parser.parse_args(argv)
    files = FileSystems()
    try:
        spec = SampleTaskSpec.model_validate_json(files.read_bytes(args.sample_spec_uri))
        manifest = run_sample_task(files, spec)
    except MapReduceError as exc:
        print(f"airflow-mapreduce sampler: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"total order: {sample_summary(manifest)}", file=sys.stderr, flush=True)
    return 0


def sample_summary(manifest: SampleManifest) -> str:
    stopped = " (stopped by partitioner.sample_seconds)" if manifest.stopped_early else ""
    return (
        f"mapper ran on {manifest.records} sampled records{stopped} in "
        f"{manifest.seconds:.1f} s: {manifest.keys} keys, "
        f"{len(manifest.split_points)} split point(s)"
    )


if __name__ == "__main__":
    sys.exit(main())
