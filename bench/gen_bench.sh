#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Generation benchmark: ssmd's generator (bench/gen_bench.c) and PyTorch eager
# (bench/gen_torch_peer.py) stepping the same mu-law model, in the same run,
# pinned to one core (taskset -c ${SSMD_BENCH_CPU:-0}), batch 1 and 16.
#   bench/gen_bench.sh BUILD_DIR [MODEL]    (default models/mulaw_lm.safetensors)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build=${1:?usage: gen_bench.sh BUILD_DIR [MODEL]}
model=${2:-$root/models/mulaw_lm.safetensors}
cpu=${SSMD_BENCH_CPU:-0}
pin=(taskset -c "$cpu")
command -v taskset >/dev/null || pin=()
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
"${pin[@]}" "$build/bench/gen_bench" "$model" 1 16
SSMD_BENCH_F16=1 "${pin[@]}" "$build/bench/gen_bench" "$model" 1 16   # --weights f16
SSMD_BENCH_INT8=1 "${pin[@]}" "$build/bench/gen_bench" "$model" 1 16  # --weights int8
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  "${pin[@]}" /usr/bin/python3 "$root/bench/gen_torch_peer.py" "$model" 1 16
else
  echo '{"bench":"generate","impl":"torch-1t","skipped":"python3-torch not installed"}'
fi
