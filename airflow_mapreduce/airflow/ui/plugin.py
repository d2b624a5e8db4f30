"""The Airflow plugin that adds the MapReduce view (registered by the package's
``airflow.plugins`` entry point: installing the provider is enough).

A "MapReduce" tab on every DAG run page and on every task instance page. Airflow cannot
show a tab for some DAGs only, so on a run without a MapReduce job the page says so.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mapreduce"
# Relative to the UI's base URL (Airflow fills in the placeholders).
RUN_HREF = "mapreduce/view?dag_id={DAG_ID}&run_id={RUN_ID}"
TASK_HREF = RUN_HREF + "&task_id={TASK_ID}&map_index={MAP_INDEX}"


def _app() -> Any:
    from airflow_mapreduce.airflow.ui.app import app

    return app


def _tab(href: str, destination: str, url_route: str) -> dict[str, str]:
    return {"name": "MapReduce", "href": href, "destination": destination, "url_route": url_route}


class MapReducePlugin(AirflowPlugin):
    name = "mapreduce"
    # (Airflow reads these class attributes; its base class declares them as lists.)
    fastapi_apps = [  # noqa: RUF012
        {"app": _app(), "url_prefix": URL_PREFIX, "name": "MapReduce view"}
    ]
    external_views = [  # noqa: RUF012
        _tab(RUN_HREF, "dag_run", "mapreduce_run"),
        _tab(TASK_HREF, "task_instance", "mapreduce_task"),
    ]
