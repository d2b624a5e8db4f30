"""Finding and waiting for the processes a test started (from /proc)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def marked_processes(marker: str) -> dict[int, str]:
    """{pid: command line} of the processes that mention `marker` (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # ended meanwhile
                continue
            if marker.encode() in cmdline:
                found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
