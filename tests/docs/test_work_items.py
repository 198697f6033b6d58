#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""What users read names no internal work item: no issue numbers,
"deliverables", the team's design notes outside the repository (DESIGN.md,
STYLE.md) or paths of the machines the project was built on (/work/...).

Read: README.md, clients/python/README.md, docs/*.md, examples/README.md,
and every text file `meson install` puts in place (the public headers, man
pages, the example config, the units, the models' cards), listed by
`meson introspect --installed`.  Prints the number of files read; fails with
one line per hit (FILE:LINE: the words).
Usage: test_work_items.py SOURCE_ROOT BUILD_ROOT"""
import glob
import json
import os
import re
import subprocess
import sys

ROOT, BUILD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
WORK_ITEM = re.compile(r"\bissues? ?#?\d+\b|\bdeliverables?\b|\b(?:DESIGN|STYLE)\.md\b|/work/(?:main|wt|shared)\b",
                       re.I)


def user_files():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "clients", "python", "README.md"),
             os.path.join(ROOT, "examples", "README.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    r = subprocess.run(["meson", "introspect", BUILD, "--installed"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("work_items: meson introspect --installed: " + r.stderr.strip())
    for src in sorted(json.loads(r.stdout)):
        if src.endswith((".h", ".md", ".1", ".conf", ".service", ".pc")):
            files.append(src)
    return [f for f in files if os.path.isfile(f)]


def main():
    hits, files = [], user_files()
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                for m in WORK_ITEM.finditer(line):
                    hits.append(f"{os.path.relpath(path, ROOT)}:{n}: {m.group(0)!r}: {line.strip()[:120]}")
    print(f"work_items: {len(files)} files read (docs, installed headers, man pages, config, units)")
    for h in hits:
        print("FAIL " + h)
    if hits:
        sys.exit(1)


if __name__ == "__main__":
    main()
