"""The example DAGs top_words and events_by_country: their data generated for a test, and
their outputs computed with plain Python over the same files (never the project's code)."""

from __future__ import annotations

import collections
import random
from pathlib import Path

COUNTRIES = ["FI", "UK", "US", "JP"]
EVENTS = ["login", "logout", "upload", "download", "comment"]


def top_words(folder: Path, wanted: int = 10) -> list[str]:
    """dags/top_words.yaml's output lines: the most frequent lower-cased words, ties by word."""
    counts: collections.Counter[str] = collections.Counter()
    for path in folder.iterdir():
        counts.update(word.lower() for word in path.read_text(encoding="utf-8").split())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:wanted]
    return [f"{word}\t{count}" for word, count in ranked]


def write_users_and_events(folder: Path, seed: int = 3) -> tuple[Path, Path]:
    """users/ (user<TAB>country<TAB>plan, some users without events) and events/ (3 files of
    user<TAB>time<TAB>event, some of users without a row)."""
    rng = random.Random(seed)
    users, events = folder / "users", folder / "events"
    users.mkdir(parents=True)
    events.mkdir()
    names = [f"u{n:03d}" for n in range(40)]
    (users / "users.tsv").write_text(
        "".join(
            f"{name}\t{rng.choice(COUNTRIES)}\t{rng.choice(['free', 'pro'])}\n"
            for name in names[:30]
        )
    )
    for index in range(3):
        rows = [
            f"{rng.choice(names[3:])}\t{1_700_000_000 + rng.randint(0, 99_999)}\t"
            f"{rng.choice(EVENTS)}"
            for _ in range(150)
        ]
        (events / f"events{index}.tsv").write_text("\n".join(rows) + "\n")
    return users, events


def events_by_country(users: Path, events: Path) -> collections.Counter[str]:
    """dags/events_by_country.yaml's output lines: each event of a known user, with the
    user's country and plan (an inner join)."""
    profiles = {}
    for path in users.iterdir():
        for line in path.read_text().splitlines():
            user, rest = line.split("\t", 1)
            profiles[user] = rest
    joined: collections.Counter[str] = collections.Counter()
    for path in events.iterdir():
        for line in path.read_text().splitlines():
            user = line.split("\t", 1)[0]
            if user in profiles:
                joined[f"{line}\t{profiles[user]}"] += 1
    return joined


def output_lines(folder: Path) -> collections.Counter[str]:
    lines: collections.Counter[str] = collections.Counter()
    for path in sorted(folder.glob("part-*")):
        lines.update(path.read_text().splitlines())
    return lines
