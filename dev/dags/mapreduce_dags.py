"""Airflow DAG file: turns every MapReduce job YAML in this folder into an Airflow DAG."""

from airflow_mapreduce.airflow import load_yaml_dags

load_yaml_dags(__file__, globals())
