from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import load_job_file, parse_job_text

REPO = Path(__file__).resolve().parents[2]

VALID = """\
dag_id: wc
input: {uri: data/in, split_size: 2MiB}
mapper: {command: [python3, mapper.py]}
reducer: {callable: jobs.wc:reducer}
reducers: 2
output: out/
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(JobSpecError) as info:
        parse_job_text(text, source="job.yaml")
    return info.value.problems


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "dags").glob("*.yaml"), *(REPO / "examples").glob("*.yaml")]),
    ids=lambda p: p.name,
)
def test_example_jobs_are_valid(path: Path) -> None:
    job = load_job_file(path)
    for entry in job.all_inputs:
        assert entry.uri.startswith((f"file://{path.parent}/", "s3://"))


def test_relative_paths_resolve_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(VALID)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "wc.py").write_text("def reducer(key, values): ...\n")
    job = load_job_file(tmp_path / "job.yaml")
    assert job.input.uri == f"file://{tmp_path}/data/in"
    assert job.output == f"file://{tmp_path}/out/"
    assert job.input.split_size == 2 * 1024 * 1024
    assert job.mapper.command == ["python3", "mapper.py"]
    assert job.reducer is not None and job.reducer.callable == "jobs.wc:reducer"


def test_unknown_key_names_line_and_suggests_the_fix() -> None:
    [problem] = problems_of(VALID.replace("reducers: 2", "reducrs: 2"))
    assert problem.startswith("job.yaml:5:1: reducrs: unknown key 'reducrs'")
    assert "did you mean 'reducers'?" in problem


def test_nested_unknown_key_is_located() -> None:
    [problem] = problems_of(VALID.replace("split_size: 2MiB", "splitsize: 2MiB"))
    assert problem.startswith("job.yaml:2:")
    assert "input.splitsize" in problem and "'split_size'" in problem


def test_reducer_without_reducers_count_explains_both_fixes() -> None:
    text = VALID.replace("reducer: {callable: jobs.wc:reducer}\n", "")
    [problem] = problems_of(text)
    assert "reducers is 2 but no 'reducer' is given" in problem
    assert "reducers: 0" in problem


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("{command: [python3, mapper.py]}", "{command: [a], callable: 'a:b'}"), "exactly one"),
        (("{command: [python3, mapper.py]}", "{command: []}"), "non-empty argv"),
        (("jobs.wc:reducer", "jobs.wc.reducer"), "'package.module:function'"),
        (("2MiB", "2 parsecs"), "unknown unit"),
        (("reducers: 2", "reducers: -1"), "expected a number >= 0, found -1"),
        (("dag_id: wc", "dag_id: 'my dag'"), "dag_id"),
    ],
)
def test_field_errors(replace: tuple[str, str], expected: str) -> None:
    problems = problems_of(VALID.replace(*replace))
    assert any(expected in p for p in problems), problems


def test_duplicate_keys_are_errors_not_last_wins() -> None:
    [problem] = problems_of(VALID + "reducers: 3\n")
    assert problem.startswith("job.yaml:7:1: reducers: duplicate key (first at line 5)")


def test_yaml_syntax_error_is_located() -> None:
    [problem] = problems_of("dag_id: wc\ninput: {uri: x\n")
    assert problem.startswith("job.yaml:3:") and "not valid YAML" in problem


def test_object_constructing_tags_are_refused() -> None:
    [problem] = problems_of("dag_id: !!python/object/apply:os.system ['true']\n")
    assert "not valid YAML" in problem


def test_missing_required_fields_are_all_listed() -> None:
    problems = problems_of("dag_id: wc\n")
    fields = {p.split(": ")[1] for p in problems}
    assert {"input", "mapper", "output"} <= fields
