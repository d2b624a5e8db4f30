"""Hostile and subtly wrong job files, through `airflow-mapreduce validate` as a user runs it.

Each bad file sits in a folder next to a valid job: the bad one must fail fast (bounded
time and memory, no traceback) with file:line and field, and the valid one must still be
reported ok. The timing and memory bounds are generous on purpose: they catch a hang or
an explosion (the alias bomb took 32 s and GBs), not a slow machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.job.validators import redact_uri
from tests.cli_memory import MEASURED_CLI, peak_bytes

CLI = str(Path(sys.executable).parent / "airflow-mapreduce")
MAX_SECONDS = 10
MAX_RSS_BYTES = 300 * 1024**2

# A valid job whose Python steps are found without being imported: its package raises on
# import, so a validate that ran user code would fail on it.
GOOD = """\
dag_id: good
input: {uri: data/in}
mapper: {callable: "jobs.wordcount:mapper"}
reducer: {reduce_by: "operator:add"}
reducers: 2
output: "s3://reports/{{ data_interval_start | ds_nodash }}/"
"""
BASE = "input: {uri: data/in}\nmapper: {command: [cat]}\nreducers: 0\noutput: out/\n"


@dataclass(frozen=True)
class Validated:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_bytes: int


def run_cli(*args: str) -> Validated:
    """Run the CLI; measure its wall time and its own peak memory (tests/cli_memory.py)."""
    with tempfile.TemporaryDirectory() as scratch:
        vmhwm = Path(scratch) / "vmhwm"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-c", MEASURED_CLI, *args],
            env={**os.environ, "CLI_VMHWM_FILE": str(vmhwm)},
            capture_output=True,
            text=True,
            timeout=60,  # a hang fails the test instead of the suite
            check=False,
        )
        seconds = time.monotonic() - started
        return Validated(done.returncode, done.stdout, done.stderr, seconds, peak_bytes(vmhwm))


def job_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    """A folder with the good job (and its package) plus `files`."""
    folder = root / "dags"
    (folder / "jobs").mkdir(parents=True)
    (folder / "jobs" / "__init__.py").write_text("raise SystemExit('validate imported jobs')\n")
    (folder / "jobs" / "wordcount.py").write_text("raise SystemExit('validate imported it')\n")
    (folder / "good.yaml").write_text(GOOD)
    for name, content in files.items():
        path = folder / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return folder


def assert_only_the_bad_file_fails(result: Validated, folder: Path, bad: list[str]) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert f"ok  {folder / 'good.yaml'}  (dag_id good)" in result.stdout, result
    assert f"{len(bad) + 1} file(s) checked, {len(bad)} invalid" in result.stdout, result
    for name in bad:
        assert f"{folder / name}: invalid MapReduce job" in result.stderr, (name, result.stderr)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """'Billion laughs': each level is a list of `width` aliases of the level below."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]" for n in range(1, levels + 1)]
    return "dag_id: bomb\n" + BASE + "\n".join(lines) + f"\ntags: *a{levels}\n"


# name -> (file content, the problem's start after "<file>:": line, column, field)
BOMBS: dict[str, tuple[str | bytes, str]] = {
    "alias_bomb": (alias_bomb(), r"10:\d+: a4\.\d+: the document expands to more than"),
    "alias_bomb_wide": (
        alias_bomb(levels=5, width=10),
        r"\d+:\d+: \S+: (more than 50 aliases|the document expands)",
    ),
    "recursive_alias": (
        "dag_id: loop\n" + BASE + "tags: &me [a, *me]\n",
        r"6:15: tags\.1: alias \*me is inside",
    ),
    "nested_brackets": (
        "dag_id: deep\n" + BASE + "tags: " + "[" * 5000 + "]" * 5000 + "\n",
        r"6:56: tags(\.0)+: nested more than 50 levels deep",
    ),
    "nested_mappings": (
        "dag_id: deep\n" + BASE + "affinity: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        r"6:\d+: affinity(\.a)+(\.\(key\))?: nested more than 50 levels deep",
    ),
    "huge_file": (
        "dag_id: big\n" + BASE + "description: " + "x" * (2 * 1024**2) + "\n",
        r"1:1: the file is larger than 256 KiB",
    ),
    "huge_integer": (
        "dag_id: n\n" + BASE + "retries: " + "9" * 100_000 + "\n",
        r"6:10: not valid YAML: cannot read this value",
    ),
    "retry_delay_overflow": (
        "dag_id: r\n" + BASE + "retry_delay_seconds: 1000000000000000000\n",
        r"6:1: retry_delay_seconds: expected a number <= 31536000",
    ),
    "long_flow_list": (
        "dag_id: t\n" + BASE + "tags: [" + "a, " * 60_000 + "a]\n",
        r"6:\d+: tags\.\d+: the document expands to more than",
    ),
    "not_utf8": (b"dag_id: x\ndescription: \xff\xfe\n", r"1:1: cannot read the file"),
    "control_character": (
        "dag_id: x\n" + BASE + "description: a\x00b\n",
        r"6:15: not valid YAML: character #x0000",
    ),
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_hostile_file_fails_fast_and_hides_no_other(tmp_path: Path, name: str) -> None:
    content, problem = BOMBS[name]
    folder = job_folder(tmp_path, {f"{name}.yaml": content})
    result = run_cli("validate", str(folder))
    assert_only_the_bad_file_fails(result, folder, [f"{name}.yaml"])
    assert re.search(rf"  - {re.escape(str(folder / name))}\.yaml:{problem}", result.stderr), (
        result.stderr[:2000]
    )
    assert result.seconds < MAX_SECONDS, result.seconds
    assert result.max_rss_bytes < MAX_RSS_BYTES, result.max_rss_bytes


# Values that look fine, or that croniter/pydantic/PyYAML accept, but that Airflow or a run
# would choke on: name -> (job lines after dag_id, expected "line:col: field: message").
REFUSED: dict[str, tuple[str, str]] = {
    "cron_six_fields": (
        BASE + "schedule: '* * * * * *'\nstart_date: 2024-01-01\n",
        "6:1: schedule: expected 5 cron fields 'minute hour day-of-month month day-of-week', "
        "found 6 in '* * * * * *': a 6th field would be seconds (a run every second)",
    ),
    "cron_seven_fields": (
        BASE + "schedule: '0 0 3 * * * 2030'\nstart_date: 2024-01-01\n",
        "6:1: schedule: expected 5 cron fields",
    ),
    "dagrun_timeout_negative": (
        BASE + "dagrun_timeout: -3600\n",
        "6:1: dagrun_timeout: expected a duration above 0 and at most a year",
    ),
    "dagrun_timeout_zero": (
        BASE + "dagrun_timeout: PT0S\n",
        "6:1: dagrun_timeout: expected a duration above 0",
    ),
    "jinja_dangling_pipe": (
        BASE.replace("output: out/", "output: 'out/{{ ds | }}'"),
        "5:1: output: not a valid Jinja template: expected token 'name'",
    ),
    "jinja_stray_paren": (
        BASE.replace("output: out/", "output: 'out/{{ ds ) }}'"),
        "5:1: output: not a valid Jinja template: unexpected ')'",
    ),
    "jinja_unknown_filter": (
        BASE.replace("{uri: data/in}", "{uri: 's3://logs/{{ ds | nosuchfilter }}/'}"),
        "2:9: input.uri: unknown Jinja filter 'nosuchfilter'",
    ),
    "output_root": (
        BASE.replace("output: out/", "output: /"),
        "5:1: output: '/' is the filesystem root",
    ),
    "output_file_root": (
        BASE.replace("output: out/", "output: 'file:///'"),
        "5:1: output: 'file:///' is the filesystem root",
    ),
    "s3_without_bucket": (BASE + "work: 's3://'\n", "6:1: work: 's3://' names no bucket"),
    "input_file_without_path": (
        BASE.replace("{uri: data/in}", "{uri: 'file://'}"),
        "2:9: input.uri: file:// without a path would mean the current folder",
    ),
    "empty_argv_element": (
        BASE.replace("[cat]", '[python3, ""]'),
        "3:29: mapper.command.1: empty argument",
    ),
    "callable_not_importable": (
        BASE.replace("{command: [cat]}", "{callable: 'jobs.missing:mapper'}"),
        "3:10: mapper.callable: cannot find module 'jobs.missing' of 'jobs.missing:mapper'",
    ),
    "reduce_by_not_importable": (
        BASE.replace("reducers: 0", "reducers: 1\nreducer: {reduce_by: 'nosuchmod:add'}"),
        "5:11: reducer.reduce_by: cannot find module 'nosuchmod'",
    ),
    "reducers_yes": (
        BASE.replace("reducers: 0", "reducers: yes"),
        "4:1: reducers: expected an integer, found the boolean true (YAML reads yes/no",
    ),
    "reducers_true": (
        BASE.replace("reducers: 0", "reducers: true"),
        "4:1: reducers: expected an integer, found the boolean true",
    ),
    "retries_quoted": (
        BASE + 'retries: "3"\n',
        "6:1: retries: expected an integer, found the text '3'; remove the quotes",
    ),
    "reducers_whole_float": (
        BASE.replace("reducers: 0", "reducers: 2.0"),
        "4:1: reducers: expected a whole number, found 2.0; write 2",
    ),
    "priority_weight_beyond_int32": (
        BASE + "priority_weight: 2147483648\n",
        "6:1: priority_weight: expected a number <= 2147483647",
    ),
    "startup_timeout_overflow": (
        BASE + "kubernetes: {startup_timeout_seconds: 1000000000000}\n",
        "6:14: kubernetes.startup_timeout_seconds: expected a number <= 31536000",
    ),
    "split_size_too_large": (
        BASE.replace("{uri: data/in}", "{uri: data/in, split_size: 2000GiB}"),
        "2:23: input.split_size: expected a byte size of at most 1024GiB",
    ),
}


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Validated]:
    """One validate over every REFUSED file and the good job."""
    files = {f"{name}.yaml": f"dag_id: {name}\n{text}" for name, (text, _) in REFUSED.items()}
    folder = job_folder(tmp_path_factory.mktemp("refused"), files)
    return folder, run_cli("validate", str(folder))


def test_validate_checks_every_file_and_keeps_the_good_one(
    refused: tuple[Path, Validated],
) -> None:
    folder, result = refused
    assert_only_the_bad_file_fails(result, folder, [f"{name}.yaml" for name in REFUSED])


@pytest.mark.parametrize("name", REFUSED)
def test_validate_refuses_with_file_line_field_and_fix(
    refused: tuple[Path, Validated], name: str
) -> None:
    folder, result = refused
    expected = f"  - {folder / name}.yaml:{REFUSED[name][1]}"
    assert expected in result.stderr, (expected, result.stderr)


KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENGbPxRfiCYSECRET"
LEAKS: dict[str, tuple[tuple[str, str], str]] = {
    "input": (
        ("{uri: data/in}", "{uri: 's3://KEY:SECRET@logs/in/'}"),
        "2:9: input.uri: this URI holds credentials",
    ),
    "templated_output": (
        ("output: out/", "output: 's3://KEY:SECRET@reports/{{ ds }}/'"),
        "5:1: output: this URI holds credentials",
    ),
    "user_only": (
        ("reducers: 0", "reducers: 0\nwork: 's3://KEY@scratch/'"),
        "5:1: work: this URI holds credentials",
    ),
    "other_scheme": (
        ("reducers: 0", "reducers: 0\nwork: 'http://KEY:SECRET@proxy/x'"),
        "5:1: work: this URI holds credentials",
    ),
    # AWS secrets often hold '/': then the bucket seems to be KEY:SEC, and no '@' ends it.
    "slash_in_secret": (
        ("output: out/", "output: 's3://KEY:SEC/RET@reports/'"),
        "5:1: output: this URI has a ':' before its first '/'",
    ),
    # A type error quotes the value it found.
    "echoed_value": (
        ("input: {uri: data/in}", "input: 's3://KEY:SECRET@logs/in/'"),
        "2:1: input: expected a mapping",
    ),
}


@pytest.mark.parametrize("name", LEAKS)
def test_credentials_in_a_uri_are_refused_and_never_printed(tmp_path: Path, name: str) -> None:
    (old, new), expected = LEAKS[name]
    secret = SECRET[:12] + "/" + SECRET[12:] if "SEC/RET" in new else SECRET
    new = new.replace("KEY", KEY).replace("SEC/RET", secret).replace("SECRET", secret)
    folder = job_folder(tmp_path, {"leaky.yaml": "dag_id: leaky\n" + BASE.replace(old, new)})
    validated = run_cli("validate", str(folder))
    rendered = run_cli("render", str(folder / "leaky.yaml"))
    assert_only_the_bad_file_fails(validated, folder, ["leaky.yaml"])
    assert f"{folder / 'leaky.yaml'}:{expected}" in validated.stderr, validated.stderr
    assert rendered.returncode == 1, rendered
    for result in (validated, rendered):
        output = result.stdout + result.stderr
        assert KEY not in output, output
        assert all(part not in output for part in secret.split("/")), output
        assert "Traceback" not in output
    if "credentials" in expected:
        assert "storage.aws_conn_id" in validated.stderr
        assert "kubernetes.storage_secret" in validated.stderr


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("s3://KEY:SE/CRET@bucket/x", "s3://***@bucket/x"),
        (
            "found 'redis://:pw@redis:6379/0' and 's3://u@b/k'",
            "found 'redis://***@redis:6379/0' and 's3://***@b/k'",
        ),
        ("s3://bucket/x and team@example.com", "s3://bucket/x and team@example.com"),
        ("no uri here", "no uri here"),
    ],
)
def test_redact_uri(text: str, redacted: str) -> None:
    assert redact_uri(text) == redacted


# Characters that steer PyYAML's scanner, parser and composer into their corners, alone
# or as the value of a field of an otherwise valid job (to reach the models' checks).
_YAMLISH = st.text(alphabet="ab0:-[]{},&*!|>'\"\n #?%@.~\t\\", max_size=200)
_FIELDS = st.sampled_from(
    ["reducers", "schedule", "output", "dagrun_timeout", "kubernetes", "tags", "input", "memory"]
)
_AS_FIELD = st.builds(
    lambda field, value: f"dag_id: f\n{BASE}{field}: {value}\n", _FIELDS, _YAMLISH
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_YAMLISH, st.text(max_size=200), _AS_FIELD))
def test_any_text_is_a_job_or_a_job_spec_error(text: str) -> None:
    try:
        parse_job_text(text, source="fuzz.yaml")
    except JobSpecError as exc:
        assert all(p.startswith("fuzz.yaml:") for p in exc.problems), exc.problems


def test_the_recursion_net_turns_a_deep_walk_into_a_job_spec_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_mapreduce.job import safe_yaml

    monkeypatch.setattr(safe_yaml, "MAX_DEPTH", 10**6)  # as if the bound were forgotten
    with pytest.raises(JobSpecError) as info:
        parse_job_text("dag_id: x\ntags: " + "[" * 5000 + "]" * 5000 + "\n", source="deep.yaml")
    assert info.value.problems == [
        "deep.yaml:1:1: the file is nested too deeply to check; flatten its values"
    ]


def test_a_loader_bug_is_reported_for_its_file_and_hides_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mapreduce.job import folder as spec_folder

    checked = spec_folder.load_job_file

    def buggy(path: Path) -> object:
        if Path(path).name == "bad.yaml":
            raise KeyError("s3://KEY:SECRET@bucket")
        return checked(path)

    monkeypatch.setattr(spec_folder, "load_job_file", buggy)
    folder = job_folder(tmp_path, {"bad.yaml": "dag_id: bad\n" + BASE})
    loaded = spec_folder.load_jobs(spec_folder.job_files(folder))
    assert [job.dag_id for job in loaded.jobs.values()] == ["good"]
    [problem] = loaded.problems
    assert problem.startswith(f"{folder / 'bad.yaml'}:1:1: could not be checked: KeyError")
    assert "SECRET" not in problem and "***@bucket" in problem
