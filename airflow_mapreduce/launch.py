"""How a worker process is started, wherever it runs: the one command (pods, local
subprocesses, pull workers) and the job folder on PYTHONPATH for local ones."""

from __future__ import annotations

import os

WORKER_MODULE = "airflow_mapreduce.worker"


def worker_command(python: str = "python") -> list[str]:
    """`python -m airflow_mapreduce.worker`; a task spec URI or `--pull <queue>` follows."""
    return [python, "-m", WORKER_MODULE]


def job_dir_env(env: dict[str, str], job_dir: str | None) -> dict[str, str]:
    """`env` with the job's folder first on PYTHONPATH: Python callables import from it,
    as from an image's workdir."""
    if job_dir:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [job_dir, env.get("PYTHONPATH")]))
    return env
