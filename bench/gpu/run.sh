#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# GPU benchmarks in one run: for the default denoiser and a d_model 512 ×
# 8-layer model, ssmd's CUDA step at batches 1, 256, 4096, 65536 next to
# PyTorch eager on the same GPU, the scan's share of the copy bandwidth, and
# real-time streams per GPU.  JSON lines on stdout (and in $2 if given),
# then a table.  Usage: bench/gpu/run.sh BUILD_DIR [OUT.jsonl]
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${1:?usage: bench/gpu/run.sh BUILD_DIR [OUT.jsonl]}
OUTF=${2:-$(mktemp)}
PY=${SSMD_PYTHON:-/usr/bin/python3}
big=$B/bench_gpu_d512x8.safetensors
[ -f "$big" ] || "$PY" bench/model_torch_peer.py --make "$big" 512 8 16 >/dev/null || exit 1
batches=${SSMD_GPU_BATCHES:-"1 256 4096 65536"}
{
  for m in "models/default.safetensors default" "$big d512x8"; do
    set -- $m
    "$B/bench/gpu/gpu_bench" "$1" "$2" $batches
    "$PY" bench/gpu/gpu_torch_peer.py "$1" "$2" $batches
  done
} | tee "$OUTF"
"$PY" - "$OUTF" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
steps = {}
for r in rows:
    if r["bench"] == "gpu_step" and "error" not in r:
        steps[(r["model"], r["batch"], r["impl"], r.get("outputs"), r.get("weights", "f32"))] = r
if not steps:
    print("no GPU rows (see the SKIP lines above)")
    sys.exit(0)
print()
print("| model | batch | ssmd CUDA stream-steps/s (mask+vad) | median µs | p99 µs | device only | bf16 weights | PyTorch eager (CUDA) | ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (model, b, impl, outs, wt), r in sorted(steps.items()):
    if impl != "ssmd-cuda" or outs != "mask+vad" or wt != "f32":
        continue
    dev = steps.get((model, b, impl, "none", "f32"))
    bf = steps.get((model, b, impl, "mask+vad", "bf16"))
    t = steps.get((model, b, "torch-cuda-eager", "mask+vad", "f32"))
    print(f"| {model} | {b} | {r['stream_steps_per_s']:,.0f} | {r['median_us']:.1f} | "
          f"{r['p99_us']:.1f} | {dev['stream_steps_per_s'] if dev else 0:,.0f} | "
          f"{bf['stream_steps_per_s'] if bf else 0:,.0f} | "
          f"{t['stream_steps_per_s'] if t else 0:,.0f} | "
          f"{r['stream_steps_per_s'] / t['stream_steps_per_s'] if t else 0:.1f}× |")
for r in rows:
    if r["bench"] in ("gpu_copy", "gpu_scan", "gpu_realtime"):
        print(json.dumps(r))
PY
