#!/usr/bin/env python3
"""TeraGen for the terasort example: ROWS records of 100 bytes each, like `gensort -a`.

A record is a line: a 10-byte key of printable ASCII (space to '~', never TAB), a TAB,
an 88-byte value (the row number as 32 hex digits, then filler letters) and LF.

    python3 teragen.py ROWS OUTPUT_FILE [--seed N] [--first-row N] [--skew FRACTION]

--skew: that fraction of the rows take one of 3 hot keys (a skewed key distribution).
The same arguments always write the same bytes.
"""

from __future__ import annotations

import argparse
import random
import string

KEY_BYTES = 10
VALUE_BYTES = 88
RECORD_BYTES = KEY_BYTES + 1 + VALUE_BYTES + 1  # key, TAB, value, LF
KEY_CHARS = "".join(chr(c) for c in range(0x20, 0x7F))  # printable ASCII, as gensort -a
FILLER = [(string.ascii_uppercase * 4)[shift : shift + VALUE_BYTES - 32] for shift in range(26)]


def records(rows: int, seed: int = 0, first_row: int = 0, skew: float = 0.0) -> list[bytes]:
    """The lines (LF included) of rows first_row .. first_row + rows - 1."""
    rng = random.Random(seed)
    hot = ["".join(rng.choices(KEY_CHARS, k=KEY_BYTES)) for _ in range(3)]
    out = []
    for row in range(first_row, first_row + rows):
        if skew and rng.random() < skew:
            key = rng.choice(hot)
        else:
            key = "".join(rng.choices(KEY_CHARS, k=KEY_BYTES))
        out.append(f"{key}\t{row:032X}{FILLER[row % 26]}\n".encode("ascii"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("output", help="file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-row", type=int, default=0)
    parser.add_argument("--skew", type=float, default=0.0)
    args = parser.parse_args()
    with open(args.output, "wb") as out:
        for start in range(0, args.rows, 100_000):  # bounded memory for any ROWS
            count = min(100_000, args.rows - start)
            out.writelines(records(count, args.seed + start, args.first_row + start, args.skew))


if __name__ == "__main__":
    main()
