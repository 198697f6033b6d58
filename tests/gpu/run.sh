#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The GPU check in one call: builds kernels/, model/, tests/gpu and bench/gpu
# with CUDA (meson -Dgpu_only=true: needs nvcc with cuBLAS, meson, ninja, and
# jansson + cmocka headers — from the system's -dev packages, or, on a machine
# without them, the Debian .debs that tests/gpu/fetch_debs.sh put in
# .gpu-debs/, unpacked here with dpkg -x), runs every CUDA kernel and the
# CUDA backend against the CPU (tests/gpu/test_cuda.c: Mamba-1;
# tests/gpu/test_cuda_hybrid.c: Mamba-2, sliding-window attention, gated MLPs
# and mixed stacks — written without a GPU, its first run is here), then the GPU
# benchmarks next to PyTorch eager on the same GPU (bench/gpu/run.sh; needs a
# CUDA build of PyTorch for the peer, else its rows say SKIP).
# Logs go to OUT_DIR (default $OUT, else /tmp/ssmd-gpu).  Exit status: the
# tests' (the benchmarks never fail it); 3 when there is no usable GPU, so
# that nothing that did not run reads as a pass.  Finishes in ~1.5 min on an
# H200 (docs/performance.md).
#   bash tests/gpu/run.sh [OUT_DIR]      (SSMD_GPU_SKIP_BENCH=1: build and tests only)
set -uo pipefail
cd "$(dirname "$0")/../.."
O=${1:-${OUT:-/tmp/ssmd-gpu}}
mkdir -p "$O"
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
t0=$(date +%s)
echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
nvcc --version | tail -1
gcc --version | head -1
# the Python with numpy for the model generators: SSMD_PYTHON, else Debian's,
# else the python3 on PATH (on the device machine, the one with PyTorch)
for p in "${SSMD_PYTHON:-}" /usr/bin/python3 python3; do
  if [ -n "$p" ] && "$p" -c 'import numpy' 2>/dev/null; then export SSMD_PYTHON=$p; break; fi
done
[ -n "${SSMD_PYTHON:-}" ] || { echo "tests/gpu/run.sh: no python3 with numpy found (set SSMD_PYTHON)"; exit 1; }
"$SSMD_PYTHON" -c 'import numpy, torch; print("python", __import__("sys").executable, "numpy", numpy.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>/dev/null ||
  echo "python $SSMD_PYTHON: numpy only (no PyTorch: the benchmark's peer will be skipped)"

# Private prefix for the carried .debs (headers, .pc files, shared libraries).
R=/tmp/ssmd-gpu-root
if ls .gpu-debs/*.deb >/dev/null 2>&1; then
  mkdir -p $R
  for f in .gpu-debs/*.deb; do dpkg -x "$f" $R; done
  export PKG_CONFIG_PATH=$R/usr/lib/x86_64-linux-gnu/pkgconfig PKG_CONFIG_SYSROOT_DIR=$R
  export LD_LIBRARY_PATH=$R/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if ! command -v pkg-config >/dev/null; then export PKG_CONFIG=$R/usr/bin/pkgconf; fi
fi
MESON=meson
command -v meson >/dev/null || MESON="python3 -m mesonbuild.mesonmain"

echo "== build (gpu_only, CUDA sm_90 + PTX)"
rm -rf build-gpu
if ! $MESON setup build-gpu -Dgpu_only=true -Dcuda=enabled -Dpython="$SSMD_PYTHON" \
     --buildtype=release >"$O/setup.log" 2>&1; then
  tail -40 "$O/setup.log"; exit 1
fi
grep -E "CUDA|Run-time dependency" "$O/setup.log" | head -20
if ! ninja -C build-gpu >"$O/build.log" 2>&1; then
  grep -E "error|FAILED" -A3 "$O/build.log" | head -60; exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"

echo "== tests (suite gpu)"
$MESON test -C build-gpu --suite gpu -v --print-errorlogs >"$O/test.log" 2>&1
rc=$?
grep -E "^(device|kernels|model|graph|forward|snapshot|non-finite|bf16|auto|cuda device|cuda, |device 4096|SKIP)|\[  (PASSED|FAILED|  OK|ERROR|  SKIPPED) \]|FAILED|Error|error|Ok:|Fail:|Skipped:" "$O/test.log" | head -160
echo "tests rc=$rc after $(( $(date +%s) - t0 )) s"
if grep -q "^SKIP:" "$O/test.log"; then
  echo "tests/gpu/run.sh: no usable GPU here: the GPU tests did not run (exit 3)"
  exit 3
fi

if [ -n "${SSMD_GPU_SKIP_BENCH:-}" ]; then echo "benchmarks skipped (SSMD_GPU_SKIP_BENCH)"; exit $rc; fi
echo "== benchmarks"
SSMD_BENCH_SECONDS=${SSMD_BENCH_SECONDS:-1.0} timeout 240 bash bench/gpu/run.sh build-gpu "$O/gpu_bench.jsonl" \
  >"$O/bench.log" 2>&1
echo "bench rc=$?"
sed -n '/^| model/,$p' "$O/bench.log" | grep -v '^{' || true
grep '^{"bench": "gpu_\(copy\|scan\|realtime\)' "$O/bench.log" || true
grep -E "^(Traceback|gpu_bench:|SKIP)" -A3 "$O/bench.log" | head -20
echo "total $(( $(date +%s) - t0 )) s"
exit $rc
