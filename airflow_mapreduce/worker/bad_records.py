"""Bad records: skipped into a dead-letter object within a budget, never silently dropped.

The dead-letter object is JSON lines under the task's attempt directory, one line per
record: {"split", "uri", "offset", "error", "record"}. Over budget, the task fails and
names the first bad record.
"""

from __future__ import annotations

import json

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.job.dataplane import BadRecordSettings
from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems

SHOWN_BYTES = 200


class DeadLetters:
    def __init__(self, settings: BadRecordSettings, role: str) -> None:
        self.settings = settings
        self.role = role
        self.entries: list[bytes] = []
        self.first: str | None = None

    @property
    def count(self) -> int:
        return len(self.entries)

    def add(self, split: InputSplit, offset: int, record: bytes, error: str) -> None:
        """Record a bad record, or raise when skipping is off or the count budget is spent."""
        where = f"split {split.describe()}, record at byte offset {offset}"
        message = f"{self.role} {error} on {where}: {record[:SHOWN_BYTES]!r}"
        if self.first is None:
            self.first = message
        if not self.settings.enabled:
            raise RecordError(
                f"{message}. To skip such records into a dead-letter object instead, set "
                "bad_records.max_count (or max_ratio) in the job."
            )
        self.entries.append(
            json.dumps(
                {
                    "split": split.describe(),
                    "uri": split.uri,
                    "offset": offset,
                    "error": error,
                    "record": record.decode("utf-8", "backslashreplace"),
                },
                ensure_ascii=False,
            ).encode()
        )
        if self.settings.max_ratio is None and self.count > self.settings.max_count:
            self._over_budget(f"more than max_count={self.settings.max_count}")

    def check_ratio(self, input_records: int) -> None:
        ratio = self.settings.max_ratio
        if ratio is None or not self.entries:
            return
        if self.count > max(self.settings.max_count, ratio * input_records):
            self._over_budget(
                f"{self.count} of {input_records} records, more than max_ratio={ratio}"
            )

    def write(self, files: FileSystems, uri: str) -> str | None:
        if not self.entries:
            return None
        files.write_bytes(uri, b"\n".join(self.entries) + b"\n")
        return uri

    def _over_budget(self, what: str) -> None:
        raise RecordError(
            f"bad records over budget ({what}); the first bad record: {self.first}. "
            "Fix the mapper or the input, or raise bad_records.max_count / max_ratio."
        )
