"""A job's metrics through Airflow's own metrics, received by a real StatsD listener (a UDP
socket on 127.0.0.1): `airflow dags test` of a small word count whose mapper reports a user
counter, checked against values the test computes from the files itself."""

from __future__ import annotations

import collections
import importlib.util
import os
import random
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_mapreduce.airflow.metrics import (
    COUNTER_MAX,
    GROUP_MAX,
    JOB_MAX,
    counter_stat_name,
    stat_name,
    stat_segment,
)
from tests.conftest import VENV_BIN

JOB = "metrics_probe"
PREFIX = "mrtest"
# A hostile counter group ("/", a space, a non-ASCII letter) and name, as the mapper sends it.
COUNTER = ("Probe Stats/ä", "lines read")
COUNTER_NAME = "mapreduce.metrics_probe.counters.Probe_Stats__.lines_read"
FRAMEWORK_COUNTER = "mapreduce.metrics_probe.counters.airflow-mapreduce.map_input_records"

JOB_YAML = f"""\
dag_id: {JOB}
schedule: null
input:
  uri: data
mapper:
  command: [python3, mapper.py]
reducer:
  command: [python3, reducer.py]
reducers: 2
output: {{output}}
backend: local
"""
MAPPER = f"""\
import sys

sys.stderr.reconfigure(encoding="utf-8")
lines = 0
for line in sys.stdin:
    lines += 1
    for word in line.split():
        sys.stdout.write(word + "\\t1\\n")
sys.stderr.write("reporter:counter:{COUNTER[0]},{COUNTER[1]}," + str(lines) + "\\n")
"""
REDUCER = """\
import sys

current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\\n").split("\\t", 1)
    if word != current:
        if current is not None:
            print(f"{current}\\t{total}")
        current, total = word, 0
    total += int(count)
if current is not None:
    print(f"{current}\\t{total}")
"""


def phase_names(phase: str) -> dict[str, str]:
    measures = {
        "duration": "ms",
        "tasks": "c",
        "input_records": "c",
        "output_records": "c",
        "input_bytes": "c",
        "output_bytes": "c",
        "bad_records": "c",
        "peak_memory_bytes": "g",
    }
    return {f"mapreduce.{JOB}.{phase}.{m}": kind for m, kind in measures.items()}


DOCUMENTED = {  # name -> StatsD type, as docs/metrics.md lists them
    f"mapreduce.{JOB}.plan.input_bytes": "g",
    f"mapreduce.{JOB}.plan.splits": "g",
    f"mapreduce.{JOB}.plan.map_tasks": "g",
    **phase_names("map"),
    **phase_names("reduce"),
    f"mapreduce.{JOB}.job.duration": "ms",
    f"mapreduce.{JOB}.job.output_records": "c",
    f"mapreduce.{JOB}.job.output_bytes": "c",
    f"mapreduce.{JOB}.job.partition_skew": "g",
    COUNTER_NAME: "c",
}


class StatsdListener:
    """A UDP socket that keeps every datagram it receives (as a StatsD server would)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.datagrams += data.decode().splitlines()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def parse(datagrams: list[str]) -> dict[str, list[tuple[str, float, dict[str, str]]]]:
    """name -> [(type, value, tags)] of StatsD lines `prefix.name,tag=v,...:value|type`."""
    metrics: dict[str, list[tuple[str, float, dict[str, str]]]] = collections.defaultdict(list)
    for line in datagrams:
        head, _, rest = line.rpartition(":")
        value, _, kind = rest.partition("|")
        name, *tags = head.split(",")  # (InfluxDB-style tags)
        metrics[name.removeprefix(f"{PREFIX}.")].append(
            (kind, float(value), dict(tag.split("=", 1) for tag in tags))
        )
    return metrics


def write_input(folder: Path) -> list[str]:
    rng = random.Random(21)
    words = [f"w{i}" for i in range(300)] + ["naïve", "日本"]
    folder.mkdir(parents=True)
    lines = []
    for index in range(3):
        part = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(2_000)]
        (folder / f"input-{index}.txt").write_text("".join(f"{line}\n" for line in part))
        lines += part
    return lines


@dataclass(frozen=True)
class MetricsRun:
    """What a run sent, and what the test knows of its input and output by itself."""

    metrics: dict[str, list[tuple[str, float, dict[str, str]]]]
    lines: list[str]
    inputs: list[Path]
    parts: list[Path]

    def value(self, name: str) -> float:
        return self.metrics[f"mapreduce.{JOB}.{name}"][0][1]


@pytest.fixture(scope="module")
def metrics_run(airflow_db: str, tmp_path_factory: pytest.TempPathFactory) -> MetricsRun:
    """`airflow dags test` of the probe job with Airflow's StatsD metrics on, sent to a UDP
    socket of the test."""
    if importlib.util.find_spec("statsd") is None:  # Airflow then sends nothing, and says so
        pytest.fail("the statsd package (apache-airflow[statsd]) is missing from the venv")
    root = tmp_path_factory.mktemp("metrics")
    dags, output = root / "dags", root / "out"
    lines = write_input(dags / "data")
    (dags / f"{JOB}.yaml").write_text(JOB_YAML.format(output=output))
    (dags / "mapper.py").write_text(MAPPER)
    (dags / "reducer.py").write_text(REDUCER)

    listener = StatsdListener()
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": PREFIX,
        # Tags in the name (name,tag=value:...|c), so that the test sees them too.
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
    }
    try:
        run = subprocess.run(
            [str(VENV_BIN / "airflow"), "dags", "test", JOB],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        listener.close()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logged = run.stdout + run.stderr
    for problem in ("Metrics of", "Invalid stat name", "Dropping invalid tag"):
        assert problem not in logged  # nothing failed to send, no name or tag was refused
    metrics = parse(listener.datagrams)
    assert "ti.start" in metrics, "Airflow's own metrics did not arrive: the listener is wrong"
    return MetricsRun(
        metrics, lines, sorted((dags / "data").iterdir()), sorted(output.glob("part-*"))
    )


@pytest.mark.integration
@pytest.mark.slow
def test_every_documented_metric_arrives_once_with_its_type_and_tags(
    metrics_run: MetricsRun,
) -> None:
    metrics = metrics_run.metrics
    missing = {name for name in DOCUMENTED if name not in metrics}
    assert not missing, sorted(metrics)
    ours = {name: sent for name, sent in metrics.items() if name.startswith("mapreduce.")}
    counters = {name for name in ours if name.startswith(f"mapreduce.{JOB}.counters.")}
    assert set(ours) - counters == set(DOCUMENTED) - {COUNTER_NAME}  # nothing undocumented
    assert {COUNTER_NAME, FRAMEWORK_COUNTER} <= counters  # the user's and the framework's
    for name, sent in ours.items():
        [(kind, _, tags)] = sent  # one of each per run
        assert kind == DOCUMENTED.get(name, "c"), name
        phase = name.split(".")[2]
        assert tags == {"dag_id": JOB, "job": JOB, "phase": phase}, name


@pytest.mark.integration
@pytest.mark.slow
def test_the_metrics_match_the_input_and_output_files(metrics_run: MetricsRun) -> None:
    value, lines = metrics_run.value, metrics_run.lines
    words = collections.Counter(word for line in lines for word in line.split())
    input_bytes = sum(p.stat().st_size for p in metrics_run.inputs)
    part_records = [len(p.read_bytes().splitlines()) for p in metrics_run.parts]
    part_bytes = sum(p.stat().st_size for p in metrics_run.parts)
    assert value("plan.input_bytes") == input_bytes
    assert value("plan.splits") >= len(metrics_run.inputs)
    assert value("map.tasks") == value("plan.map_tasks") >= 1
    assert value("map.input_records") == len(lines)
    assert value("map.input_bytes") == input_bytes
    assert value("map.output_records") == sum(words.values())
    assert value("map.bad_records") == 0
    assert value("reduce.tasks") == 2
    assert value("reduce.input_records") == sum(words.values())
    assert value("reduce.output_records") == len(words)
    assert value("reduce.output_bytes") == part_bytes
    assert value("job.output_records") == len(words) == sum(part_records)
    assert value("job.output_bytes") == part_bytes
    assert value("job.partition_skew") == pytest.approx(
        max(part_records) * len(part_records) / sum(part_records), rel=1e-6
    )
    assert metrics_run.metrics[COUNTER_NAME][0][1] == len(lines)
    assert metrics_run.metrics[FRAMEWORK_COUNTER][0][1] == len(lines)


@pytest.mark.integration
@pytest.mark.slow
def test_durations_and_peak_memory_are_positive(metrics_run: MetricsRun) -> None:
    value = metrics_run.value
    for name in ("map.duration", "reduce.duration", "job.duration"):
        assert value(name) > 0, name
    assert value("job.duration") >= value("map.duration") + value("reduce.duration")
    for phase in ("map", "reduce"):
        assert value(f"{phase}.peak_memory_bytes") > 1_000_000  # a Python worker's RSS


HOSTILE = [
    "My Group/ä",
    "",
    "...",
    "a.b.c",
    "tab\there",
    "emoji 🙂",
    "x" * 1_000,
    "ä" * 300,
    "comma,equals=colon:pipe|hash#at@",
    "dag.group.task",
]


def airflow_accepts(name: str) -> bool:
    """Airflow's own checks of a stat name: StatsD's default handler, OpenTelemetry's (with
    the default prefix) and the task SDK's normaliser."""
    from airflow.sdk._shared.observability.metrics.validators import (
        stat_name_default_handler,
        stat_name_otel_handler,
    )
    from airflow.sdk.observability.stats import normalize_name_for_stats

    stat_name_default_handler(name)  # raises InvalidStatsNameException
    stat_name_otel_handler("airflow", name)
    return normalize_name_for_stats(name, log_warning=False) == name


@pytest.mark.parametrize("text", HOSTILE)
def test_names_of_hostile_jobs_and_counters_are_accepted_by_airflow(text: str) -> None:
    for name in (
        stat_name(text, "map", "input_records"),
        stat_name(text, "reduce", "peak_memory_bytes"),
        counter_stat_name(text, text, text),
        counter_stat_name("j" * JOB_MAX, "g" * 500, "n" * 500),
    ):
        assert airflow_accepts(name), name
        assert len(name.split(".")) in (4, 5)  # a dot in the text shifts no segment


def test_segments_keep_readable_names_and_stay_distinct() -> None:
    assert stat_segment("wordcount", JOB_MAX) == "wordcount"
    assert stat_segment("dag.group", JOB_MAX) == "dag__group"  # as Airflow's legacy names do
    assert stat_segment("My Group/ä", GROUP_MAX) == "My_Group__"
    assert stat_segment("", COUNTER_MAX) == "_"
    long_a, long_b = "a" * 100 + "1", "a" * 100 + "2"
    cut_a, cut_b = stat_segment(long_a, GROUP_MAX), stat_segment(long_b, GROUP_MAX)
    assert len(cut_a) == len(cut_b) == GROUP_MAX
    assert cut_a != cut_b


def test_a_failing_metrics_backend_warns_once_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_mapreduce.airflow import metrics
    from airflow_mapreduce.plan.output_state import OutputManifest
    from airflow_mapreduce.plan.tasks import PartFile
    from airflow_mapreduce.storage import FileSystems
    from airflow_mapreduce.version_compat import airflow_stats

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("statsd is down")

    for function in ("gauge", "incr", "decr", "timing"):
        monkeypatch.setattr(airflow_stats, function, broken)
    manifest = OutputManifest(
        dag_id="d.g",
        run_id="r",
        input_uri="file:///in",
        output_uri="file:///out",
        files=[PartFile(partition=0, uri="file:///out/part-00000", records=3, bytes=9)],
        records=3,
        bytes=9,
        counters={"G": {"up": 2, "down": -1}},
        history="file:///nonexistent/_job_history.json",
    )
    with caplog.at_level("WARNING", logger=metrics.__name__):
        metrics.emit_commit_metrics(FileSystems(), manifest, {})
    warnings = [r for r in caplog.records if r.name == metrics.__name__]
    assert len(warnings) == 1
    assert "statsd is down" in warnings[0].getMessage()
