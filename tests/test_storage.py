"""FileSystems resolves filesystems lazily: unused protocols cost nothing."""

from __future__ import annotations

from pathlib import Path

from fsspec import AbstractFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from airflow_mapreduce.storage import FileSystems


def test_a_factory_runs_only_when_its_protocol_is_used_and_only_once(tmp_path: Path) -> None:
    calls: list[str] = []

    def s3() -> AbstractFileSystem:
        calls.append("s3")
        return MemoryFileSystem()

    files = FileSystems(factories={"s3": s3})
    files.write_bytes(f"file://{tmp_path}/a.txt", b"local")
    assert files.read_bytes(f"file://{tmp_path}/a.txt") == b"local"
    assert calls == []  # no credentials resolved for a run that never touches s3://

    files.write_bytes("s3://bucket/k", b"remote")
    assert files.read_bytes("s3://bucket/k") == b"remote"
    assert calls == ["s3"]
