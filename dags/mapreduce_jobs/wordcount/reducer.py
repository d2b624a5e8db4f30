#!/usr/bin/env python3
"""Word-count reducer that accumulates a dict: needs no particular input order.

The loop is in a function: there CPython looks names up in fast locals, not in the
module's dict (a third fewer instructions per line).
"""

import sys


def main() -> None:
    sys.stdin.reconfigure(errors="surrogateescape")
    sys.stdout.reconfigure(errors="surrogateescape")
    counts: dict[str, int] = {}
    for line in sys.stdin:
        word, _, count = line.rstrip("\n").partition("\t")
        counts[word] = counts.get(word, 0) + int(count)
    sys.stdout.writelines(f"{word}\t{count}\n" for word, count in counts.items())


if __name__ == "__main__":
    main()
