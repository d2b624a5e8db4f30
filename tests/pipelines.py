"""Multi-step and multi-input jobs written into a test's own folder, with their data, and
the references their outputs are checked against, computed with plain Python over the
same files (never with the project's code).

- `pipeline`: three Python steps (count words; group the words by count; keep the counts
  of two or more, map-only): types travel between steps as JSON.
- `mixed`: a streaming word count, a Python step summing the counts by word length, a
  streaming map-only step renaming the keys: text between steps.
- `join`: users and orders, each input with its own Python mapper, joined in the reducer:
  per user, the country and the total of the orders (users without orders, and orders
  without a user, dropped).
"""

from __future__ import annotations

import collections
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "naïve", "日本"]

CALLABLES = """\
import os


def words(_key, line):
    for word in line.split():
        yield word, 1


def total(key, values):
    yield key, sum(int(value) for value in values)


def flaky_total(key, values):
    # Fails the task while the file FLAKY_MARKER names exists (removing it): a retry passes.
    marker = os.environ.get("FLAKY_MARKER", "")
    if marker and os.path.exists(marker):
        os.remove(marker)
        raise RuntimeError("flaky reducer: failing this attempt")
    yield key, sum(int(value) for value in values)


def by_count(word, count):
    yield count, word


def word_list(count, words):
    yield count, sorted(words)


def keep_common(count, words):
    if count >= 2:
        yield count, len(words)


def strict_by_count(word, count):
    # A bad record in a later step: words starting with "bad" make this mapper raise.
    if word.startswith("bad"):
        raise ValueError(f"bad word {word}")
    yield count, word


def by_length(word, count):
    yield len(word), int(count)


def user_row(_key, line):
    user, country = line.split("\\t")
    yield user, ["user", country]


def order_row(_key, line):
    user, amount = line.split("\\t")
    yield user, ["order", int(amount)]


def join_user_orders(user, rows):
    country, amounts = None, []
    for kind, value in rows:
        if kind == "user":
            country = value
        else:
            amounts.append(value)
    if country is not None and amounts:
        yield user, [country, sum(amounts)]
"""

WC_MAPPER = """\
import sys
for line in sys.stdin:
    for word in line.split():
        sys.stdout.write(word + "\\t1\\n")
"""
WC_REDUCER = """\
import sys
current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\\n").split("\\t")
    if word != current and current is not None:
        sys.stdout.write(f"{current}\\t{total}\\n")
        total = 0
    current, total = word, total + int(count)
if current is not None:
    sys.stdout.write(f"{current}\\t{total}\\n")
"""
RENAME = """\
import sys
for line in sys.stdin:
    key, value = line.rstrip("\\n").split("\\t")
    sys.stdout.write(f"len{key}\\t{value}\\n")
"""


@dataclass(frozen=True)
class JobFolder:
    folder: Path  # the job files and the modules they name
    text: Path  # word-count input: a folder of text files
    users: Path
    orders: Path


def write_job_folder(folder: Path, seed: int = 7, files: int = 4, lines: int = 120) -> JobFolder:
    """The modules, scripts and inputs of every job below, under `folder`."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline_steps.py").write_text(CALLABLES)
    for name, script in (("wc_mapper.py", WC_MAPPER), ("wc_reducer.py", WC_REDUCER),
                         ("rename.py", RENAME)):  # fmt: skip
        (folder / name).write_text(script)
    text = folder / "text"
    text.mkdir(exist_ok=True)
    for index in range(files):
        rows = [
            " ".join(rng.choices(WORDS, weights=range(len(WORDS), 0, -1), k=rng.randint(0, 9)))
            for _ in range(lines)
        ]
        rows += [f"unique{index}word{n}" for n in range(rng.randint(1, 5))]  # counts of 1
        (text / f"part{index}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    users, orders = folder / "users", folder / "orders"
    users.mkdir(exist_ok=True)
    orders.mkdir(exist_ok=True)
    names = [f"user{n:03d}" for n in range(60)]
    (users / "users.tsv").write_text(
        "".join(f"{name}\t{rng.choice(['FI', 'UK', 'US', 'JP'])}\n" for name in names[:50])
    )
    for index in range(3):  # users 50..59 have orders but no row; some users no orders
        rows = [f"{rng.choice(names[5:])}\t{rng.randint(1, 500)}" for _ in range(200)]
        (orders / f"orders{index}.tsv").write_text("\n".join(rows) + "\n")
    return JobFolder(folder, text, users, orders)


def job_yaml(dag_id: str, kind: str, jobs: JobFolder, output: str, **more: Any) -> str:
    """The YAML of job `kind` ("pipeline", "mixed" or "join") over the folder's inputs."""
    step = _step
    body: dict[str, Any]
    if kind == "pipeline":
        body = {
            "input": {"uri": str(jobs.text), "split_size": "2KiB"},
            "steps": [
                {"mapper": step("words"), "combiner": step("total"), "reducer": step("total"),
                 "reducers": 3},
                {"mapper": step("by_count"), "reducer": step("word_list"), "reducers": 2},
                {"mapper": step("keep_common"), "reducers": 0},
            ],
        }  # fmt: skip
    elif kind == "mixed":
        body = {
            "input": {"uri": str(jobs.text), "split_size": "2KiB"},
            "steps": [
                {"mapper": {"command": ["python3", "wc_mapper.py"]},
                 "reducer": {"command": ["python3", "wc_reducer.py"]}, "reducers": 2},
                {"mapper": step("by_length"), "reducer": step("total"), "reducers": 2},
                {"mapper": {"command": ["python3", "rename.py"]}, "reducers": 0},
            ],
        }  # fmt: skip
    elif kind == "join":
        body = {
            "inputs": [
                {"name": "users", "uri": str(jobs.users), "mapper": step("user_row")},
                {"name": "orders", "uri": str(jobs.orders), "split_size": "1KiB",
                 "mapper": step("order_row")},
            ],
            "reducer": step("join_user_orders"),
            "reducers": 3,
        }  # fmt: skip
    else:
        raise ValueError(kind)
    return yaml.safe_dump(
        {"dag_id": dag_id, **body, "output": output, "backend": "local", **more},
        allow_unicode=True,
        sort_keys=False,
    )


def _step(name: str) -> dict[str, str]:
    return {"callable": f"pipeline_steps:{name}"}


def word_reference(jobs: JobFolder) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in jobs.text.iterdir():
        counts.update(path.read_text(encoding="utf-8").split())
    return counts


def reference(jobs: JobFolder, kind: str) -> dict[str, str]:
    """What the job's output must hold: {key: value} as the output's text lines spell them."""
    counts = word_reference(jobs)
    if kind == "pipeline":
        by_count = collections.Counter(counts.values())
        return {str(count): str(words) for count, words in by_count.items() if count >= 2}
    if kind == "mixed":
        by_length: collections.Counter[int] = collections.Counter()
        for word, count in counts.items():
            by_length[len(word)] += count
        return {f"len{length}": str(total) for length, total in by_length.items()}
    if kind == "join":
        countries = dict(
            line.split("\t") for line in (jobs.users / "users.tsv").read_text().splitlines()
        )
        totals: collections.Counter[str] = collections.Counter()
        for path in jobs.orders.iterdir():
            for line in path.read_text().splitlines():
                user, amount = line.split("\t")
                totals[user] += int(amount)
        return {
            user: f'["{countries[user]}",{total}]'
            for user, total in totals.items()
            if user in countries
        }
    raise ValueError(kind)


def output_records(parts: dict[str, bytes]) -> dict[str, str]:
    """{key: value} of key<TAB>value lines of the parts; a key twice is a failure."""
    records: dict[str, str] = {}
    for name, data in sorted(parts.items()):
        for line in data.decode("utf-8").splitlines():
            key, value = line.split("\t", 1)
            assert key not in records, f"{key!r} written twice (again in {name})"
            records[key] = value
    return records
