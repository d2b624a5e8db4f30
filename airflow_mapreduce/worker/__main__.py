"""``python -m airflow_mapreduce.worker <task-spec-uri>``: run one map or reduce task."""

from __future__ import annotations

import argparse
import sys

from airflow_mapreduce.errors import MapReduceError
from airflow_mapreduce.worker.run import run_task, task_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_mapreduce.worker",
        description="Run one MapReduce map or reduce task from its task spec.",
    )
    parser.add_argument(
        "task_spec_uri", nargs="?", help="URI of the task's spec.json (file://, s3://, ...)"
    )
    parser.add_argument(
        "--pull",
        metavar="QUEUE",
        help="work-queue mode: run task specs pulled from this queue until it is finished "
        "(queue URL in $AIRFLOW_MAPREDUCE_QUEUE_URL)",
    )
    args = parser.parse_args(argv)
    if args.pull:
        from airflow_mapreduce.queue.pull import run_pull_worker

        return run_pull_worker(args.pull)
    if not args.task_spec_uri:
        parser.error("give a task spec URI, or --pull QUEUE")
    try:
        manifest = run_task(args.task_spec_uri)
    except MapReduceError as exc:
        # Expected failures carry a complete message; a traceback would only hide it.
        print(f"airflow-mapreduce worker: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"airflow-mapreduce worker: {task_summary(manifest)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
