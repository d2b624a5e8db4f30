"""The commit step: verify every output part, then publish _manifest.json and _SUCCESS."""

from __future__ import annotations

import posixpath

from pydantic import Field

from airflow_mapreduce.errors import CommitError
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import read_plan, read_task_manifests
from airflow_mapreduce.plan.tasks import Counters, Model, PartFile, ShufflePlan, add_counters
from airflow_mapreduce.storage import FileSystems


class OutputManifest(Model):
    dag_id: str
    run_id: str
    input_uri: str
    output_uri: str
    files: list[PartFile]
    records: int
    bytes: int
    counters: Counters = Field(default_factory=dict)


def commit_run(files: FileSystems, plan_uri: str) -> OutputManifest:
    plan = read_plan(files, plan_uri)
    layout = RunLayout(plan.work_uri, plan.dag_id, plan.run_id)
    output = OutputLayout(plan.output_uri)
    if plan.job.num_partitions == 0:
        phase, num_tasks = "map", plan.num_map_tasks
    else:
        shuffle = ShufflePlan.model_validate_json(files.read_bytes(layout.shuffle_uri))
        phase, num_tasks = "reduce", shuffle.num_reduce_tasks
    manifests = read_task_manifests(files, plan, phase, num_tasks, CommitError)
    counters: Counters = {}
    if phase == "reduce":
        for map_manifest in read_task_manifests(
            files, plan, "map", plan.num_map_tasks, CommitError
        ):
            add_counters(counters, map_manifest.counters)

    parts: list[PartFile] = []
    for manifest in manifests:
        add_counters(counters, manifest.counters)
        for part in manifest.files:
            if not files.exists(part.uri) or files.size(part.uri) != part.bytes:
                raise CommitError(
                    f"{phase}[{manifest.task_index}] reported {part.uri} with {part.bytes} bytes, "
                    "but it is missing or has another size; rerun that task."
                )
            parts.append(part)
    parts.sort(key=lambda p: p.uri)
    _remove_stale_parts(files, output, {p.uri for p in parts})

    result = OutputManifest(
        dag_id=plan.dag_id,
        run_id=plan.run_id,
        input_uri=plan.input_uri,
        output_uri=plan.output_uri,
        files=parts,
        records=sum(p.records for p in parts),
        bytes=sum(p.bytes for p in parts),
        counters=counters,
    )
    files.write_bytes(output.manifest_uri, result.model_dump_json(indent=1).encode())
    files.write_bytes(output.success_uri, b"")
    if not plan.keep_intermediate:
        # The default work root lives inside the output: remove it whole so that only
        # data, _manifest.json and _SUCCESS remain.
        own_work_root = plan.work_uri == output.default_work_root
        files.remove(plan.work_uri if own_work_root else layout.run_root, recursive=True)
    return result


def _remove_stale_parts(files: FileSystems, output: OutputLayout, keep: set[str]) -> None:
    """Parts left by an earlier run with more partitions would otherwise read as output."""
    for uri in files.list_dir(output.root):
        name = posixpath.basename(uri)
        if name.startswith("part-") and uri not in keep:
            files.remove(uri)
