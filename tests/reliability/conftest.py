"""Helpers of the reliability suite: a small corpus, real worker processes, kill points."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

WORDCOUNT_JOB = """\
dag_id: wc_faults
input: {uri: unused, split_size: 48KiB}
mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}
reducer: {command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}
reducers: 3
output: unused
"""


@dataclass(frozen=True)
class SmallCorpus:
    folder: Path
    counts: collections.Counter[str]


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> SmallCorpus:
    """~200 KB of words over 3 files (LF, CRLF, no final newline); counted independently."""
    rng = random.Random(2026)
    folder = tmp_path_factory.mktemp("small-corpus")
    words = [f"w{i}" for i in range(3000)] + ["naïve", "日本"]
    for index, eol in enumerate(["\n", "\r\n", "\n"]):
        lines = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(3500)]
        text = eol.join(lines) + (eol if index < 2 else "")
        (folder / f"f{index}.txt").write_bytes(text.encode())
    counts: collections.Counter[str] = collections.Counter()
    for path in folder.iterdir():
        counts.update(path.read_bytes().decode().split())
    return SmallCorpus(folder, counts)


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(DAGS), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def start_worker(spec_uri: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The real worker command, in its own process group (it starts mapper processes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_mapreduce.worker", spec_uri],
        cwd=DAGS,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def run_worker(spec_uri: str, env: dict[str, str]) -> None:
    proc = start_worker(spec_uri, env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stderr:
        proc.stderr.close()


def kill_when(
    proc: subprocess.Popen[bytes],
    happened: Callable[[], bool],
    delay: float,
    poll: float = 0.002,
    timeout: float = 60,
) -> None:
    """SIGKILL the process group `delay` seconds after `happened()` first holds (or it exits)."""
    deadline = time.monotonic() + timeout
    while not happened() and proc.poll() is None:
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(poll)
    time.sleep(delay)
    kill_group(proc)
