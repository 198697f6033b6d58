#!/usr/bin/env bash
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
echo "backend cli: ok"
