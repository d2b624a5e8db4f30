"""MapReduce jobs on Kubernetes as Apache Airflow 3 DAGs.

The package root stays import-light: worker pods import ``airflow_mapreduce.worker``
without Airflow installed. The Airflow entry points live in ``airflow_mapreduce.airflow``.
"""

__version__ = "0.1.0"
