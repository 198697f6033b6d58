# SPDX-License-Identifier: MIT
"""Prints one line per skipped test of meson's JSON test logs with the reason
the test gave (its first stdout line starting with "SKIP:"), so that a skip
is never silent.  Usage: skip_reasons.py TESTLOG.json [...] (missing files
are ignored)."""
import json
import sys

for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("result") != "SKIP":
            continue
        why = next((l for l in (r.get("stdout") or "").splitlines() if l.startswith("SKIP:")),
                   "SKIP: (no reason printed)")
        print(f"skipped {r.get('name', '?')}: {why[len('SKIP:'):].strip()}")
