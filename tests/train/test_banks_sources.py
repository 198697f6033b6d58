# SPDX-License-Identifier: MIT
"""train/banks.py's list of sources keeps the evaluation data apart:
  - no package reserved for independent evaluation (hedgewars-data, ktuberling-data,
    openttd-opensfx) is fetched, and no source pattern names one or where they install;
  - splits are by source: every source (speech or noise) is in exactly one split;
  - every source's files come from a package banks.py fetches (the first directories of
    each pattern are those of a package in PACKAGES), so nothing unpacked by hand is read.

Usage: test_banks_sources.py
Needs numpy, scipy and soundfile (train/banks.py's imports); reads no bank.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import banks  # noqa: E402

RESERVED = ("hedgewars", "ktuberling", "openttd")
bad = []
for p in banks.PACKAGES:
    if any(r in p for r in RESERVED):
        bad.append(f"package {p} is reserved for evaluation")
split_of = {}
for name, split, kind, where, *exclude in banks.SOURCES:
    pattern = where[1] + ":" + where[2] if isinstance(where, tuple) else where
    if any(r in pattern.lower() for r in RESERVED):
        bad.append(f"source {name}: pattern {pattern} reads a reserved package")
    if (kind, name) in split_of and split_of[(kind, name)] != split:
        bad.append(f"source {name} is in two splits ({split_of[(kind, name)]}, {split})")
    split_of[(kind, name)] = split
    # the directory a source reads must belong to a fetched package: its first three
    # path components (usr/share/<dir> or usr/share/games/<dir>) name the package's tree
    top = pattern.split(":")[0].split("/")
    tree = "/".join(top[:4] if top[:3] == ["usr", "share", "games"] else top[:3])
    if any(c in tree for c in "*?["):
        bad.append(f"source {name}: pattern {pattern} has a wildcard in its package directory")
for b in bad:
    print("FAIL", b)
print(f"{len(banks.SOURCES)} sources, {len(banks.PACKAGES)} packages: {'ok' if not bad else f'{len(bad)} problems'}")
sys.exit(1 if bad else 0)
