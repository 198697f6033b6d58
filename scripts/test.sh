#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set-up (scripts/setup.sh) plus the whole test suite in ./build, then (with
# no arguments) the Debian packages: built from a copy of the tree, lintian,
# installed with apt-get and used with the checkout out of reach (test
# 'packages', suite 'packaging', its own set-up and log
# build/meson-logs/testlog-packaging.json; a few minutes; skipped when not
# root).  Arguments go to the first `meson test` (e.g. a test name) and skip
# the packaging run.  Prints meson's per-test lines and summaries; exits
# non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
SSMD_TESTS=1 scripts/setup.sh build
rc=0
rm -f build/meson-logs/testlog-packaging.json
meson test -C build --print-errorlogs "$@" || rc=$?
# a skipped test says why (e.g. the GPU tests on a machine without a GPU)
/usr/bin/python3 scripts/skip_reasons.py build/meson-logs/testlog.json || true
if [ $# -eq 0 ]; then
  if SSMD_PACKAGING=1 scripts/setup.sh build; then
    meson test -C build --setup packaging --suite packaging --print-errorlogs || rc=1
  else
    echo "test: set-up of the packaging tools failed" >&2; rc=1
  fi
fi
exit $rc
