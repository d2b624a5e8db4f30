"""FileSystems resolves filesystems lazily: unused protocols cost nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_a_failed_write_leaves_no_object_even_after_garbage_collection(tmp_path: Path) -> None:
    import gc

    files = FileSystems()
    for uri in ("memory://bucket/partial", f"file://{tmp_path}/partial"):
        with pytest.raises(RuntimeError), files.open_write(uri) as out:
            out.write(b"half of it")
            raise RuntimeError("writer died")
        gc.collect()
        assert not files.exists(uri)
        files.write_bytes(uri, b"whole")
        assert files.read_bytes(uri) == b"whole"


@pytest.mark.integration
def test_a_failed_s3_upload_is_never_published(s3_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gc

    s3 = s3_server.filesystem()
    s3.mkdir("atomic-bucket")
    files = FileSystems({"s3": s3})
    for size in (10, 12 << 20):  # a one-shot upload, and a multipart one
        uri = f"s3://atomic-bucket/partial-{size}"
        with pytest.raises(RuntimeError), files.open_write(uri) as out:
            out.write(b"x" * size)
            raise RuntimeError("writer died")
        gc.collect()
        s3.invalidate_cache()
        assert not files.exists(uri)
        files.write_bytes(uri, b"y" * size)
        s3.invalidate_cache()
        assert files.size(uri) == size
