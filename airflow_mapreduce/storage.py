"""Object storage access through fsspec (file://, s3://, memory://, ...).

Shared by the planner (in Airflow) and the worker (in a pod). Writes are atomic: an
object is either absent or complete. Object stores give that per PUT; on local disks
we write a temporary sibling and rename it.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from airflow_mapreduce.errors import MapReduceError


def resolve_uri(uri: str, base_dir: Path | None) -> str:
    """The one canonical form of a URI, for every entry point (YAML, conf, CLI, Python).

    Plain paths become absolute ``file://`` URIs (a relative one is taken from `base_dir`,
    the job file's folder; without one it is refused) and local paths are normalised, so
    that URIs the commit compares with listed objects are spelt alike. Other schemes are
    kept as written. A trailing '/' (a folder) is kept.
    """
    trailing = "/" if uri.endswith("/") else ""
    if uri.startswith("file://"):
        path = uri[len("file://") :]
        if not path.startswith("/"):
            raise UnsafeUriError(
                f"{uri!r} is not an absolute file:// URI; write file:///abs/path or a plain "
                "path (relative paths are taken from the job file's folder)"
            )
    elif "://" in uri:
        check_scheme(uri)  # an unsupported scheme says so, whatever else is wrong
        scheme, rest = uri.split("://", 1)
        authority = rest.split("/", 1)[0]
        if "@" in authority or ":" in authority:
            # Not quoted: the URI may hold a key and secret.
            raise UnsafeUriError(
                f"a {scheme}:// URI holds credentials or a connection id (user@ or "
                "user:secret@ before the bucket); put credentials in an Airflow connection "
                "(storage.aws_conn_id) or a Kubernetes Secret (kubernetes.storage_secret)"
            )
        # Object keys spelt alike whatever the typing ('s3://b//x' lists as 's3://b/x').
        return f"{scheme}://{re.sub('/{2,}', '/', rest)}"
    elif os.path.isabs(uri):
        path = uri
    elif base_dir is None:
        raise UnsafeUriError(
            f"relative path {uri!r} has no folder to be relative to; give an absolute path "
            "or a URI such as file:///data/in or s3://bucket/prefix/"
        )
    else:
        path = str(base_dir / uri)
    normal = os.path.normpath(path)
    normal = "/" + normal.lstrip("/")  # POSIX normpath keeps a leading '//'
    return f"file://{normal}{trailing if normal != '/' else ''}"


def join_uri(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts)


def protocol_of(uri: str) -> str:
    return uri.split("://", 1)[0] if "://" in uri else "file"


def inside(uri: str, root: str) -> bool:
    """`uri` is `root` or lies under it (both canonical URIs)."""
    uri, root = uri.rstrip("/"), root.rstrip("/")
    return uri == root or uri.startswith(root + "/")


def literal_root(uri: str) -> str:
    """The folder/prefix a URI reads under: a glob's part before its first wildcard."""
    for index, char in enumerate(uri):
        if char in "*?[{":
            return uri[: uri.rfind("/", 0, index) + 1]
    return uri


def overlap_problem(input_uri: str, output_uri: str, work_uri: str | None) -> str | None:
    """Why these roots may not be used together, or None.

    Output equal to the input would replace it; output inside it is read back as input
    by the next run; input inside the output is deleted or replaced by a commit.
    """
    source = literal_root(input_uri)
    if inside(output_uri, source) or inside(source, output_uri):
        relation = (
            "is the input"
            if source.rstrip("/") == output_uri.rstrip("/")
            else ("lies inside the input" if inside(output_uri, source) else "holds the input")
        )
        return (
            f"output {output_uri} {relation} {input_uri}: a run would overwrite its input or "
            "read its own output back; give the output a folder of its own outside the input"
        )
    if work_uri is not None and (inside(work_uri, source) or inside(source, work_uri)):
        return (
            f"work {work_uri} overlaps the input {input_uri}: map tasks would read "
            "intermediate data as input; give the work root a folder outside the input"
        )
    return None


# Object stores and local files. Anything else (http://, ftp://, data:, chained "a::b"
# URLs...) could make a job read or write where its URIs do not appear to point.
ALLOWED_PROTOCOLS = frozenset({"file", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})


def check_scheme(uri: str) -> str:
    """The URI's protocol, or UnsafeUriError if it is not an object store or local file."""
    protocol = protocol_of(uri)
    if protocol not in ALLOWED_PROTOCOLS or "::" in uri:
        raise UnsafeUriError(
            f"{uri!r}: unsupported URL scheme {protocol!r}; expected one of "
            f"{', '.join(sorted(ALLOWED_PROTOCOLS))}:// or a plain path"
        )
    return protocol


def check_writable_root(uri: str, what: str) -> str:
    """A root that jobs write and delete under: a supported scheme and no '..' segments.

    '..' would let an output or work URI from a run's conf reach outside the prefix it
    names (the commit and the janitor delete under these roots).
    """
    check_scheme(uri)
    path = uri.split("://", 1)[1] if "://" in uri else uri
    if ".." in path.split("/") or "\\" in path:
        raise UnsafeUriError(
            f"{what} {uri!r} contains '..' or a backslash; give the folder or prefix "
            "without relative segments"
        )
    if not path.strip("/"):
        raise UnsafeUriError(f"{what} {uri!r} is the filesystem root; name a folder")
    return uri


class FileSystems:
    """Resolves a URI to its fsspec filesystem; callers may inject configured ones.

    The Airflow side injects filesystems built from Airflow connections; the worker uses
    fsspec's defaults, which read credentials from the environment (AWS_* variables,
    IRSA, workload identity), never from task specs.
    """

    def __init__(
        self,
        overrides: Mapping[str, AbstractFileSystem] | None = None,
        factories: Mapping[str, Callable[[], AbstractFileSystem]] | None = None,
    ) -> None:
        self._by_protocol: dict[str, AbstractFileSystem] = dict(overrides or {})
        # Built on first use only: a run that never touches s3:// never resolves credentials.
        self._factories = dict(factories or {})

    def fs(self, uri: str) -> AbstractFileSystem:
        protocol = check_scheme(uri)
        if protocol not in self._by_protocol:
            factory = self._factories.get(protocol, lambda: fsspec.filesystem(protocol))
            self._by_protocol[protocol] = factory()
        return self._by_protocol[protocol]

    # Reading -------------------------------------------------------------------------
    def exists(self, uri: str) -> bool:
        return bool(self.fs(uri).exists(uri))

    def read_bytes(self, uri: str) -> bytes:
        try:
            return cast(bytes, self.fs(uri).cat_file(uri))
        except FileNotFoundError as exc:
            raise MissingObjectError(uri) from exc

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read_bytes(uri))

    def open_read(self, uri: str, compression: str | None = None) -> IO[bytes]:
        fs = self.fs(uri)
        if compression is None and isinstance(fs, LocalFileSystem):
            # The plain file: fsspec's wrapper costs as much again as reading a small one.
            return open(fs._strip_protocol(uri), "rb")
        return cast(IO[bytes], fs.open(uri, "rb", compression=compression))

    def size(self, uri: str) -> int:
        try:
            return int(self.fs(uri).size(uri))
        except FileNotFoundError as exc:
            raise MissingObjectError(uri) from exc

    def find(self, uri: str) -> list[str]:
        """Files at a URI: the file itself, every file under a folder/prefix, or a glob's."""
        return list(self.find_sizes(uri))

    def find_sizes(self, uri: str) -> dict[str, int]:
        """find()'s files with their sizes, from the same listing (no request per object:
        the planner of 20,000 small files needs their sizes)."""
        fs = self.fs(uri)
        protocol = protocol_of(uri)
        infos: dict[str, Any]
        if fsspec.core.has_magic(uri):
            infos = {p: i for p, i in fs.glob(uri, detail=True).items() if i["type"] == "file"}
        elif fs.isfile(uri):
            infos = {uri: fs.info(uri)}
        elif isinstance(fs, LocalFileSystem):  # os.scandir: 20,000 files in a few ms
            sizes = _local_file_sizes(fs._strip_protocol(uri))
            return dict(sorted((f"file://{path}", size) for path, size in sizes.items()))
        else:
            infos = fs.find(uri, detail=True)
        return dict(
            sorted((self._with_protocol(protocol, p), int(i["size"])) for p, i in infos.items())
        )

    def list_dir(self, uri: str) -> list[str]:
        """Direct children of a folder/prefix (not recursive); empty if it does not exist."""
        fs = self.fs(uri)
        try:
            paths = fs.ls(uri, detail=False)
        except FileNotFoundError:
            return []
        return sorted(self._with_protocol(protocol_of(uri), p) for p in paths)

    @staticmethod
    def _with_protocol(protocol: str, path: str) -> str:
        if "://" in path:
            return path
        return f"{protocol}://{path}" if protocol != "file" else f"file://{path}"

    # Writing -------------------------------------------------------------------------
    def write_bytes(self, uri: str, data: bytes) -> None:
        with self.open_write(uri) as f:
            f.write(data)

    def write_json(self, uri: str, obj: Any) -> None:
        self.write_bytes(uri, json.dumps(obj, indent=1, sort_keys=True).encode())

    @contextlib.contextmanager
    def open_write(self, uri: str) -> Iterator[IO[bytes]]:
        """Open for writing; the object becomes visible only when the block exits cleanly."""
        fs = self.fs(uri)
        if isinstance(fs, LocalFileSystem):
            path = fs._strip_protocol(uri)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            # Hidden (a leading dot), so a reader of the folder never takes it for data;
            # the commit recognises its own leftovers by this name (temporary_name_of).
            tmp = posixpath.join(os.path.dirname(path), temporary_name(os.path.basename(path)))
            try:
                with open(tmp, "wb") as f:
                    yield f
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
            return
        if isinstance(fs, MemoryFileSystem):
            # memory:// publishes a file when it is opened: write it whole at the end.
            with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
                yield cast(IO[bytes], spool)
                spool.seek(0)
                fs.pipe_file(uri, spool.read())
            return
        # Object stores publish an object when its upload is committed. Without autocommit
        # a failed or killed writer leaves nothing visible, not even on garbage collection.
        f = fs.open(uri, "wb", autocommit=False)
        try:
            yield cast(IO[bytes], f)
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()  # abort the multipart upload
            raise
        f.close()
        f.commit()

    def copy(self, source: str, dest: str) -> None:
        """Copy one object; `dest` is either absent/unchanged or complete (server-side on S3)."""
        fs = self.fs(dest)
        if protocol_of(source) != protocol_of(dest) or isinstance(fs, LocalFileSystem):
            # Local copies are not atomic: stream through open_write's temp-and-rename.
            with self.open_read(source) as src, self.open_write(dest) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            return
        fs.copy(source, dest)

    def find_all(self, uri: str) -> list[str]:
        """Every object under a folder/prefix; empty if there is none."""
        try:
            return self.find(uri)
        except FileNotFoundError:
            return []

    def remove_many(self, uris: list[str]) -> None:
        """Delete objects (batched on object stores); missing ones are fine."""
        if uris:
            with contextlib.suppress(FileNotFoundError):
                self.fs(uris[0]).rm(uris)

    def remove_empty_dir(self, uri: str) -> None:
        """Remove a local folder if it is empty (object stores have no folders to remove)."""
        fs = self.fs(uri)
        if isinstance(fs, LocalFileSystem):
            with contextlib.suppress(OSError):  # missing, or not empty: another run's
                os.rmdir(fs._strip_protocol(uri))

    def remove(self, uri: str, recursive: bool = False) -> None:
        fs = self.fs(uri)
        with contextlib.suppress(FileNotFoundError):
            if recursive:
                if fs.exists(uri):
                    fs.rm(uri, recursive=True)
            else:
                fs.rm_file(uri)


def temporary_name(name: str) -> str:
    """The name open_write gives an object while it is written on a local disk."""
    return f".{name}.tmp-{uuid.uuid4().hex}"


_TEMPORARY = re.compile(r"^\.?(?P<name>.+)\.tmp-[0-9a-f]{32}$")


def temporary_name_of(name: str) -> str | None:
    """The object a temporary file of open_write was for (a killed writer leaves it), or
    None. Also matches the visible "<name>.tmp-<hex>" form older versions wrote."""
    match = _TEMPORARY.match(name)
    return match["name"] if match else None


class MissingObjectError(MapReduceError, FileNotFoundError):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"expected object {uri} but it does not exist")


def _local_file_sizes(root: str) -> dict[str, int]:
    """{path: size} of the files under a local folder (symlinked folders not followed,
    as os.walk and fsspec's find)."""
    found: dict[str, int] = {}
    folders = [root]
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file():
                    found[entry.path] = entry.stat().st_size
    return found


class UnsafeUriError(MapReduceError, ValueError):
    """A URI with a scheme or path that could reach outside the job's storage."""
