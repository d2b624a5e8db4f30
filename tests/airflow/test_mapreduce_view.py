"""The MapReduce view on the surface users meet: a real `airflow standalone` (the plugin
loaded by the API server from the package's entry point), the UI logged in through its
login form in headless Chromium, and the view's API with and without credentials.

The job's mappers wait for a gate file, so the test sees the run going on, then opens the
gate and watches the same page (no reload) reach the committed state. Numbers on the page
are checked against _manifest.json and against counts made here from the input.
"""

from __future__ import annotations

import collections
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.airflow.standalone import Airflow, standalone

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
DAG_ID = "gated_wordcount"
GATED_MAPPER = """\
import os, sys, time
gate = sys.argv[1]
while not os.path.exists(gate):
    time.sleep(0.2)
words = 0
for line in sys.stdin:
    for word in line.split():
        words += 1
        print(f"{word}\\t1")
print(f"reporter:counter:Words,seen,{words}", file=sys.stderr)
"""


def job_yaml(data: Path, gate: Path, out: Path) -> str:
    return f"""\
dag_id: {DAG_ID}
schedule: null
input:
  uri: {data}
  split_size: 1KiB
mapper:
  command: [python3, gated_mapper.py, "{gate}"]
reducer:
  command: [python3, reducer.py]
reducers: 3
output: {out}/{{{{ run_id }}}}
backend: local
"""


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Airflow, Path, Path]]:
    root = tmp_path_factory.mktemp("mapreduce-view")
    data, dags, gates, out = root / "data", root / "dags", root / "gates", root / "out"
    for folder in (data, dags, gates, root / "home"):
        folder.mkdir()
    words = [f"w{i}" for i in range(60)] + ["naïve", "日本"]
    rng = random.Random(7)
    for n in range(3):  # ~2.5 KiB each: 3 map tasks a file with 1 KiB splits
        lines = [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(80)]
        (data / f"part{n}.txt").write_text("\n".join(lines) + "\n")
    (dags / "gated_mapper.py").write_text(GATED_MAPPER)
    reducer = REPO / "dags/mapreduce_jobs/wordcount/reducer_current_word.py"
    (dags / "reducer.py").write_text(reducer.read_text())
    (dags / f"{DAG_ID}.yaml").write_text(job_yaml(data, gates / "open", out))
    (dags / "mapreduce_dags.py").write_text((REPO / "dags/mapreduce_dags.py").read_text())
    env = {"AIRFLOW__CORE__PARALLELISM": "3"}
    with standalone(root / "home", dags, DAG_ID, env) as airflow:
        airflow.unpause(DAG_ID)
        yield airflow, data, gates / "open"


def independent_counts(data: Path) -> tuple[int, collections.Counter[str]]:
    lines, words = 0, collections.Counter[str]()
    for path in sorted(data.iterdir()):
        text = path.read_text()
        lines += text.count("\n")
        words.update(text.split())
    return lines, words


def view(airflow: Airflow, run_id: str) -> dict[str, Any]:
    answer = airflow.client.get(f"/mapreduce/runs/{DAG_ID}/{run_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_mapreduce_tab_follows_a_run_to_its_commit(gated: tuple[Airflow, Path, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    airflow, data, gate = gated
    triggered = airflow.trigger(DAG_ID, {})
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["dag_run_id"]

    def maps_started() -> bool:
        job = next(iter(view(airflow, run_id)["jobs"]), None)
        return bool(job and job["phases"] and job["phases"][0]["running"] >= 1)

    airflow.wait("a map task to be running", maps_started, 240)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            log_in(page, airflow)
            page.goto(f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}/plugin/mapreduce_run")
            tab = page.frame_locator("iframe")
            map_card = tab.get_by_test_id("phase-map")
            expect(map_card).to_be_visible(timeout=60_000)
            # Going on: the plan is done, maps wait at the gate, nothing is committed.
            plan_step = tab.get_by_test_id("step-plan").locator(".badge")
            expect(plan_step).to_have_attribute("data-state", "success")
            expect(tab.get_by_test_id("progress-map")).to_contain_text("0 /")
            expect(tab.get_by_test_id("output")).to_contain_text("not committed yet")
            page.screenshot(path=str(ARTIFACTS / "mapreduce-view-running.png"), full_page=True)

            gate.touch()  # the same page, no reload, must reach the end of the run
            committed = tab.get_by_test_id("output").locator(".badge")
            expect(committed).to_have_attribute("data-state", "success", timeout=240_000)
            expect(committed).to_have_text("committed")
            assert airflow.wait_for_run(DAG_ID, run_id) == "success"
            page.set_viewport_size({"width": 1400, "height": 2000})  # the whole tab
            page.wait_for_timeout(500)  # (the last refresh's paint, for the screenshot)
            page.screenshot(path=str(ARTIFACTS / "mapreduce-view.png"), full_page=True)

            check_committed_tab(tab, airflow, run_id, data)

            # The task instance page has the tab too, with that task's row picked out.
            page.goto(
                f"{airflow.url}/dags/{DAG_ID}/runs/{run_id}/tasks/reduce/mapped/1/plugin/mapreduce_task"
            )
            row = page.frame_locator("iframe").get_by_test_id("task-reduce-1")
            expect(row).to_have_class(re.compile("highlight"), timeout=60_000)
        finally:
            browser.close()


def check_committed_tab(tab: Any, airflow: Airflow, run_id: str, data: Path) -> None:
    """The tab's numbers against _manifest.json and against counts made here."""
    from playwright.sync_api import expect

    manifest_uri = airflow.client.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/commit/xcomEntries/return_value"
    ).json()["value"]
    manifest = json.loads(Path(manifest_uri.removeprefix("file://")).read_text())
    lines, words = independent_counts(data)
    assert manifest["records"] == len(words)

    num_maps = len(view(airflow, run_id)["jobs"][0]["phases"][0]["tasks"])
    assert num_maps >= 3
    expect(tab.get_by_test_id("progress-map")).to_contain_text(f"{num_maps} / {num_maps}")
    expect(tab.get_by_test_id("progress-reduce")).to_contain_text("3 / 3")
    expect(tab.get_by_test_id("records-map")).to_have_text(f"{lines:,} / {sum(words.values()):,}")
    expect(tab.get_by_test_id("records-reduce")).to_contain_text(f"/ {manifest['records']:,}")
    expect(tab.get_by_test_id("output-records")).to_have_text(f"{manifest['records']:,}")
    for group, names in manifest["counters"].items():
        for name, value in names.items():
            row = tab.locator(f'[data-testid="counter"][data-group="{group}"][data-name="{name}"]')
            expect(row).to_contain_text(f"{value:,}")
    assert manifest["counters"]["Words"]["seen"] == sum(words.values())
    # The skew line is computed from the parts the manifest lists.
    records = [p["records"] for p in manifest["files"]]
    skew = max(records) / (sum(records) / len(records))
    expect(tab.get_by_test_id("skew")).to_contain_text(f"{skew:.2f}\N{MULTIPLICATION SIGN}")


def log_in(page: Any, airflow: Airflow) -> None:
    """Through the UI's own login form, with standalone's generated password."""
    passwords = airflow.home / "simple_auth_manager_passwords.json.generated"
    username, password = next(iter(json.loads(passwords.read_text()).items()))
    page.goto(airflow.url)
    page.get_by_label(re.compile("username", re.I)).fill(username)
    page.get_by_label(re.compile("password", re.I)).fill(password)
    page.get_by_role("button", name=re.compile("sign in|log in|login", re.I)).click()
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"), timeout=60_000)


@pytest.mark.parametrize(
    "path",
    [
        f"/mapreduce/runs/{DAG_ID}/some_run",
        f"/mapreduce/runs/{DAG_ID}/some_run/bad-records?job={DAG_ID}&task=0",
        f"/mapreduce/view?dag_id={DAG_ID}&run_id=some_run",
        "/mapreduce/static/view.js",
    ],
)
def test_the_view_refuses_requests_without_credentials(
    gated: tuple[Airflow, Path, Path], path: str
) -> None:
    airflow, _, _ = gated
    anonymous = httpx.get(f"{airflow.url}{path}", timeout=60)
    assert anonymous.status_code in (401, 403), anonymous.text
    forged = httpx.get(
        f"{airflow.url}{path}", headers={"Authorization": "Bearer not-a-token"}, timeout=60
    )
    assert forged.status_code in (401, 403), forged.text
    assert airflow.client.get(path).status_code in (200, 404)  # the same with a real token
