#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets in build-fuzz (clang, ASan + UBSan, coverage on
# the whole tree) and runs each (loader, protocol, config, push, control) for the given
# number of seconds (default 30) through meson test --suite fuzz.  Exits
# non-zero when a fuzzer finds a crash, leak or sanitizer report; the input
# that caused it is left in build-fuzz/fuzz/artifacts/.
# Usage: fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "usage: fuzz/run.sh [seconds]" >&2; exit 2;; esac
command -v clang >/dev/null || { echo "fuzz/run.sh: clang not found (scripts/setup.sh)" >&2; exit 1; }

B=build-fuzz
# meson and ninja print configuration and compiler errors on stdout: their
# output is kept in a log and shown when they fail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
quiet() { "$@" >"$log" 2>&1 || { grep -v '^\[' "$log" | tail -40 >&2; echo "fuzz/run.sh: failed: $*" >&2; exit 1; }; }
if [ ! -f $B/build.ninja ]; then
  CC=clang quiet meson setup $B -Dfuzz=true -Dcuda=disabled --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link -Dfuzz_seconds="$secs"
else
  quiet meson setup --reconfigure $B -Dfuzz_seconds="$secs"
fi
quiet ninja -C $B
meson test -C $B --suite fuzz --print-errorlogs
