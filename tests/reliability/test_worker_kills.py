"""SIGKILL real worker processes (and the commit) at random points, retry, compare outputs.

Kill points are chosen per task from a seeded RNG (AMR_FAULT_SEEDS overrides the seeds):
shortly after start, while the attempt writes its files (once its first object appears),
or right after its manifest appears. Between a kill and its retry the test checks that
nothing half-written is visible: a task without a manifest makes shuffle/commit fail
naming that task, a manifest's files are all complete, and the output holds no part and
no _SUCCESS until the commit has finished.
"""

from __future__ import annotations

import collections
import os
import posixpath
import random
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mapreduce.errors import CommitError, ShuffleError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import read_plan
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.plan.tasks import TaskManifest
from airflow_mapreduce.storage import FileSystems
from tests.wordcount import word_counts

from .conftest import WORDCOUNT_JOB, kill_when, run_worker, start_worker, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEEDS = [int(s) for s in os.environ.get("AMR_FAULT_SEEDS", "101,202").split(",")]
KILL_POINTS = ("after_start", "while_writing", "after_manifest")


class FaultyRun:
    def __init__(self, files: FileSystems, env: dict[str, str], rng: random.Random | None):
        self.files = files
        self.env = env
        self.rng = rng
        self.kills: collections.Counter[str] = collections.Counter()
        # Each look at S3 costs requests that compete with the workers: look less often.
        self.poll = 0.002 if env.get("AWS_ENDPOINT_URL_S3") is None else 0.03

    def run(self, input_uri: str, output_uri: str) -> str:
        job = parse_job_text(WORDCOUNT_JOB)
        target = RunTarget("wc_faults", "manual__1", (input_uri,), output_uri, None, 3, 4)
        plan_uri, map_specs, _ = plan_run(self.files, job, target)
        plan = read_plan(self.files, plan_uri)
        layout = RunLayout(plan.work_uri, plan.dag_id, plan.run_id)
        assert len(map_specs) == 4
        for index, spec_uri in enumerate(map_specs):
            self._run_task(spec_uri, layout, "map", index, plan_uri)
        reduce_specs = shuffle_run(self.files, plan_uri, 3)
        for index, spec_uri in enumerate(reduce_specs):
            self._run_task(spec_uri, layout, "reduce", index, plan_uri)
        self._commit(plan_uri, OutputLayout(output_uri))
        return plan_uri

    def _run_task(
        self, spec_uri: str, layout: RunLayout, phase: str, index: int, plan: str
    ) -> None:
        # Up to two killed attempts before the one that is left to finish.
        for killed in range(2):
            if self.rng is None:
                break
            # The first task of each phase always loses one attempt; the rest by chance.
            if not (index == 0 and killed == 0) and self.rng.random() > 0.45:
                break
            point = self.rng.choice(KILL_POINTS)
            self.kills[f"{phase}:{point}"] += 1
            proc = start_worker(spec_uri, self.env)
            self._kill_at(proc, point, layout, phase, index)
            self._check_nothing_partial_visible(layout, phase, index, plan)
        run_worker(spec_uri, self.env)

    def _kill_at(
        self, proc: subprocess.Popen[bytes], point: str, layout: RunLayout, phase: str, index: int
    ) -> None:
        assert self.rng is not None
        task_dir = layout.task_dir(phase, index)
        manifest = layout.manifest_uri(phase, index)
        before = self._manifest_attempt(manifest)
        if point == "after_start":
            kill_when(proc, lambda: True, delay=self.rng.uniform(0, 0.6), poll=self.poll)
        elif point == "while_writing":
            kill_when(
                proc,
                lambda: self._attempt_objects(task_dir) > 0,
                self.rng.uniform(0, 0.02),
                self.poll,
            )
        else:  # a new manifest, i.e. the attempt's output is complete
            kill_when(
                proc, lambda: self._manifest_attempt(manifest) not in (None, before), 0, self.poll
            )

    def _attempt_objects(self, task_dir: str) -> int:
        fs = self.files.fs(task_dir)
        fs.invalidate_cache()
        return sum(
            len(self.files.find_all(d))
            for d in self.files.list_dir(task_dir)
            if posixpath.basename(d).startswith("attempt-")
        )

    def _manifest_attempt(self, uri: str) -> str | None:
        self.files.fs(uri).invalidate_cache()
        try:
            return TaskManifest.model_validate_json(self.files.read_bytes(uri)).attempt
        except FileNotFoundError:
            return None

    def _check_nothing_partial_visible(
        self, layout: RunLayout, phase: str, index: int, plan_uri: str
    ) -> None:
        manifest_uri = layout.manifest_uri(phase, index)
        output = OutputLayout(read_plan(self.files, plan_uri).output_uri)
        assert not self.files.exists(output.success_uri)
        assert not [u for u in self.files.list_dir(output.root) if "/part-" in u]
        if self._manifest_attempt(manifest_uri) is None:
            step, error = (
                (lambda: shuffle_run(self.files, plan_uri, 3), ShuffleError)
                if phase == "map"
                else (lambda: commit_run(self.files, plan_uri), CommitError)
            )
            with pytest.raises(
                error, match=rf"{phase}\[{index}\] left no manifest at {manifest_uri}"
            ):
                step()
            return
        manifest = TaskManifest.model_validate_json(self.files.read_bytes(manifest_uri))
        for part in manifest.files:  # a committed attempt is complete
            assert self.files.size(part.uri) == part.bytes

    def _commit(self, plan_uri: str, output: OutputLayout) -> None:
        code = (
            "import sys; from airflow_mapreduce.plan.commit import commit_run; "
            "from airflow_mapreduce.storage import FileSystems; "
            "commit_run(FileSystems(), sys.argv[1])"
        )
        command = [sys.executable, "-c", code, plan_uri]
        if self.rng is not None and self.rng.random() < 0.7:
            self.kills["commit"] += 1
            proc = subprocess.Popen(command, env=self.env, start_new_session=True)
            first_part = output.part_uri(0)
            kill_when(
                proc, lambda: self.files.exists(first_part), self.rng.uniform(0, 0.01), self.poll
            )
            if self.files.exists(output.success_uri):  # it finished before the kill
                assert self.files.exists(output.manifest_uri)
        done = subprocess.run(command, check=False, env=self.env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()


def output_parts(files: FileSystems, output_uri: str) -> dict[str, bytes]:
    files.fs(output_uri).invalidate_cache()
    names = {posixpath.basename(u): u for u in files.find_all(output_uri)}
    assert "_SUCCESS" in names and "_manifest.json" in names
    assert not [
        n
        for n in names
        if n not in ("_SUCCESS", "_job_history.json", "_manifest.json")
        and not n.startswith("part-")
    ], names
    return {n: files.read_bytes(u) for n, u in sorted(names.items()) if n.startswith("part-")}


@pytest.fixture(scope="module")
def clean_local_output(small_corpus, tmp_path_factory) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("clean") / "out"
    files = FileSystems()
    FaultyRun(files, worker_env(), None).run(f"file://{small_corpus.folder}", f"file://{out}")
    parts = output_parts(files, f"file://{out}")
    assert word_counts(parts) == small_corpus.counts
    return parts


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_local_workers_give_the_clean_output(
    seed: int,
    small_corpus,
    clean_local_output,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    files = FileSystems()
    faulty = FaultyRun(files, worker_env(), random.Random(seed))
    faulty.run(f"file://{small_corpus.folder}", f"file://{tmp_path}/out")
    print(f"seed {seed}: kills {dict(faulty.kills)}")
    assert sum(faulty.kills.values()) >= 2, faulty.kills  # the seed really injected faults
    assert output_parts(files, f"file://{tmp_path}/out") == clean_local_output
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:3] == [
        "_SUCCESS",
        "_job_history.json",
        "_manifest.json",
    ]
    assert not (tmp_path / "out" / "_temporary").exists()


def test_killed_s3_workers_give_the_clean_output(
    s3_server,
    small_corpus,
    clean_local_output,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    s3 = s3_server.filesystem()
    s3.mkdir("kills")
    s3.put(f"{small_corpus.folder}/", "kills/input/", recursive=True)
    env = worker_env(
        {
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "AWS_ENDPOINT_URL_S3": s3_server.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    files = FileSystems({"s3": s3})
    faulty = FaultyRun(files, env, random.Random(SEEDS[0] + 1))
    faulty.run("s3://kills/input/", "s3://kills/out")
    assert sum(faulty.kills.values()) >= 2, faulty.kills
    assert output_parts(files, "s3://kills/out") == clean_local_output
