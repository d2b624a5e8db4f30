"""The commit step: verify every committed attempt, promote its parts, publish _SUCCESS.

Order matters for readers of the output: _SUCCESS goes first (the output is no longer a
complete result), then every part is copied from the work area (atomically per object;
a server-side copy on S3), what an earlier run of this job recorded and this one does not
rewrite is removed, _job_history.json and _manifest.json are written and _SUCCESS comes
last. A commit killed at any point leaves no _SUCCESS and can simply be rerun: the
attempts' parts stay in the work area until _SUCCESS exists, and the rerun removes the
killed one's temporary files.

Nothing else in the output is deleted or replaced (plan/output_state.py): the commit
refuses objects it does not know, as the plan did, unless the job sets overwrite_output.
"""

from __future__ import annotations

import posixpath
import re

from airflow_mapreduce.errors import CommitError
from airflow_mapreduce.plan.history import build_history
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import (
    read_plan,
    read_task_manifests,
    step_output_manifests,
)
from airflow_mapreduce.plan.output_lease import check_lease, record_writing, release_lease
from airflow_mapreduce.plan.output_state import (
    OutputContents,
    OutputManifest,
    describe_unknown,
    read_output_manifest,
    survey_output,
)
from airflow_mapreduce.plan.tasks import (
    Counters,
    PartFile,
    PeakMemory,
    RunPlan,
    TaskManifest,
    add_counters,
)
from airflow_mapreduce.storage import FileSystems, MissingObjectError, join_uri

__all__ = ["OutputManifest", "commit_run", "commit_summary", "remove_intermediate"]


def commit_run(files: FileSystems, plan_uri: str) -> OutputManifest:
    try:
        plan = read_plan(files, plan_uri)
    except MissingObjectError:
        # The plan is the last object a successful commit deletes: a retry of that commit.
        if committed := _committed_without_plan(files, plan_uri):
            return committed
        raise
    layout = plan.layout
    output = OutputLayout(plan.output_uri)
    if committed := _committed_manifest(files, plan, output):
        # A retried commit whose first try got as far as _SUCCESS: only cleanup is left
        # (before anything else is read: a partial cleanup may have removed it).
        release_lease(files, output, plan.dag_id, plan.run_id)
        _clean_up_after_success(files, plan)
        return committed
    _, map_manifests, manifests = _read_step(files, plan)
    phase = "map" if plan.job.num_partitions == 0 else "reduce"
    counters: Counters = {}
    if phase == "reduce":
        for map_manifest in map_manifests:
            add_counters(counters, map_manifest.counters)
    earlier = _earlier_steps(files, plan)
    add_counters(counters, _step_counters(earlier))
    all_maps = [(p, m) for p, maps, _ in earlier for m in maps] + [(plan, m) for m in map_manifests]
    for step_plan, manifest in all_maps:  # checked before the output is touched
        if manifest.bad_records_uri is not None:
            _check_own_attempt(
                step_plan.layout, "map", manifest, manifest.bad_records_uri, "bad records"
            )
    promotions: list[tuple[PartFile, PartFile]] = []  # (attempt's part, output part)
    for manifest in manifests:
        add_counters(counters, manifest.counters)
        for part in manifest.files:
            _check_attempt_part(files, layout, phase, manifest, part)
            # An attempt's part already has its output name (part-00003, part-m-00001.gz).
            dest_uri = join_uri(output.root, posixpath.basename(part.uri))
            promotions.append((part, part.model_copy(update={"uri": dest_uri})))
    promotions.sort(key=lambda pair: pair[1].uri)

    # Checked again here: objects may have appeared since the plan, or a later run may
    # have taken the output over.
    check_lease(files, output, plan.dag_id, plan.run_id)
    contents = survey_output(files, output, plan.dag_id)
    if contents.unknown and not plan.overwrite_output:
        raise CommitError(describe_unknown(output.root, contents.unknown))
    parts = [dest for _, dest in promotions]
    dead_letters = _dead_letters(output, all_maps)
    bad_records = [dest for _, dest in dead_letters]
    written = [p.uri for p in parts] + bad_records + [output.history_uri]
    record_writing(files, output, plan.dag_id, plan.run_id, written)
    files.remove(output.success_uri)
    for source_uri, dest_uri in [*((s.uri, d.uri) for s, d in promotions), *dead_letters]:
        files.copy(source_uri, dest_uri)
    _remove_replaced(files, output, contents, set(written))
    history = build_history(
        plan, map_manifests, manifests if phase == "reduce" else [], parts, counters
    )
    files.write_bytes(output.history_uri, history.model_dump_json().encode())

    result = OutputManifest(
        dag_id=plan.dag_id,
        run_id=plan.run_id,
        input_uri=plan.input_uri,
        input_uris=plan.input_uris,
        output_uri=plan.output_uri,
        files=parts,
        records=sum(p.records for p in parts),
        bytes=sum(p.bytes for p in parts),
        counters=counters,
        bad_records=bad_records,
        peak_memory=_peak_memory(map_manifests if phase == "reduce" else [], manifests),
        history=output.history_uri,
    )
    files.write_bytes(output.manifest_uri, result.model_dump_json(indent=1).encode())
    files.write_bytes(output.success_uri, b"")
    release_lease(files, output, plan.dag_id, plan.run_id)
    _clean_up_after_success(files, plan)
    return result


def commit_summary(manifest: OutputManifest) -> list[str]:
    """What the commit step reports (task log, `airflow-mapreduce run`)."""
    lines = [
        f"Committed {len(manifest.files)} part(s), {manifest.records} records, "
        f"{manifest.bytes} bytes to {manifest.output_uri}"
    ]
    lines += [
        f"peak memory of {phase} tasks: up to {peak.describe()}"
        for phase, peak in manifest.peak_memory.items()
    ]
    lines += [
        f"counter {group}.{name} = {value}"
        for group, counters in sorted(manifest.counters.items())
        for name, value in sorted(counters.items())
    ]
    return lines


def _peak_memory(
    map_manifests: list[TaskManifest], manifests: list[TaskManifest]
) -> dict[str, PeakMemory]:
    peaks: dict[str, PeakMemory] = {}
    for manifest in [*map_manifests, *manifests]:
        if manifest.peak_memory is not None:  # (manifests of older workers have none)
            seen = peaks.get(manifest.kind)
            peaks[manifest.kind] = (
                manifest.peak_memory if seen is None else seen.max(manifest.peak_memory)
            )
    return peaks


def _dead_letters(
    output: OutputLayout, map_manifests: list[tuple[RunPlan, TaskManifest]]
) -> list[tuple[str, str]]:
    """(attempt's, output's) URIs of skipped records, which outlive the work area as
    <output>/_bad_records/map-NNNNN.jsonl (step-K-map-NNNNN.jsonl for a later step's)."""
    return [
        (manifest.bad_records_uri, output.bad_records_uri(manifest.task_index, plan.step))
        for plan, manifest in map_manifests
        if manifest.bad_records_uri is not None  # checked by commit_run
    ]


def _step_counters(earlier: list[_Step]) -> Counters:
    """Earlier steps' counters, each group named after its step ("step 1: mapper")."""
    counters: Counters = {}
    for step_plan, maps, outputs in earlier:
        for manifest in {id(m): m for m in [*maps, *outputs]}.values():
            named = {f"step {step_plan.step + 1}: {g}": c for g, c in manifest.counters.items()}
            add_counters(counters, named)
    return counters


_Step = tuple[RunPlan, list[TaskManifest], list[TaskManifest]]


def _earlier_steps(files: FileSystems, plan: RunPlan) -> list[_Step]:
    """The steps before `plan`'s, first to last."""
    steps = []
    uri = plan.previous_plan_uri
    while uri is not None:
        steps.append(_read_step(files, read_plan(files, uri)))
        uri = steps[-1][0].previous_plan_uri
    return steps[::-1]


def _read_step(files: FileSystems, plan: RunPlan) -> _Step:
    """(plan, map manifests, manifests of the tasks writing the step's output)."""
    phase, outputs = step_output_manifests(files, plan, CommitError)
    if phase == "map":
        return plan, outputs, outputs
    return plan, read_task_manifests(files, plan, "map", plan.num_map_tasks, CommitError), outputs


def _remove_replaced(
    files: FileSystems, output: OutputLayout, contents: OutputContents, written: set[str]
) -> None:
    """What the earlier run recorded and this one did not rewrite (e.g. parts of a run with
    more partitions, which would read as output), killed writers' temporary files, and,
    with overwrite_output, the objects nobody recorded."""
    markers = set(output.markers)
    stale = [u for u in contents.owned if u not in written and u not in markers]
    files.remove_many([*stale, *contents.leftovers])
    for uri in contents.unknown:  # only when overwrite_output allows it (checked above)
        if uri not in written and uri not in markers:
            files.remove(uri, recursive=True)
    files.remove_empty_dir(output.bad_records_root)


def _committed_manifest(
    files: FileSystems, plan: RunPlan, output: OutputLayout
) -> OutputManifest | None:
    # The plan step removes _SUCCESS, so one that names this run was written by its commit.
    manifest = _read_committed(files, output)
    if manifest is None or (manifest.dag_id, manifest.run_id) != (plan.dag_id, plan.run_id):
        return None
    return manifest


def _committed_without_plan(files: FileSystems, plan_uri: str) -> OutputManifest | None:
    """The output a cleaned-up run committed, found from a default-layout plan URI.

    <output>/_temporary/<dag_id>/<run_id>/plan.json; custom work roots do not name the
    output, so their retried commit fails with the missing plan instead.
    """
    run_root = posixpath.dirname(plan_uri)
    step = 0
    if found := re.fullmatch(r"step-(\d+)", posixpath.basename(run_root)):
        step, run_root = int(found.group(1)) - 1, posixpath.dirname(run_root)
    dag_root = posixpath.dirname(run_root)
    work_root = posixpath.dirname(dag_root)
    if posixpath.basename(work_root) != "_temporary":
        return None
    output = OutputLayout(posixpath.dirname(work_root))
    manifest = _read_committed(files, output)
    if manifest is None:
        return None
    layout = RunLayout(output.default_work_root, manifest.dag_id, manifest.run_id, step)
    if layout.plan_uri != plan_uri:
        return None
    _remove_run_folder(files, layout)  # finish the interrupted cleanup
    return manifest


def _read_committed(files: FileSystems, output: OutputLayout) -> OutputManifest | None:
    """The output's manifest when _SUCCESS marks it committed."""
    if not files.exists(output.success_uri):
        return None
    return read_output_manifest(files, output)


def _clean_up_after_success(files: FileSystems, plan: RunPlan) -> None:
    if not plan.keep_intermediate:
        remove_intermediate(files, plan)


def remove_intermediate(files: FileSystems, plan: RunPlan) -> None:
    """Delete the run's work area (task specs, map runs, every attempt), plan.json last.

    Only this run's folder: another run's work area may sit beside it under the same
    work root. A commit retried after a partial cleanup still finds its plan and
    finishes the job.
    """
    layout = plan.layout
    files.remove_many([uri for uri in files.find_all(layout.run_root) if uri != layout.plan_uri])
    files.remove(layout.plan_uri)
    _remove_run_folder(files, layout)


def _remove_run_folder(files: FileSystems, layout: RunLayout) -> None:
    """The run's (by now empty) folders, and its DAG's and the work root's once empty, so
    that a committed output holds only data, _manifest.json and _SUCCESS."""
    files.remove(layout.run_root, recursive=True)
    files.remove_empty_dir(posixpath.dirname(layout.run_root))
    files.remove_empty_dir(layout.work_root)


def _check_attempt_part(
    files: FileSystems, layout: RunLayout, phase: str, manifest: TaskManifest, part: PartFile
) -> None:
    where = f"{phase}[{manifest.task_index}]"
    _check_own_attempt(layout, phase, manifest, part.uri, "an output part")
    try:
        stored: int | None = files.size(part.uri)  # one request: missing or wrong size
    except MissingObjectError:
        stored = None
    if stored != part.bytes:
        raise CommitError(
            f"{where} attempt {manifest.attempt} reported {part.uri} with {part.bytes} bytes, "
            f"but it is missing or has another size; rerun {phase}[{manifest.task_index}]."
        )


def _check_own_attempt(
    layout: RunLayout, phase: str, manifest: TaskManifest, uri: str, what: str
) -> None:
    """Only a task's own attempt folders may be published, never a foreign object."""
    attempt_dir = RunLayout.attempt_dir_of(layout.task_dir(phase, manifest.task_index), "")
    if not uri.startswith(attempt_dir) or ".." in uri[len(attempt_dir) :].split("/"):
        raise CommitError(
            f"{phase}[{manifest.task_index}]: manifest names {what} at {uri}, outside its "
            f"attempt folders {attempt_dir}*; the manifest was not written by this run's "
            f"worker. Rerun {phase}[{manifest.task_index}]."
        )
