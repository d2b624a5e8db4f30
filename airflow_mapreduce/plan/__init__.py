"""Planning: the storage layout, input splits, task specs, shuffle and commit.

Pure logic plus fsspec storage; no Airflow. Both the Airflow tasks and the worker import it.
"""
