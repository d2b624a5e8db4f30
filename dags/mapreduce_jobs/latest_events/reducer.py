#!/usr/bin/env python3
"""Secondary-sort reducer: the LATEST newest events of each user.

Lines arrive as user<TAB>timestamp<TAB>event with all of a user's lines together and
newest first (the job's partitioner and comparator do that), so it counts per user
instead of holding a user's events: any number of them fits.
"""

import os
import sys

sys.stdin.reconfigure(errors="surrogateescape")
sys.stdout.reconfigure(errors="surrogateescape")
latest = int(os.environ.get("LATEST", "3"))
current, kept = None, 0
for line in sys.stdin:
    user = line.split("\t", 1)[0]
    if user != current:
        current, kept = user, 0
    if kept < latest:
        sys.stdout.write(line)
        kept += 1
