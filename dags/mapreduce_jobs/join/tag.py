#!/usr/bin/env python3
"""Reduce-side join mapper: prefix each record's join key with its source's tag.

`tag.py 0` for the table whose record must reach the reducer first (users), `tag.py 1`
for the other (events): the job sorts on user, then tag, so a user's row comes before its
events and the reducer holds one row, never a user's events. Input lines:
user<TAB>rest; output: user<TAB>tag<TAB>rest.
"""

import sys

sys.stdin.reconfigure(errors="surrogateescape")
sys.stdout.reconfigure(errors="surrogateescape")
tag = sys.argv[1]
for line in sys.stdin:
    user, _, rest = line.rstrip("\n").partition("\t")
    if user:
        sys.stdout.write(f"{user}\t{tag}\t{rest}\n")
