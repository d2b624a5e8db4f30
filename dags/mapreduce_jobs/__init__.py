"""User code of the example jobs (importable by the worker; not DAG files)."""
