#!/usr/bin/env python3
"""The classic Hadoop Streaming word-count mapper: one "word<TAB>1" line per word.

Undecodable bytes pass through (surrogateescape), and each input line's output is
written with one call rather than one print() per word. The loop is in a function:
there CPython looks names up in fast locals, not in the module's dict.
"""

import sys


def main() -> None:
    sys.stdin.reconfigure(errors="surrogateescape")
    sys.stdout.reconfigure(errors="surrogateescape")
    write = sys.stdout.write
    for line in sys.stdin:
        words = line.split()
        if words:
            write("\t1\n".join(words) + "\t1\n")


if __name__ == "__main__":
    main()
