"""The worker: runs one map or reduce task inside a pod or a local subprocess.

Imports no Airflow: ``pip install airflow-mapreduce[worker]`` is all an image needs.
Entry point: ``python -m airflow_mapreduce.worker <task-spec-uri>``.
"""

from airflow_mapreduce.worker.run import run_task

__all__ = ["run_task"]
