#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Adds (or with --check, verifies) an `SPDX-License-Identifier: MIT` line at
the top of every tracked source file: C/CUDA sources and headers, Python,
shell, meson.build, meson_options.txt, the linker version script, .ci/run, the
systemd units, the PipeWire config, pyproject.toml and the test ALSA config.
The comment goes on the first line, after a shebang if there is one.
Skipped: debian/ (its copyright file says it), and data (models, corpora, audio, JSON, logs).  Idempotent.
Usage: scripts/spdx.py [--check]   (from anywhere in the checkout)"""
import os
import subprocess
import sys

TAG = "SPDX-License-Identifier: MIT"
SKIP = ("debian/",)


def comment_for(path):
    if path.endswith((".c", ".h", ".cu", ".cuh", ".map")):
        return "/* %s */" % TAG
    # '#' comments: also the installed systemd units and PipeWire config, the
    # Python package's metadata and the test ALSA config
    if path.endswith((".py", ".sh", ".conf", ".service.in", ".toml")) \
            or os.path.basename(path) in ("meson.build", "meson_options.txt", "asoundrc.in") \
            or path == ".ci/run":
        return "# " + TAG
    return None


def main():
    check = "--check" in sys.argv[1:]
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    os.chdir(root)
    files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split("\n")
    missing = []
    for path in files:
        if not path or path.startswith(SKIP) or not os.path.isfile(path):
            continue
        line = comment_for(path)
        if line is None:
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if TAG in text.split("\n", 3)[0] + text.split("\n", 3)[1 if text.count("\n") else 0]:
            continue
        missing.append(path)
        if check:
            continue
        if text.startswith("#!"):
            first, _, rest = text.partition("\n")
            text = first + "\n" + line + "\n" + rest
        else:
            text = line + "\n" + text
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    if check and missing:
        print("no SPDX line: " + " ".join(missing))
        return 1
    print("%s %d files" % ("would add to" if check else "added to", len(missing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
