#!/usr/bin/env python3
"""Reduce-side join reducer: each event with its user's country and plan (inner join).

Lines arrive as user<TAB>tag<TAB>rest, a user's lines together, its users row (tag 0)
before its events (tag 1). Events of a user without a row are dropped and counted (the
join.events_without_user counter); a user with no events writes nothing.
"""

import sys

sys.stdin.reconfigure(errors="surrogateescape")
sys.stdout.reconfigure(errors="surrogateescape")
current, profile = None, None
for line in sys.stdin:
    user, tag, rest = line.rstrip("\n").split("\t", 2)
    if user != current:
        current, profile = user, None
    if tag == "0":
        profile = rest
    elif profile is None:
        sys.stderr.write("reporter:counter:join,events_without_user,1\n")
    else:
        sys.stdout.write(f"{user}\t{rest}\t{profile}\n")
