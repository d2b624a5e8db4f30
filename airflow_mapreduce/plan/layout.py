"""The one module that owns where a run's objects live.

    <work>/<dag_id>/<run_id>/plan.json | shuffle.json
    <work>/<dag_id>/<run_id>/files/<name> (shipped files, staged by the plan for every task)
    <work>/<dag_id>/<run_id>/sample/00000/spec.json | manifest.json (total order's sampler)
    <work>/<dag_id>/<run_id>/map/<task>/spec.json | manifest.json | attempt-<id>/part-<r>
    <work>/<dag_id>/<run_id>/reduce/<task>/spec.json | manifest.json | attempt-<id>/part-<r>
    <work>/<dag_id>/<run_id>/step-<k>/plan.json | map/ | reduce/ ... (steps 2, 3, ... of a
        multi-step job: each step's own plan and tasks; the last step's parts are the output)
    <output>/part-00000 ... | part-m-00000 ... (map-only) | _manifest.json | _SUCCESS
    <output>/_job_history.json (per task: what it read and wrote, when; plan/history.py)
    <output>/_IN_PROGRESS (the lease of the run writing it) | _bad_records/map-<task>.jsonl
    <output>/_bad_records/step-<k>-map-<task>.jsonl (a later step's skipped records)

A task's manifest is written last, after its data; it names the attempt whose files count.
Workers never write the output: the commit copies the committed attempts' parts there,
then writes _manifest.json and, last, _SUCCESS.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from airflow_mapreduce.storage import check_writable_root, join_uri

HISTORY_NAME = "_job_history.json"
MARKER_NAMES = ("_SUCCESS", "_manifest.json", HISTORY_NAME)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_key_part(name: str) -> str:
    """A single key component from user or Airflow input that cannot escape its prefix."""
    # No separators, and no leading dot: "..", "." and hidden names cannot arise.
    cleaned = _UNSAFE.sub("_", name)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned != name:
        # Keep distinct names distinct after cleaning ("a:b" vs "a_b").
        cleaned = f"{cleaned}-{zlib.crc32(name.encode()):08x}"
    return cleaned


@dataclass(frozen=True)
class RunLayout:
    work_root: str
    dag_id: str
    run_id: str
    step: int = 0  # 0-based step of a multi-step job: where its plan and tasks live

    def __post_init__(self) -> None:
        check_writable_root(self.work_root, "work URI")

    @property
    def run_root(self) -> str:
        return join_uri(self.work_root, safe_key_part(self.dag_id), safe_key_part(self.run_id))

    @property
    def step_root(self) -> str:
        """The first step's plan and tasks sit in the run's folder (as a one-step job's)."""
        return self.run_root if self.step == 0 else join_uri(self.run_root, f"step-{self.step + 1}")

    @property
    def plan_uri(self) -> str:
        return join_uri(self.step_root, "plan.json")

    @property
    def shuffle_uri(self) -> str:
        return join_uri(self.step_root, "shuffle.json")

    @property
    def shipped_files_dir(self) -> str:
        return join_uri(self.run_root, "files")

    def shipped_file_uri(self, name: str) -> str:
        return join_uri(self.shipped_files_dir, safe_key_part(name))

    def phase_dir(self, phase: str) -> str:
        return join_uri(self.step_root, phase)

    @staticmethod
    def task_name(index: int) -> str:
        return f"{index:05d}"

    def task_dir(self, phase: str, index: int) -> str:
        return join_uri(self.phase_dir(phase), self.task_name(index))

    def spec_uri(self, phase: str, index: int) -> str:
        return join_uri(self.task_dir(phase, index), "spec.json")

    def manifest_uri(self, phase: str, index: int) -> str:
        return join_uri(self.task_dir(phase, index), "manifest.json")

    @staticmethod
    def attempt_dir_of(task_dir: str, attempt: str) -> str:
        return join_uri(task_dir, f"attempt-{attempt}")


@dataclass(frozen=True)
class OutputLayout:
    root: str

    def __post_init__(self) -> None:
        check_writable_root(self.root, "output URI")

    def part_uri(self, partition: int) -> str:
        return join_uri(self.root, f"part-{partition:05d}")

    def map_part_uri(self, map_task: int) -> str:
        return join_uri(self.root, f"part-m-{map_task:05d}")

    @property
    def manifest_uri(self) -> str:
        return join_uri(self.root, "_manifest.json")

    @property
    def history_uri(self) -> str:
        return join_uri(self.root, HISTORY_NAME)

    @property
    def markers(self) -> tuple[str, ...]:
        """What every commit rewrites: the run's record, not its data."""
        return (self.success_uri, self.manifest_uri, self.history_uri)

    @property
    def bad_records_root(self) -> str:
        return join_uri(self.root, "_bad_records")

    def bad_records_uri(self, map_task: int, step: int = 0) -> str:
        prefix = "" if step == 0 else f"step-{step + 1}-"
        return join_uri(self.bad_records_root, f"{prefix}map-{map_task:05d}.jsonl")

    @property
    def success_uri(self) -> str:
        return join_uri(self.root, "_SUCCESS")

    @property
    def lease_uri(self) -> str:
        return join_uri(self.root, "_IN_PROGRESS")

    @property
    def default_work_root(self) -> str:
        # Hadoop's convention: names starting with "_" are not data for downstream readers.
        return join_uri(self.root, "_temporary")
