"""Tiny codecs for records: key<TAB>value lines, raw or JSON-encoded."""

from __future__ import annotations

import json
import json.encoder
import operator
from typing import Any, Literal

# The C string encoder json.dumps(ensure_ascii=False) uses for str.
encode_basestring = json.encoder.encode_basestring
# Raw record bytes as str; undecodable bytes survive (surrogateescape). A C callable, so
# map(decode_text, ...) costs no Python frame per record.
decode_text = operator.methodcaller("decode", "utf-8", "surrogateescape")


class Codec:
    """How user values travel through the shuffle.

    json: Python callables' keys and values keep their types (1 stays an int).
    raw: streaming commands' bytes; decoded to str for a Python reducer.
    """

    def __init__(self, kind: Literal["raw", "json"]) -> None:
        self.kind = kind

    def encode(self, obj: Any) -> bytes:
        if self.kind == "json":
            return encode_json(obj)
        return _text(obj)

    def decode(self, data: bytes) -> Any:
        if self.kind == "json":
            return decode_json(data)
        return decode_text(data)


def encode_json(obj: Any) -> bytes:
    """Compact JSON; str and int (the common keys and values) skip json.dumps's set-up."""
    kind = type(obj)
    if kind is str:
        return encode_basestring(obj).encode("utf-8", "surrogateescape")
    if kind is int:
        return str(obj).encode()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogateescape"
    )


def decode_json(data: bytes) -> Any:
    """Inverse of encode_json, with the same fast paths for plain strings and integers."""
    if data[:1] == b'"' and b"\\" not in data:
        return data[1:-1].decode("utf-8", "surrogateescape")
    if data.isdigit():
        return int(data)
    return json.loads(data.decode("utf-8", "surrogateescape"))


def _text(obj: Any) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogateescape")  # undecodable input bytes survive
    return encode_json(obj)
