#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The architecture comparison of models/mulaw_lm_architectures.md: for each
# mu-law token model, the C engine's held-out NLL (test_lm_nll --eval on the
# 60 s of train/lm_heldout.py) and generation samples/s at batch 1 (gen_bench,
# sampling included), ROUNDS interleaved rounds pinned to one core.
#   bench/lm_arch.sh BUILD_DIR MODEL...
# Env: ROUNDS (default 3), SSMD_BENCH_CPU (default 1), SSMD_BENCH_SECONDS (gen_bench's, default 2).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${1:?usage: lm_arch.sh BUILD_DIR MODEL...}
shift
codes=$root/train/cache/lm/heldout60.u8
[ -f "$codes" ] || /usr/bin/python3 "$root/train/lm_heldout.py" "$codes"
pin=(taskset -c "${SSMD_BENCH_CPU:-1}")
command -v taskset >/dev/null || pin=()
for m in "$@"; do
  printf '%s ' "$(basename "$m")"
  "$build/tests/model/test_lm_nll" --eval "$m" "$codes"
done
for r in $(seq "${ROUNDS:-3}"); do
  for m in "$@"; do
    echo "round $r $("${pin[@]}" "$build/bench/gen_bench" "$m" 1)"
  done
done
