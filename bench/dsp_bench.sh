#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the dsp benchmark (C) and its numpy peer in the same run and prints
# their JSON lines followed by one summary line with the ratios.
# Usage: bench/dsp_bench.sh BUILD_DIR [SECONDS]      (default 3 s per variant)
set -euo pipefail
build=${1:?usage: dsp_bench.sh BUILD_DIR [SECONDS]}
secs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
py=${SSMD_PYTHON:-/usr/bin/python3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$build/bench/dsp_bench" --seconds "$secs" | tee "$out"
"$py" "$here/dsp_numpy_peer.py" --seconds "$secs" | tee -a "$out"
"$py" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
fps = {(r["bench"], r["impl"], r["variant"]): r["frames_per_s"] for r in rows if "frames_per_s" in r}
c = fps[("dsp_stft_logmel_istft", "ssmd", "per_frame")]
print(json.dumps({"bench": "dsp_stft_logmel_istft", "summary": True,
                  "ssmd_over_numpy_per_frame": round(c / fps[("dsp_stft_logmel_istft", "numpy", "per_frame")], 2),
                  "ssmd_over_numpy_batched": round(c / fps[("dsp_stft_logmel_istft", "numpy", "batched")], 2)}))
PY
