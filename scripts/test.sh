#!/usr/bin/env bash
# Set-up (scripts/setup.sh) plus the whole test suite in ./build.
# Prints meson's per-test lines and its summary; exits non-zero on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
meson test -C build --print-errorlogs "$@"
