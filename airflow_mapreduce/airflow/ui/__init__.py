"""The MapReduce view: a tab on Airflow's DAG run and task instance pages (an Airflow 3
plugin: a FastAPI app under Airflow's auth, shown in the UI as an external view)."""
