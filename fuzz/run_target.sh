#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs one libFuzzer target for a fixed time from its seed corpus (generated
# below, and/or committed in fuzz/corpus/NAME/: read-only, new inputs go to
# build-fuzz/fuzz/corpus_NAME); exits
# non-zero on a crash, leak or sanitizer report (the input is kept in
# build-fuzz/fuzz/artifacts/).  Called by meson test --suite fuzz.
# Usage: run_target.sh NAME EXE SECONDS
set -euo pipefail
name=$1 exe=$2 secs=$3
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(dirname "$exe")
seeds=$work/seeds_$name corpus=$work/corpus_$name art=$work/artifacts/
mkdir -p "$corpus" "$art"
if [ ! -d "$seeds" ]; then
  mkdir -p "$seeds"
  case $name in
    loader)
      "$src/tests/ref/run_ref.sh" "$src/tests/model/make_loader_models.py" "$seeds" >/dev/null
      find "$seeds" -type f ! -name '*.safetensors' -delete ;;
    protocol)
      /usr/bin/python3 - "$seeds" "$src/tests/daemon/protocol_golden.json" <<'PY'
import json, os, sys
g = json.load(open(sys.argv[2]))
for i, v in enumerate(g["vectors"]):
    b = bytes.fromhex(v["hex"].replace(" ", ""))
    n = v["payload_len"] // 4
    open(os.path.join(sys.argv[1], f"h{i}"), "wb").write(bytes([n & 255, n >> 8 & 255]) + b)
for i, t in enumerate(g["topics"]):
    open(os.path.join(sys.argv[1], f"t{i}"), "wb").write(b"\0\0" + t["topic"].encode())
PY
      ;;
    config)
      printf 'max_streams = 8\nmodel = "a b#c"\n# comment\nrealtime = on\npub = tcp://127.0.0.1:5560\n' > "$seeds/good.conf"
      printf 'bogus\n' > "$seeds/bad.conf" ;;
  esac
fi
committed=()
[ -d "$src/fuzz/corpus/$name" ] && committed=("$src/fuzz/corpus/$name")
dict=()
[ -f "$src/fuzz/$name.dict" ] && dict=(-dict="$src/fuzz/$name.dict")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# libFuzzer exits 77 on a crash by default, which meson reads as "skipped": make every finding a failure
exec "$exe" -max_total_time="$secs" -max_len=65536 -timeout=20 -error_exitcode=1 -timeout_exitcode=1 "${dict[@]}" \
  -artifact_prefix="$art" -print_final_stats=1 "$corpus" "$seeds" "${committed[@]}"
