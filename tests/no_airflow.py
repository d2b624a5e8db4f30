"""Running the worker as in an image without Airflow: every `airflow` import fails."""

from __future__ import annotations

# Passed to `python -c`; the worker's own arguments follow it.
BLOCK_AIRFLOW = """
import importlib.abc, runpy, sys

class NoAirflow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"{name} must not be imported by the worker")
        return None

sys.meta_path.insert(0, NoAirflow())
sys.argv = ["worker", *sys.argv[1:]]
try:
    runpy.run_module("airflow_mapreduce.worker", run_name="__main__")
finally:
    assert not any(m == "airflow" or m.startswith("airflow.") for m in sys.modules)
"""
