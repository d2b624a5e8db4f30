"""The shuffle step: check every map manifest, then write reduce task specs."""

from __future__ import annotations

from airflow_mapreduce.errors import ShuffleError
from airflow_mapreduce.plan.layout import OutputLayout
from airflow_mapreduce.plan.manifests import read_plan, read_task_manifests
from airflow_mapreduce.plan.tasks import ReduceTaskSpec, ShufflePlan
from airflow_mapreduce.storage import FileSystems


def partition_groups(num_partitions: int, max_tasks: int) -> list[list[int]]:
    """Contiguous, near-equal ranges of partitions: at most max_tasks reduce tasks."""
    num_tasks = min(num_partitions, max_tasks)
    bounds = [round(i * num_partitions / num_tasks) for i in range(num_tasks + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(num_tasks)]


def shuffle_run(files: FileSystems, plan_uri: str, max_reduce_tasks: int) -> list[str]:
    plan = read_plan(files, plan_uri)
    layout = plan.layout
    manifests = read_task_manifests(files, plan, "map", plan.num_map_tasks, ShuffleError)
    num_partitions = plan.job.num_partitions

    runs: dict[int, list[str]] = {p: [] for p in range(num_partitions)}
    for manifest in manifests:
        partitions = sorted(f.partition for f in manifest.files)
        if partitions != list(range(num_partitions)):
            raise ShuffleError(
                f"map[{manifest.task_index}] attempt {manifest.attempt} wrote partitions "
                f"{partitions}, expected 0..{num_partitions - 1}; rerun map[{manifest.task_index}]"
            )
        for part in manifest.files:
            runs[part.partition].append(part.uri)

    output = OutputLayout(plan.output_uri)
    spec_uris = []
    for index, partitions in enumerate(partition_groups(num_partitions, max_reduce_tasks)):
        spec = ReduceTaskSpec(
            dag_id=plan.dag_id,
            run_id=plan.run_id,
            task_index=index,
            job=plan.job,
            inputs={p: runs[p] for p in partitions},
            outputs={p: output.part_uri(p) for p in partitions},
            task_dir=layout.task_dir("reduce", index),
            manifest_uri=layout.manifest_uri("reduce", index),
        )
        uri = layout.spec_uri("reduce", index)
        files.write_bytes(uri, spec.model_dump_json().encode())
        spec_uris.append(uri)
    files.write_bytes(
        layout.shuffle_uri, ShufflePlan(num_reduce_tasks=len(spec_uris)).model_dump_json().encode()
    )
    return spec_uris
