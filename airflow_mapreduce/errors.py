"""The one exception hierarchy of airflow-mapreduce.

Every message says what was expected, what was found, where (file:line, field path,
split, record offset, task) and how to fix it.
"""

from __future__ import annotations

from typing import Any


class MapReduceError(Exception):
    """Base class of every error this package raises on purpose."""


class JobSpecError(MapReduceError):
    """A job YAML (or the JobSpec built from Python) is invalid."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: invalid MapReduce job ({len(problems)} problem(s)):\n{listed}")


class PlanError(MapReduceError):
    """The input cannot be planned (nothing matched, bad override, too many tasks...)."""


class PlanRefusedError(PlanError):
    """The run's own settings cannot work (a bad override, an output that is not the job's
    to write, overlapping roots): retrying the same run cannot help."""


class ShuffleError(MapReduceError):
    """Map outputs are missing or inconsistent; reducing them would lose data."""


class CommitError(MapReduceError):
    """Reduce outputs are missing or inconsistent; the output is not committed."""


class TaskFailedError(MapReduceError):
    """A map or reduce task failed (user code raised, a command exited non-zero)."""


class CommandFailedError(TaskFailedError):
    """A streaming command started but exited non-zero or did not read all its input."""

    def __init__(self, message: str, role: str) -> None:
        super().__init__(message)
        self.role = role  # which step's command: mapper, combiner or reducer


class RecordError(TaskFailedError):
    """A record could not be processed; names the split and record offset."""


def raised_on_key(who: str, exc: BaseException, key: Any) -> RecordError:
    """The error of a user step `who` (e.g. "reducer m:f") that raised on one key."""
    return RecordError(f"{who} raised {exc!r} on key {key!r}")
