"""The loader file of earlier releases; it now defines no DAG.

Airflow parses each job YAML in this folder as a DAG file of its own (airflow-mapreduce's
YAML DAG importer), so a broken YAML hides only itself. This file stays as a sentinel: in
an Airflow process without the importer its import error says why no job DAG appears.
"""

from airflow_mapreduce.airflow import load_yaml_dags

load_yaml_dags(__file__, globals())
