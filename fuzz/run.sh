#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz (clang, ASan + UBSan, coverage on
# the whole tree), generates a seed corpus (valid small models and malformed
# ones from tests/model/make_loader_models.py) and fuzzes the model-file
# loader for the given number of seconds (default 30).  Exits non-zero when
# the fuzzer finds a crash, leak or sanitizer report; the input that caused it
# is left in build-fuzz/fuzz/artifacts/.
# Usage: fuzz/run.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
case $secs in ''|*[!0-9]*) echo "usage: fuzz/run.sh [seconds]" >&2; exit 2;; esac
command -v clang >/dev/null || { echo "fuzz/run.sh: clang not found (scripts/setup.sh)" >&2; exit 1; }

B=build-fuzz
if [ ! -f $B/build.ninja ]; then
  CC=clang meson setup $B -Dfuzz=true -Dcuda=disabled --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false \
    -Dc_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C $B fuzz/fuzz_loader >/dev/null

seeds=$B/fuzz/seeds_loader
corpus=$B/fuzz/corpus_loader
art=$B/fuzz/artifacts/
mkdir -p "$corpus" "$art"
if [ ! -d "$seeds" ]; then
  tests/ref/run_ref.sh tests/model/make_loader_models.py "$seeds"
  find "$seeds" -type f ! -name '*.safetensors' -delete
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# -jobs would oversubscribe the shared 2-core machine: one process.
exec $B/fuzz/fuzz_loader -max_total_time="$secs" -max_len=65536 -timeout=20 \
  -dict=fuzz/loader.dict -artifact_prefix="$art" -print_final_stats=1 \
  "$corpus" "$seeds"
