"""The MapReduce view's FastAPI app, mounted by Airflow's API server at /mapreduce.

Every route asks Airflow's auth manager, as Airflow's own routes do: the JWT of the UI's
session cookie or a bearer token, and read access to the DAG's runs and task instances
(the bad-records preview also to its XComs, as it shows records of the job's data).
Storage and the metadata DB are read in a thread: the API server's event loop stays free.
"""

from __future__ import annotations

from importlib.resources import files as package_files

from fastapi import Depends, FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from airflow_mapreduce.airflow.ui.run_view import RunView, bad_records_preview, run_view
from airflow_mapreduce.version_compat import requires_dag_access, requires_user

STATIC = package_files("airflow_mapreduce.airflow.ui") / "static"
ASSET_TYPES = {"view.js": "text/javascript", "view.css": "text/css"}

app = FastAPI(title="MapReduce view", docs_url=None, redoc_url=None, openapi_url=None)
can_read_runs = [
    Depends(requires_dag_access("RUN")),
    Depends(requires_dag_access("TASK_INSTANCE")),
]


logged_in = [Depends(requires_user())]


@app.get("/view", response_class=HTMLResponse, dependencies=logged_in)
def view_page() -> HTMLResponse:
    """The page in the tab; it reads the run through the routes below."""
    return HTMLResponse((STATIC / "view.html").read_text(), headers=_no_store())


@app.get("/static/{name}", dependencies=logged_in)
def asset(name: str) -> Response:
    if name not in ASSET_TYPES:
        raise HTTPException(404, f"no asset {name!r}")
    return Response((STATIC / name).read_text(), media_type=ASSET_TYPES[name])


@app.get("/runs/{dag_id}/{run_id}", dependencies=can_read_runs)
async def get_run(dag_id: str, run_id: str) -> RunView:
    return await run_in_threadpool(run_view, dag_id, run_id)


@app.get(
    "/runs/{dag_id}/{run_id}/bad-records",
    dependencies=[*can_read_runs, Depends(requires_dag_access("XCOM"))],
    response_class=PlainTextResponse,
)
async def get_bad_records(dag_id: str, run_id: str, job: str, task: int) -> PlainTextResponse:
    """The first records a map task skipped (a bounded preview of its dead-letter file)."""
    text = await run_in_threadpool(bad_records_preview, dag_id, run_id, job, task)
    if text is None:
        raise HTTPException(404, f"map task {task} of job {job!r} has no bad records")
    return PlainTextResponse(text, headers=_no_store())


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store"}
