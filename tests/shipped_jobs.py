"""Jobs with shipped files (`files:`), written into a job folder of a test's own, and the
references their outputs are checked against, computed with plain Python.

The shipped tables live under tables/ and scripts/ with other names than the ones the
steps open, so a step finds them only if they were shipped into its working folder.
"""

from __future__ import annotations

import collections
import os
import random
from dataclasses import dataclass
from pathlib import Path

import yaml

STOP_WORDS = ["the", "a", "of", "and", "to", "in"]
CATEGORIES = {"cat": "animal", "dog": "animal", "owl": "animal", "oak": "plant",
              "fern": "plant", "rock": "mineral", "salt": "mineral"}  # fmt: skip
WORDS = [*STOP_WORDS, *CATEGORIES, "naïve", "zebu", "lichen", "日本"]

# A streaming mapper (a file of the job folder) that drops the shipped stop words.
STREAMING_MAPPER = """\
import sys
stop = set(open("stopwords.txt", encoding="utf-8").read().split())
for line in sys.stdin:
    for word in line.split():
        if word not in stop:
            print(f"{word}\\t1")
"""
# A streaming reducer summing counts; reduce tasks get the shipped files too.
STREAMING_REDUCER = """\
import os, sys
assert os.path.isfile("stopwords.txt"), os.listdir(".")
current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\\n").split("\\t")
    if word != current and current is not None:
        print(f"{current}\\t{total}")
        total = 0
    current, total = word, total + int(count)
if current is not None:
    print(f"{current}\\t{total}")
"""
# A shipped executable: the mapper command itself, run as ./tokenize.
TOKENIZE = """\
#!/usr/bin/env python3
import sys
stop = set(open("stopwords.txt", encoding="utf-8").read().split())
for line in sys.stdin:
    for word in line.split():
        if word not in stop:
            sys.stdout.write(word + "\\t1\\n")
"""
# Python callables: the lifecycle setup loads the shipped word -> category table.
CALLABLES = """\
TABLE = {}


def load_categories():
    with open("categories.tsv", encoding="utf-8") as table:
        TABLE.clear()
        TABLE.update(line.rstrip("\\n").split("\\t") for line in table)


def categorize(_key, line):
    for word in line.split():
        yield TABLE.get(word, "other"), 1


def total(category, counts):
    yield category, sum(counts)
"""


@dataclass(frozen=True)
class ShippedJobs:
    folder: Path
    input: Path
    text: str

    def words(self) -> collections.Counter[str]:
        """The streaming jobs' reference: every word but the stop words."""
        return collections.Counter(w for w in self.text.split() if w not in STOP_WORDS)

    def categories(self) -> collections.Counter[str]:
        """The callable job's reference: words counted by category."""
        return collections.Counter(CATEGORIES.get(w, "other") for w in self.text.split())


def write_shipped_jobs(folder: Path, seed: int = 5) -> ShippedJobs:
    """The job folder's code, tables and input (several map tasks at a 4 KiB split size)."""
    rng = random.Random(seed)
    (folder / "in").mkdir(parents=True)
    texts = []
    for index in range(3):
        lines = [" ".join(rng.choices(WORDS, k=rng.randint(0, 12))) for _ in range(600)]
        text = "\n".join(lines) + "\n"
        (folder / "in" / f"{index}.txt").write_text(text, encoding="utf-8")
        texts.append(text)
    (folder / "tables").mkdir()
    (folder / "tables" / "stop.txt").write_text("\n".join(STOP_WORDS) + "\n")
    (folder / "tables" / "word_categories.tsv").write_text(
        "".join(f"{word}\t{category}\n" for word, category in CATEGORIES.items())
    )
    (folder / "mapper.py").write_text(STREAMING_MAPPER)
    (folder / "reducer.py").write_text(STREAMING_REDUCER)
    (folder / "shipped_callables.py").write_text(CALLABLES)
    (folder / "scripts").mkdir()
    (folder / "scripts" / "tokenize").write_text(TOKENIZE)
    os.chmod(folder / "scripts" / "tokenize", 0o755)
    return ShippedJobs(folder, folder / "in", "".join(texts))


STOP_FILE = {"source": "tables/stop.txt", "name": "stopwords.txt"}
KINDS = {
    "streaming": {
        "mapper": {"command": ["python3", "mapper.py"]},
        "reducer": {"command": ["python3", "reducer.py"]},
        "files": [STOP_FILE],
    },
    "callable": {
        "mapper": {"callable": "shipped_callables:categorize"},
        "reducer": {"callable": "shipped_callables:total"},
        "lifecycle": {"setup": "shipped_callables:load_categories"},
        "files": [{"source": "tables/word_categories.tsv", "name": "categories.tsv"}],
    },
    "executable": {
        "mapper": {"command": ["./tokenize"]},
        "reducer": {"command": ["python3", "reducer.py"]},
        "files": ["scripts/tokenize", STOP_FILE],
    },
}


def job_yaml(
    dag_id: str, kind: str, input_uri: str = "in", output: str = "out", **more: object
) -> str:
    """A job of `kind` (see KINDS) with its shipped files."""
    job = {
        "dag_id": dag_id,
        "input": {"uri": input_uri, "split_size": "4KiB"},
        **KINDS[kind],
        "reducers": 2,
        "output": output,
        **more,
    }
    return yaml.safe_dump(job, sort_keys=False, allow_unicode=True)


def reference(jobs: ShippedJobs, kind: str) -> collections.Counter[str]:
    return jobs.categories() if kind == "callable" else jobs.words()
