# SPDX-License-Identifier: MIT
"""debian/changelog's newest entry has the project version of meson.build as
its upstream version (one source of truth: bump meson.build, then add a
changelog entry, e.g. dch -v NEW).
Usage: test_changelog_version.py debian/changelog MESON_VERSION"""
import re
import sys


def upstream(version):
    """Debian version -> upstream part: no epoch, no -revision."""
    v = version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def main():
    path, want = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    m = re.match(r"^ssmd \(([^)\s]+)\) ", first)
    if not m:
        print("FAIL: %s: first line is not 'ssmd (VERSION) ...': %r" % (path, first.strip()))
        return 1
    got = upstream(m.group(1))
    print("debian/changelog %s (upstream %s), meson.build %s" % (m.group(1), got, want))
    if got != want:
        print("FAIL: debian/changelog's upstream version %s is not meson.build's %s: add a changelog entry"
              % (got, want))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
