#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ONE command for every benchmark, each next to its peer in the same run:
#   1. the machine's roofline (bench/roofline: FMA peak, OpenBLAS sgemm, copy
#      bandwidth at L2/L3/DRAM working sets) and ssmd's projection kernels at
#      the sgemm shapes;
#   2. dsp: STFT + log-mel + iSTFT per frame, numpy peer (bench/dsp_bench.sh);
#      generation (bench/gen_bench.sh, PyTorch peer) with the bundled
#      models/mulaw_lm.safetensors and a random ~1 M-parameter token model
#      (bench/make_token_model.py); the scan step alone (bench/scan_bench);
#   3. model step: latency at batch 1 (median, p99 over >= 10 000 steps) and
#      stream-steps/s at batch 1/16/64/256 for three model sizes (default
#      d_model 64 × 2 layers; small 128 × 4; medium 512 × 8), ssmd's variants
#      and 2 threads, next to PyTorch eager (bench/model_torch_peer.py);
#   4. memory: peak RSS after 1 minute vs 1 hour of frames at 100 frames/s
#      (ssm_step then ssm_forward over N frames; PyTorch stepping N frames);
#   5. offline transcoding with the daemon binary (decode, resample, STFT,
#      model, iSTFT, encode) on a generated file: "N× real time".
# Prints every JSON line, then summary JSON lines and markdown tables
# (bench/summary.py), and keeps everything in BUILD/bench/results.jsonl.
#
# Usage: bench/run.sh [BUILD_DIR]        (default: build; needs a built tree)
# Env: SSMD_BENCH_SECONDS (per figure, default 1), SSMD_BENCH_LONG_FRAMES
# (the "1 hour" run, default 360000), SSMD_BENCH_TORCH_LONG_FRAMES (PyTorch's
# long run, default the same), SSMD_BENCH_TRANSCODE_S (seconds of audio,
# default 600), SSMD_BENCH_MODELS (default "default small medium"),
# OPENBLAS_NUM_THREADS (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=${SSMD_PYTHON:-/usr/bin/python3}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export SSMD_BENCH_SECONDS=${SSMD_BENCH_SECONDS:-1}
LONG=${SSMD_BENCH_LONG_FRAMES:-360000}
TLONG=${SSMD_BENCH_TORCH_LONG_FRAMES:-$LONG}
TRANS_S=${SSMD_BENCH_TRANSCODE_S:-600}
MODELS=${SSMD_BENCH_MODELS:-default small medium}
for b in bench/roofline bench/model_bench bench/dsp_bench daemon/ssmd; do
  [ -x "$BUILD/$b" ] || { echo "run.sh: $BUILD/$b is not built (ninja -C $BUILD)" >&2; exit 1; }
done
"$PY" -c 'import torch' 2>/dev/null || {
  echo "run.sh: $PY lacks torch (SSMD_EXTRA_PKGS=python3-torch scripts/setup.sh)" >&2; exit 1; }
DIR="$BUILD/bench/models"
mkdir -p "$DIR"
OUT="$BUILD/bench/results.jsonl"
: > "$OUT"
emit() { tee -a "$OUT"; }
echo "{\"bench\":\"machine\",\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\",\"cpu_id\":\"$("$PY" bench/machine.py cpu_id)\",\"cores\":$(nproc),\"load_avg_1m\":$(cut -d' ' -f1 /proc/loadavg),\"date\":\"$(date -u +%FT%TZ)\"}" | emit

pin=(taskset -c "${SSMD_BENCH_CPU:-0}"); command -v taskset >/dev/null || pin=()
"$BUILD/bench/roofline" | emit
bench/dsp_bench.sh "$BUILD" "$SSMD_BENCH_SECONDS" | emit
# generation (token model sampling, bench/gen_bench.sh) when built and its model exists
if [ -x "$BUILD/bench/gen_bench" ] && [ -f models/mulaw_lm.safetensors ]; then
  bench/gen_bench.sh "$BUILD" | emit
fi
# generation with a ~1 M-parameter token model (random weights, issue 8's size)
if [ -x "$BUILD/bench/gen_bench" ]; then
  [ -f "$DIR/token_1m.safetensors" ] || "$PY" bench/make_token_model.py "$DIR/token_1m.safetensors"
  bench/gen_bench.sh "$BUILD" "$DIR/token_1m.safetensors" | emit
fi
# the scan step alone, per ISA
if [ -x "$BUILD/bench/scan_bench" ]; then
  "${pin[@]}" "$BUILD/bench/scan_bench" | emit
fi

shape() { case $1 in default) echo "64 2 16";; small) echo "128 4 16";; medium) echo "512 8 16";; esac; }
for name in $MODELS; do
  f="$DIR/$name.safetensors"
  # shellcheck disable=SC2046
  [ -f "$f" ] || "$PY" bench/model_torch_peer.py --make "$f" $(shape "$name")
  # >= 10 000 timed steps at batch 1 for the default size; fewer for the
  # larger models, whose batch-1 step takes milliseconds in PyTorch
  min=10000; [ "$name" = default ] || min=1000; [ "$name" = medium ] && min=200
  SSMD_BENCH_MIN_STEPS_B1=$min "$BUILD/bench/model_bench" "$f" "$name" | emit
  SSMD_BENCH_MIN_STEPS_B1=$min SSMD_TORCH_THREADS=1 "$PY" bench/model_torch_peer.py "$f" "$name" | emit
done

# memory: 1 minute vs 1 hour of frames (default model), each in its own process
f="$DIR/default.safetensors"
[ -f "$f" ] || "$PY" bench/model_torch_peer.py --make "$f" 64 2 16
for n in 6000 "$LONG"; do "$BUILD/bench/model_bench" --memory "$f" default "$n" | emit; done
for n in 6000 "$TLONG"; do "$PY" bench/model_torch_peer.py --memory "$f" default "$n" | emit; done

# offline transcoding, whole pipeline, through the daemon binary
model=models/default.safetensors
[ -f "$model" ] || { model="$DIR/demo.safetensors"; [ -f "$model" ] || "$PY" examples/make_random_model.py "$model"; }
wav="$DIR/transcode_in.wav"
"$PY" - "$wav" "$TRANS_S" <<'PY'
import sys, wave
import numpy as np
path, secs = sys.argv[1], float(sys.argv[2])
sr = 48000  # the bundled denoiser's rate: no resampling in this job
n = int(sr * secs)
t = np.arange(n) / sr
rng = np.random.default_rng(1)
x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(n)
with wave.open(path, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr)
    w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
PY
for rep in 1 2 3; do
  for w in f32 int8; do
    line=$("${pin[@]}" "$BUILD/daemon/ssmd" --model "$model" "$wav" -o "$DIR/transcode_out.wav" --progress never \
           --threads 1 --weights "$w" 2>&1 | grep 'real time' | tail -1)
    x=$(echo "$line" | sed -n 's/.* \([0-9.]*\)x real time.*/\1/p')
    echo "{\"bench\":\"transcode\",\"impl\":\"ssmd\",\"model\":\"$(basename "$model")\",\"weights\":\"$w\",\"rate_hz\":48000,\"audio_s\":$TRANS_S,\"rep\":$rep,\"x_real_time\":${x:-0}}" | emit
  done
done

# real-time 48 kHz streams per core through the daemon (pushed streams), RNNoise (wasm) interleaved
if command -v node >/dev/null && command -v npm >/dev/null; then
  "$PY" bench/daemon_streams.py "$BUILD/daemon/ssmd" --streams 64,256 --seconds 10 --rounds 2 | emit
  "$PY" bench/daemon_streams.py "$BUILD/daemon/ssmd" --streams 256 --seconds 10 --rounds 1 --ssmd-args "--weights int8" | emit
fi

"$PY" bench/summary.py "$OUT"
