"""Each task's manifest reports its peak memory and its commands'; commit keeps the max.

The reference sizes are what the test's own mappers allocate (and touch), not numbers
the worker computed. (The per-task reset of a work-queue worker: tests/queue.)
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow_mapreduce.job import parse_job_text

MIB = 1 << 20
HOG = 200 * MIB
# A streaming mapper that holds HOG bytes of touched pages for a while (as it would while
# working; the worker samples commands every 50 ms) and passes its input through.
HOG_COMMAND = (
    f"import sys, time; hog = bytearray({HOG}); hog[::4096] = b'x' * len(hog[::4096]); "
    "time.sleep(0.5); sys.stdout.write(sys.stdin.read())"
)


def test_the_largest_commands_peak_is_reported_per_phase(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "words.txt").write_text("a\nb\na\nc\n")
    job = parse_job_text(
        "dag_id: mem\ninput: {uri: unused}\noutput: unused\nreducers: 1\n"
        f'mapper: {{command: [{sys.executable}, -c, "{HOG_COMMAND}"]}}\n'
        # cat, living long enough to be sampled: a command that exits within the 50 ms
        # sampling interval may go unseen on a busy machine (a documented limit)
        "reducer: {command: [sh, -c, 'cat; sleep 0.3']}\n"
    )
    result = run_job(job, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert result.records == 4  # every line passed through, as its own key
    mapped, reduced = result.peak_memory["map"], result.peak_memory["reduce"]
    # the command's own peak: not the worker's (this process), nor the two added up
    assert HOG <= mapped.commands_bytes < HOG + 64 * MIB
    assert 0 < reduced.commands_bytes < HOG // 2  # sh/cat; the map's command is not counted
    assert mapped.worker_bytes > 0
