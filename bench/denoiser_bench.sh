#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The bundled 48 kHz denoiser's speed, each figure next to RNNoise (the
# @shiguredo/rnnoise-wasm build under Node) in the same run, pinned to one core:
#   1. the whole offline job (decode, STFT, model, iSTFT, encode) on a generated
#      48 kHz file, ssmd f32 / f16 / int8 weights, f32 frame by frame (--chunk-frames 1)
#      and RNNoise interleaved, SSMD_BENCH_ROUNDS rounds (default 5: on a shared machine
#      the same binary's rounds spread by a third, so take the median);
#      one 44.1 kHz run (resampled to 48 kHz and back) for comparison;
#   2. the model step alone (bench/model_bench, batch 1/16/64) and the PyTorch
#      peer stepping the same file (bench/model_torch_peer.py, one thread);
#   3. real-time 48 kHz streams per core through the daemon (bench/daemon_streams.py).
# Prints JSON lines (kept in BUILD/bench/denoiser.jsonl), then bench/summary.py's tables.
# Usage: bench/denoiser_bench.sh [BUILD_DIR] [MODEL]    (defaults: build, models/default.safetensors)
# Env: SSMD_BENCH_CPU (core to pin, default 0), SSMD_BENCH_TRANSCODE_S (default 300),
# SSMD_BENCH_STREAM_S (seconds pushed per stream, default 4), SSMD_BENCH_ROUNDS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODEL=${2:-models/default.safetensors}
PY=${SSMD_PYTHON:-/usr/bin/python3}
CPU=${SSMD_BENCH_CPU:-0}
SECS=${SSMD_BENCH_TRANSCODE_S:-300}
ROUNDS=${SSMD_BENCH_ROUNDS:-5}
DIR="$BUILD/bench"
OUT="$DIR/denoiser.jsonl"
mkdir -p "$DIR"
: >"$OUT"
emit() { tee -a "$OUT"; }
for b in daemon/ssmd bench/model_bench; do
  [ -x "$BUILD/$b" ] || { echo "denoiser_bench: $BUILD/$b is not built (ninja -C $BUILD)" >&2; exit 1; }
done
command -v node >/dev/null || { echo "denoiser_bench: node is not installed (SSMD_TRAIN=1 scripts/setup.sh)" >&2; exit 1; }
[ -d train/rnnoise/node_modules/@shiguredo ] || npm install --no-audit --no-fund --prefix train/rnnoise >/dev/null
export OPENBLAS_NUM_THREADS=1
pin=(taskset -c "$CPU")
echo "{\"bench\":\"machine\",\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\",\"cpu_id\":\"$("$PY" bench/machine.py cpu_id)\",\"cores\":$(nproc),\"load_avg_1m\":$(cut -d' ' -f1 /proc/loadavg),\"date\":\"$(date -u +%FT%TZ)\"}" | emit

"$PY" - "$DIR" "$SECS" <<'PY'
import sys
import numpy as np
import soundfile as sf
d, secs = sys.argv[1], float(sys.argv[2])
for sr in (48000, 44100):
    n = int(sr * secs)
    t = np.arange(n) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)) \
        + 0.05 * np.random.default_rng(1).standard_normal(n)
    sf.write(f"{d}/dn_in{sr}.wav", np.clip(x, -1, 1), sr, subtype="PCM_16")
    if sr == 48000:
        x.astype(np.float32).tofile(f"{d}/dn_in48000.f32")
PY
transcode() { # rate weights round [extra ssmd options, named in impl]
  local line x impl="ssmd${4:+ $4}"
  # shellcheck disable=SC2086
  line=$("${pin[@]}" "$BUILD/daemon/ssmd" --model "$MODEL" "$DIR/dn_in$1.wav" -o "$DIR/dn_out.wav" \
         --progress never --threads 1 --weights "$2" ${4:-} 2>&1 | grep 'real time' | tail -1)
  x=$(echo "$line" | sed -n 's/.* \([0-9.]*\)x real time.*/\1/p')
  echo "{\"bench\":\"transcode\",\"impl\":\"$impl\",\"model\":\"$(basename "$MODEL")\",\"weights\":\"$2\",\"rate_hz\":$1,\"audio_s\":$SECS,\"rep\":$3,\"x_real_time\":${x:-0}}" | emit
}
for rep in $(seq "$ROUNDS"); do
  for w in f32 f16 int8; do transcode 48000 "$w" "$rep"; done
  transcode 48000 f32 "$rep" "--chunk-frames 1" # one ssm_step per frame instead of ssm_forward chunks
  # RNNoise's processing loop alone (CPU seconds it reports; no file decode/encode, which ssmd's figure includes)
  cpu_s=$("${pin[@]}" node train/rnnoise/peer.mjs "$DIR/dn_in48000.f32" 1 $((48000 * SECS)) "$DIR/rn_out.f32" \
          "$DIR/rn_vad.f32" 2>/dev/null | sed -n 's/.*"cpu_s":\([0-9.e-]*\).*/\1/p')
  echo "{\"bench\":\"transcode\",\"impl\":\"rnnoise-wasm\",\"model\":\"rnnoise 0.2 (2025), processing loop only\",\"weights\":\"rnnoise\",\"rate_hz\":48000,\"audio_s\":$SECS,\"rep\":$rep,\"x_real_time\":$(echo "$SECS / $cpu_s" | bc -l | cut -c1-8)}" | emit
done
transcode 44100 f32 1

"${pin[@]}" "$BUILD/bench/model_bench" "$MODEL" default48k 1 16 64 | emit
SSMD_TORCH_THREADS=1 "${pin[@]}" "$PY" bench/model_torch_peer.py "$MODEL" default48k 1 16 | emit

"$PY" bench/daemon_streams.py "$BUILD/daemon/ssmd" "$MODEL" --streams 64,256 --seconds "${SSMD_BENCH_STREAM_S:-4}" --rounds 2 --cpu "$CPU" | emit
"$PY" bench/daemon_streams.py "$BUILD/daemon/ssmd" "$MODEL" --streams 256 --seconds "${SSMD_BENCH_STREAM_S:-4}" --rounds 1 --cpu "$CPU" \
  --ssmd-args "--weights int8" | emit

"$PY" bench/summary.py "$OUT"
