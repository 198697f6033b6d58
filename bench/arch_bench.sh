#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Layer kinds at the same width (docs/performance.md, "Mamba-1, Mamba-2 and a
# hybrid with attention"): three models of d_model 256 x 4 layers with about
# the same parameters (bench/arch_torch_peer.py --make: Mamba-1; Mamba-2; three
# Mamba-2 layers and one sliding-window attention layer, window 64), each run
# by bench/model_bench (ssmd, default runner) and by the PyTorch eager peer
# (bench/arch_torch_peer.py, written from tests/ref's equations) on the same
# file, interleaved (ssmd then the peer, model after model, ROUNDS rounds),
# both pinned to one core with taskset.  Prints JSON lines: the CPU (lscpu),
# the load average before each run, the peer's check against the float64
# reference, then each program's lines; bench/arch_summary.py makes the table
# of medians over the rounds.  Usage:
#   bench/arch_bench.sh [BUILD_DIR] > results.jsonl
# Env: SSMD_BENCH_CPU (core, default 1), SSMD_BENCH_ROUNDS (default 3),
# SSMD_BENCH_SECONDS (per figure, default 1), SSMD_BENCH_MIN_STEPS_B1 (default
# 2000), OPENBLAS_NUM_THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=${SSMD_PYTHON:-/usr/bin/python3}
BIN="$BUILD/bench/model_bench"
[ -x "$BIN" ] || { echo "arch_bench.sh: $BIN not built (ninja -C $BUILD bench/model_bench)" >&2; exit 1; }
CPU=${SSMD_BENCH_CPU:-1}
ROUNDS=${SSMD_BENCH_ROUNDS:-3}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=1
export SSMD_BENCH_MIN_STEPS_B1=${SSMD_BENCH_MIN_STEPS_B1:-2000}
DIR="$BUILD/bench/models"
mkdir -p "$DIR"
for m in mamba1 mamba2 hybrid; do
  [ -f "$DIR/arch_$m.safetensors" ] || { "$PY" bench/arch_torch_peer.py --make "$DIR" >/dev/null; break; }
done
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
fam=$(lscpu | sed -n 's/^CPU family: *//p' | head -1)
ncpu=$(lscpu | sed -n 's/^CPU(s): *//p' | head -1)
printf '{"bench":"machine","cpu":"%s, family %s","cpu_id":"%s","nproc":%s,"pinned_core":%s,"command":"bench/arch_bench.sh %s","rounds":%s,"seconds":"%s","date":"%s"}\n' \
  "$cpu" "$fam" "$("$PY" bench/machine.py cpu_id)" "$ncpu" "$CPU" "$BUILD" "$ROUNDS" "${SSMD_BENCH_SECONDS:-1}" "$(date -u +%FT%TZ)"
load() { printf '{"bench":"load","round":"%s","before":"%s","loadavg":"%s"}\n' "$1" "$2" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
for m in mamba1 mamba2 hybrid; do
  taskset -c "$CPU" "$PY" bench/arch_torch_peer.py --check "$DIR/arch_$m.safetensors"
done
for r in $(seq 1 "$ROUNDS"); do
  for m in mamba1 mamba2 hybrid; do
    load "$r" "ssmd $m"
    SSMD_BENCH_IMPLS=ssmd SSMD_BENCH_THREADS= taskset -c "$CPU" "$BIN" "$DIR/arch_$m.safetensors" "$m" 1 16 64 256 |
      sed "s/^{/{\"round\":$r,/"
    load "$r" "torch $m"
    taskset -c "$CPU" "$PY" bench/arch_torch_peer.py "$DIR/arch_$m.safetensors" "$m" 1 16 64 256 |
      sed "s/^{/{\"round\":$r,/"
  done
done
load end "end"
