"""Airflow entry points: the task-group builder and the YAML DAG factory."""

from airflow_mapreduce.airflow.factory import build_dag, load_yaml_dags
from airflow_mapreduce.airflow.task_group import add_mapreduce_tasks, mapreduce_task_group

__all__ = ["add_mapreduce_tasks", "build_dag", "load_yaml_dags", "mapreduce_task_group"]
