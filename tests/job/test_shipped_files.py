"""`files:` (shipped files) and per-phase images in the job contract: what is accepted, how
sources resolve, and each mistake reported at its file:line and field."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import load_job_file, parse_job_text
from airflow_mapreduce.job.schema import job_json_schema
from airflow_mapreduce.job.shipped_files import MAX_SHIPPED_FILES

JOB = """\
dag_id: shipped
input: {uri: data/in}
mapper: {command: [python3, mapper.py]}
reducers: 0
output: out/
files:
"""


def write_job(folder: Path, entries: str) -> Path:
    (folder / "lookup.tsv").write_text("the\tstop\n")
    (folder / "job.yaml").write_text(JOB + entries)
    return folder / "job.yaml"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(JobSpecError) as info:
        load_job_file(path)
    return info.value.problems


def test_paths_resolve_next_to_the_job_file_and_uris_stay(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "categories.tsv").write_text("a\tb\n")
    path = write_job(
        tmp_path,
        "  - lookup.tsv\n"
        "  - {source: tables/categories.tsv, name: cats.tsv}\n"
        "  - s3://bucket//stop/words.txt\n",
    )
    job = load_job_file(path)
    assert [(f.source, f.target) for f in job.files] == [
        (f"file://{tmp_path}/lookup.tsv", "lookup.tsv"),
        (f"file://{tmp_path}/tables/categories.tsv", "cats.tsv"),
        ("s3://bucket/stop/words.txt", "words.txt"),
    ]
    assert job.job().files == job.files  # what a MapReduceOperator gets


def test_editors_accept_both_forms() -> None:
    data = yaml.safe_load(JOB + "  - lookup.tsv\n  - {source: s3://b/k.tsv, name: k}\n")
    jsonschema.validate(data, job_json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "files": [{"name": "x"}]}, job_json_schema())


def test_a_missing_source_is_named_with_its_line(tmp_path: Path) -> None:
    path = write_job(tmp_path, "  - lookup.tsv\n  - {source: stopwords.txt}\n")
    assert problems_of(path) == [
        f"{path}:8:6: files.1.source: {tmp_path}/stopwords.txt does not exist; put "
        "'stopwords.txt' there or fix the path (relative paths are taken from the job "
        "file's folder)"
    ]


def test_a_folder_is_not_a_shipped_file(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    path = write_job(tmp_path, "  - tables\n  - tables/\n")
    assert problems_of(path) == [
        f"{path}:8:5: files.1.source: 'tables/' ends with '/', a folder; a shipped file is "
        "one file: list each file"
    ]
    path = write_job(tmp_path, "  - tables\n")
    assert problems_of(path) == [
        f"{path}:7:5: files.0.source: {tmp_path}/tables is not a file; a shipped file is one file"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("sub/lookup.tsv", "expected a plain file name (no '/', no control characters), found "
                           "'sub/lookup.tsv'; a shipped file lands in the task's working "
                           "folder itself"),
        ("..", "expected a file name, found '..'"),
        ("'.'", "expected a file name, found '.'"),
        ("''", "expected a file name, found ''"),
        ("x" * 256, "expected a file name of at most 255 bytes, found 256"),
    ],
)  # fmt: skip
def test_bad_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    path = write_job(tmp_path, f"  - {{source: lookup.tsv, name: {name}}}\n")
    assert problems_of(path) == [f"{path}:7:26: files.0.name: {message}"]


def test_a_source_whose_last_segment_is_no_name_needs_one() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_text(JOB + "  - s3://bucket/tables/.\n", source="job.yaml")
    assert info.value.problems == [
        "job.yaml:7:5: files.0.source: expected a file name, found '.' (the source's last "
        "segment); give a name: {name: ...}"
    ]
    job = parse_job_text(JOB + "  - {source: s3://bucket/tables/., name: t.tsv}\n")
    assert job.files[0].target == "t.tsv"


def test_two_files_of_one_name_are_refused_at_the_second(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "lookup.tsv").write_text("x\n")
    path = write_job(tmp_path, "  - lookup.tsv\n  - other/lookup.tsv\n")
    assert problems_of(path) == [
        f"{path}:8:5: files.1.name: name 'lookup.tsv' is already used by files[0]; each "
        "shipped file needs its own name in the working folder: give one of them another name"
    ]
    path = write_job(tmp_path, "  - lookup.tsv\n  - {source: s3://b/t.tsv, name: lookup.tsv}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:8:28: files.1.name: name 'lookup.tsv' is already used")


def test_at_most_a_hundred_files(tmp_path: Path) -> None:
    entries = "".join(f"  - s3://bucket/t{i}.tsv\n" for i in range(MAX_SHIPPED_FILES + 1))
    path = write_job(tmp_path, entries)
    assert problems_of(path) == [
        f"{path}:6:1: files: expected at most 100 shipped files, found 101: each is copied "
        "into every task's folder; ship fewer, larger files (one table, not many)"
    ]
    write_job(tmp_path, entries.split("\n", 1)[1])
    assert len(load_job_file(path).files) == MAX_SHIPPED_FILES


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("'{{ ds }}.tsv'", "files.0.source: a shipped file cannot be a template, found "
                           "'{{ ds }}.tsv': files are staged once per run from a fixed place; "
                           "name the file itself"),
        ("'tables/*.tsv'", "files.0.source: a shipped file is one file, not a glob: "
                           "'tables/*.tsv'; list each file"),
        ("http://example.com/t.tsv", "files.0.source: unsupported scheme 'http' in "
                                     "'http://example.com/t.tsv'; use file://, s3://, "
                                     "memory:// or a plain path"),
        ("s3://KEY:SECRET@bucket/t.tsv", "files.0.source: this shipped file holds credentials "
                                         "(user@ or user:password@); put credentials in an "
                                         "Airflow connection (storage.aws_conn_id) or a "
                                         "Kubernetes Secret (kubernetes.storage_secret), "
                                         "never in the URI"),
        ("7", "files.0: expected a path or URI (lookup.tsv, s3://bucket/lookup.tsv), or a "
              "mapping {source: ..., name: ...}, found int 7"),
        ("{name: t.tsv}", "files.0.source: required field is missing; add 'source:' here"),
        ("{source: t.tsv, mode: '0755'}", "files.0.mode: unknown key 'mode'; allowed keys: "
                                          "name, source"),
    ],
)  # fmt: skip
def test_bad_sources_are_refused(entry: str, message: str) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_job_text(JOB + f"  - {entry}\n", source="job.yaml")
    [problem] = info.value.problems
    assert problem.split(": ", 1)[1] == message
    assert problem.startswith("job.yaml:7:") and "SECRET" not in problem


def test_files_may_come_from_defaults(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text("files: [lookup.tsv]\n")
    path = write_job(tmp_path, "  - s3://b/extra.tsv\n")
    assert [f.target for f in load_job_file(path).files] == ["extra.tsv"]  # the job's wins
    (tmp_path / "job.yaml").write_text(JOB.removesuffix("files:\n"))
    assert [f.target for f in load_job_file(path).files] == ["lookup.tsv"]


KUBERNETES = """\
dag_id: images
input: {uri: s3://b/in/}
mapper: {command: [python3, mapper.py]}
reducer: {command: [python3, reducer.py]}
output: s3://b/out/
backend: kubernetes
kubernetes:
  image: registry.example/jobs:1.0
"""


def test_per_phase_images_default_to_the_image() -> None:
    spec = parse_job_text(KUBERNETES).kubernetes
    assert (spec.image_of("map"), spec.image_of("reduce")) == ("registry.example/jobs:1.0",) * 2
    spec = parse_job_text(KUBERNETES + "  map_image: registry.example/map:2\n").kubernetes
    assert spec.image_of("map") == "registry.example/map:2"
    assert spec.image_of("reduce") == "registry.example/jobs:1.0"
    spec = parse_job_text(KUBERNETES + "  reduce_image: r@sha256:" + "0" * 64 + "\n").kubernetes
    assert spec.image_of("map") == "registry.example/jobs:1.0"
    assert spec.image_of("reduce") == "r@sha256:" + "0" * 64


@pytest.mark.parametrize("field", ["image", "map_image", "reduce_image"])
def test_images_are_checked_alike(field: str) -> None:
    text = KUBERNETES.replace("  image: registry.example/jobs:1.0\n", "")
    with pytest.raises(JobSpecError) as info:
        parse_job_text(text + f"  {field}: 'registry.example/jobs 1.0'\n", "job.yaml")
    assert info.value.problems == [
        f"job.yaml:8:3: kubernetes.{field}: expected a container image like "
        "registry.example/jobs:1.4 (no spaces), found 'registry.example/jobs 1.0'"
    ]
