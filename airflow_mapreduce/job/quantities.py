"""Byte sizes written the way people write them: ``64MiB``, ``1.5GB``, ``4096``."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d{1,20}(?:\.\d{1,20})?)\s*([a-zA-Z]*)\s*$")
MAX_BYTE_SIZE = 1024**4  # 1TiB: more than any split or sort buffer needs


def parse_byte_size(value: object) -> int:
    """Return a size in bytes; raise ValueError saying what a valid size looks like."""
    if isinstance(value, bool):
        raise ValueError(f"expected a byte size like 64MiB, found {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(
                f"unknown unit {match.group(2)!r} in {value!r}; use B, KiB, MiB, GiB, KB, MB or GB"
            )
        size = int(Decimal(match.group(1)) * _UNITS[unit])
    else:
        raise ValueError(f"expected a byte size like 64MiB or 1048576, found {value!r}")
    if size <= 0:
        raise ValueError(f"expected a positive byte size, found {value!r}")
    if size > MAX_BYTE_SIZE:
        raise ValueError(f"expected a byte size of at most 1024GiB, found {value!r}")
    return size


ByteSize = Annotated[
    int,
    BeforeValidator(parse_byte_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_BYTE_SIZE},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgG]i?[bB]?|[bB])?\s*$"},
            ]
        }
    ),
]
