"""Loaded through the ``airflow.policy`` entry point, which Airflow imports in every process
at start-up (``airflow.settings.initialize``), before any DAG file is listed: the earliest
place an installed package's code runs there. It installs the YAML DAG importer and
defines no cluster policy.
"""

import logging
import sys

_IMPORTER = "airflow_mapreduce.airflow.dag_importer"

if _IMPORTER in sys.modules and not hasattr(sys.modules[_IMPORTER], "install"):
    # The importer module is being imported before Airflow (it imports airflow, which
    # loads this entry point): whoever imports it calls install() when they need it.
    pass
else:
    try:
        from airflow_mapreduce.airflow.dag_importer import install

        install()
    except Exception:  # Airflow must still start; the loader file's import error says why
        logging.getLogger(__name__).exception("airflow-mapreduce's YAML DAG importer failed")
