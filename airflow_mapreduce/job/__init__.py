"""The job contract: pydantic models of the YAML and its safe, line-aware loader.

No Airflow and no I/O beyond reading the YAML file itself.
"""

from airflow_mapreduce.job.loader import load_job_file, parse_job_text
from airflow_mapreduce.job.models import DagSettings, JobFile, JobSpec, StepSpec

__all__ = ["DagSettings", "JobFile", "JobSpec", "StepSpec", "load_job_file", "parse_job_text"]
