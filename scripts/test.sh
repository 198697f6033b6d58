#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set-up (scripts/setup.sh) plus the whole test suite in ./build.
# Prints meson's per-test lines and its summary; exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
rc=0
meson test -C build --print-errorlogs "$@" || rc=$?
# a skipped test says why (e.g. the GPU tests on a machine without a GPU)
/usr/bin/python3 scripts/skip_reasons.py build/meson-logs/testlog.json || true
exit $rc
