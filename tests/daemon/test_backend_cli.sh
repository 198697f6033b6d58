#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ssmd --backend on this machine: 'auto' always runs (on the GPU when one is
# usable, else on the CPU, saying why on stderr); 'cuda' runs with a device
# and otherwise exits 2 with one line naming the reason; an unknown value is
# refused with the accepted ones.  Usage: test_backend_cli.sh SSMD EXAMPLE WORKDIR
set -u
ssmd=$1 example=$2 work=$3
mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }

"$ssmd" --backend auto -i "$example" -o "$work/auto.wav" 2>"$work/auto.err"
rc=$?; cat "$work/auto.err"
[ $rc -eq 0 ] || fail "--backend auto exited $rc"
grep -q "^ssmd: backend \(cpu\|cuda\): " "$work/auto.err" || fail "--backend auto did not say which backend"
[ -s "$work/auto.wav" ] || fail "--backend auto wrote no output"

"$ssmd" --backend cuda -i "$example" -o "$work/cuda.wav" 2>"$work/cuda.err"
rc=$?; cat "$work/cuda.err"
if grep -q "^ssmd: backend cuda: " "$work/auto.err"; then
  [ $rc -eq 0 ] || fail "--backend cuda exited $rc although auto found a device"
else
  [ $rc -eq 2 ] || fail "--backend cuda without a device exited $rc, expected 2"
  [ "$(wc -l <"$work/cuda.err")" -eq 1 ] || fail "expected one line on stderr"
  grep -q "backend cuda: .*CUDA" "$work/cuda.err" || fail "the error does not say why"
  [ ! -e "$work/cuda.wav" ] || fail "an output file was left behind"
fi

"$ssmd" --backend gpu -i "$example" -o "$work/gpu.wav" 2>"$work/gpu.err"
rc=$?; cat "$work/gpu.err"
[ $rc -eq 2 ] || fail "--backend gpu exited $rc, expected 2"
grep -q "cpu|cuda|auto" "$work/gpu.err" || fail "the error does not list the accepted values"
# weights: f16 runs on the cpu (same length out); bf16 is a cuda-only precision
"$ssmd" --weights f16 -i "$example" -o "$work/f16.wav" 2>"$work/f16.err"
rc=$?; cat "$work/f16.err"
[ $rc -eq 0 ] && [ -s "$work/f16.wav" ] || fail "--weights f16 on the cpu exited $rc"
"$ssmd" --weights int8 -i "$example" -o "$work/int8.wav" 2>"$work/int8.err"
rc=$?; cat "$work/int8.err"
[ $rc -eq 0 ] && [ -s "$work/int8.wav" ] || fail "--weights int8 on the cpu exited $rc"
grep -q "int8 weights, [a-z0-9]* kernels" "$work/int8.err" || fail "the summary line does not name the int8 weights"
# --backend auto keeps one command line valid with or without a GPU: a
# precision the chosen backend lacks falls back to f32 with a note
"$ssmd" --backend auto --weights bf16 -i "$example" -o "$work/autobf16.wav" 2>"$work/autobf16.err"
rc=$?; cat "$work/autobf16.err"
[ $rc -eq 0 ] || fail "--backend auto --weights bf16 exited $rc"
if grep -q "chose the cpu: using f32" "$work/autobf16.err"; then
  grep -q "f32 weights" "$work/autobf16.err" || fail "auto fell back to f32 but the summary says otherwise"
else
  grep -q "bf16 weights" "$work/autobf16.err" || fail "auto on cuda: the summary does not say bf16"
fi
[ "$(stat -c %s "$work/int8.wav")" -eq "$(stat -c %s "$work/f16.wav")" ] || fail "--weights int8 wrote another length"
"$ssmd" --weights f32 -i "$example" -o "$work/f32.wav" 2>/dev/null || fail "--weights f32 failed"
! cmp -s "$work/int8.wav" "$work/f16.wav" || fail "--weights int8 wrote the f16 run's bytes: not applied?"
! cmp -s "$work/int8.wav" "$work/f32.wav" || fail "--weights int8 wrote the f32 run's bytes: not applied?"
"$ssmd" --weights bf16 -i "$example" -o "$work/bf16.wav" 2>"$work/bf16.err"
rc=$?; cat "$work/bf16.err"
[ $rc -eq 2 ] || fail "--weights bf16 on the cpu exited $rc, expected 2"
[ "$(wc -l <"$work/bf16.err")" -eq 1 ] || fail "expected one line on stderr"
grep -q "weights: bf16 needs the cuda backend" "$work/bf16.err" || fail "the error does not say why"
[ ! -e "$work/bf16.wav" ] || fail "an output file was left behind"
"$ssmd" --cuda-device 99 -i "$example" -o "$work/dev.wav" 2>"$work/dev.err"
rc=$?; cat "$work/dev.err"
[ $rc -eq 2 ] && grep -q -- "--cuda-device: .*\[0, 63\]" "$work/dev.err" || fail "--cuda-device 99 (range 0..63) exited $rc"
# cuBLAS is opened on first use, never linked: linking it costs every process
# ~150 MB of resident memory even on the cpu backend
if command -v ldd >/dev/null; then
  ! ldd "$ssmd" | grep -q libcublas || fail "ssmd links libcublas (it must be dlopen'ed by the cuda backend)"
fi
# the same mismatch in generation mode: a bad option, exit 2 as above
"$ssmd" --backend cpu --weights bf16 --generate-s 1 -o "$work/gen_bf16.wav" 2>"$work/gen_bf16.err"
rc=$?; cat "$work/gen_bf16.err"
[ $rc -eq 2 ] && grep -q "bf16 needs the cuda backend" "$work/gen_bf16.err" || fail "--generate-s with --backend cpu --weights bf16 exited $rc, expected 2 and the reason"
[ ! -e "$work/gen_bf16.wav" ] || fail "generation left an output file behind"
echo "backend cli: ok"
