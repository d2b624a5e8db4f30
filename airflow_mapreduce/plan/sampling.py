"""partitioner.kind total_order at plan time: where the sample is read, and running the
sampler (worker/sampler.py) where the plan runs, to get the split points.

The sample is spread over the whole input, not taken from its first records (which may be
sorted already, or a header): `samples` records from evenly spaced, disjoint windows of
the input's bytes, about RECORDS_PER_PIECE records each; a compressed object cannot be
cut, so a window landing in one reads that object's first records.
"""

from __future__ import annotations

import collections
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO

from airflow_mapreduce.errors import PlanError
from airflow_mapreduce.job.dataplane import PartitionerSettings
from airflow_mapreduce.launch import job_dir_env
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.splits import split_weight
from airflow_mapreduce.plan.tasks import (
    InputSplit,
    JobRuntime,
    SampleManifest,
    SamplePiece,
    SampleTaskSpec,
)
from airflow_mapreduce.storage import FileSystems

SAMPLER_MODULE = "airflow_mapreduce.worker.sampler"
RECORDS_PER_PIECE = 100
MAX_PIECES = 1000
PIECE_BYTES = 64 << 10  # a window's most bytes: 100 records of up to 650 bytes
# How long past partitioner.sample_seconds a sampler may take to end (its mapper finishing
# the records it has, its start-up): then it is killed with its commands.
GRACE_SECONDS = 120
STDERR_TAIL = 20

# Runs the sample spec written at a URI to its manifest (in this process, or a subprocess).
SampleRunner = Callable[[str, SampleTaskSpec], None]


def sample_pieces(
    splits: list[InputSplit], sizes: dict[str, int], samples: int
) -> list[SamplePiece]:
    """Up to `samples` records' worth of pieces, evenly spaced over the splits' bytes
    (a compressed split weighs its compressed size), none overlapping another."""
    weights = [split_weight(split, sizes) for split in splits]
    total = sum(weights)
    # At least a byte apart, so windows never overlap: no record is sampled twice.
    count = min(MAX_PIECES, total, max(1, math.ceil(samples / RECORDS_PER_PIECE)))
    quota = math.ceil(samples / count)
    spacing = total / count
    window = max(1, min(PIECE_BYTES, math.floor(spacing)))
    pieces: list[SamplePiece] = []
    whole: dict[int, int] = {}  # compressed split -> its records
    index, start = 0, 0  # the split holding `position`, and where it starts in `total`
    for number in range(count):
        position = math.floor(number * spacing)
        while start + weights[index] <= position:
            start += weights[index]
            index += 1
        split = splits[index]
        if split.length is None:
            whole[index] = whole.get(index, 0) + quota
            continue
        offset = split.offset + position - start
        # To the end of the object at most (the next split of an object is the next in
        # `splits`, and the next position at least `window` further on).
        length = min(window, sizes.get(split.uri, split.offset + split.length) - offset)
        piece = InputSplit(uri=split.uri, offset=offset, length=length)
        pieces.append(SamplePiece(split=piece, records=quota))
    for index, records in whole.items():
        pieces.append(SamplePiece(split=splits[index], records=records))
    # In input order: a run of the mapper per object, each object read front to back.
    order = {split.uri: number for number, split in enumerate(splits)}
    return sorted(pieces, key=lambda piece: (order[piece.split.uri], piece.split.offset))


def sample_split_points(
    files: FileSystems,
    layout: RunLayout,
    runtime: JobRuntime,
    splits: list[InputSplit],
    sizes: dict[str, int],
    settings: PartitionerSettings,
    run_sample: SampleRunner | None = None,
) -> tuple[JobRuntime, SampleManifest]:
    """The runtime with the split points the sampler picked, and what it found.

    `run_sample` runs the sampler (default: in this process, for callers that run tasks in
    their own process; the CLI and Airflow's plan task run a SampleWorker)."""
    spec = SampleTaskSpec(
        dag_id=layout.dag_id,
        run_id=layout.run_id,
        job=runtime,
        pieces=sample_pieces(splits, sizes, settings.samples),
        max_seconds=settings.sample_seconds,
        manifest_uri=layout.manifest_uri("sample", 0),
    )
    spec_uri = layout.spec_uri("sample", 0)
    files.write_bytes(spec_uri, spec.model_dump_json().encode())
    (run_sample or _in_process(files))(spec_uri, spec)
    try:
        manifest = SampleManifest.model_validate_json(files.read_bytes(spec.manifest_uri))
    except Exception as exc:
        raise PlanError(
            f"the total-order sampler left no readable result at {spec.manifest_uri} ({exc})"
        ) from None
    return runtime.model_copy(update={"split_points": manifest.split_points}), manifest


def _in_process(files: FileSystems) -> SampleRunner:
    def run(spec_uri: str, spec: SampleTaskSpec) -> None:
        from airflow_mapreduce.worker.sampler import run_sample_task, sample_summary

        print(f"total order: {sample_summary(run_sample_task(files, spec))}", file=sys.stderr)

    return run


@dataclass(frozen=True)
class SampleWorker:
    """Runs the sampler as a worker subprocess where the plan runs, in the job's folder (its
    working folder and first on PYTHONPATH, as for a local worker task). Its output goes
    to this process's stderr; it is killed with its commands once it runs GRACE_SECONDS
    past the spec's time bound, or when this process stops waiting for it."""

    job_dir: str | None
    # The sampler's environment, given the storage URIs it touches (credentials for them);
    # default: this process's with the job's folder on PYTHONPATH.
    env: Callable[[list[str]], Mapping[str, str]] | None = None

    def __call__(self, spec_uri: str, spec: SampleTaskSpec) -> None:
        uris = [spec_uri, spec.manifest_uri, *(piece.split.uri for piece in spec.pieces)]
        if self.env is not None:
            env = dict(self.env(uris))
        else:
            env = job_dir_env(dict(os.environ), self.job_dir)
        proc = subprocess.Popen(
            [sys.executable, "-m", SAMPLER_MODULE, spec_uri],
            cwd=self.job_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: its commands stop with it
        )
        assert proc.stderr is not None
        tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        relay = threading.Thread(target=_relay, args=(proc.stderr, tail), daemon=True)
        relay.start()
        timeout = spec.max_seconds + GRACE_SECONDS
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PlanError(
                f"the total-order sampler ran longer than partitioner.sample_seconds "
                f"({spec.max_seconds:g} s) + {GRACE_SECONDS} s and was stopped: its mapper "
                "hangs or takes very long per record; lower partitioner.samples or fix the "
                "mapper"
            ) from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            relay.join(10)
        if code != 0:
            said = "\n".join(f"    {line}" for line in tail) or "    (no output)"
            raise PlanError(
                f"the total-order sampler (the job's mapper on a sample of the input, for "
                f"partitioner.kind total_order) failed with exit code {code}:\n{said}"
            )


def _relay(stream: IO[bytes], tail: collections.deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        tail.append(line)
        print(f"sample: {line}", file=sys.stderr, flush=True)
