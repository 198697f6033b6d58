#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Model step benchmark, ssmd next to the PyTorch peer on the same model files,
# in one run (docs/performance.md).  Usage:
#   bench/model_bench.sh [BUILD_DIR]        (default build; needs model_bench built)
# Env: SSMD_BENCH_SECONDS (per figure, default 1), OPENBLAS_NUM_THREADS
# (default 1: one-core figures for both ssmd's BLAS paths and torch's BLAS).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=${SSMD_PYTHON:-/usr/bin/python3}
BIN="$BUILD/bench/model_bench"
[ -x "$BIN" ] || { echo "model_bench.sh: $BIN not built (ninja -C $BUILD bench/model_bench)" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
DIR="$BUILD/bench/models"
mkdir -p "$DIR"
# small: d_model 128, 4 layers, d_state 16; medium: d_model 512, 8 layers, d_state 16
[ -f "$DIR/small.safetensors" ] || "$PY" bench/model_torch_peer.py --make "$DIR/small.safetensors" 128 4 16
[ -f "$DIR/medium.safetensors" ] || "$PY" bench/model_torch_peer.py --make "$DIR/medium.safetensors" 512 8 16
for name in small medium; do
  "$BIN" "$DIR/$name.safetensors" "$name"
  "$PY" bench/model_torch_peer.py "$DIR/$name.safetensors" "$name"
done
# resident memory per model and per stream with each weight precision (one
# process each: the model packs only the precision its runner reads)
for name in small medium; do
  for w in f32 f16 int8; do
    "$BIN" --memory "$DIR/$name.safetensors" "$name" 1000 "$w"
  done
done
