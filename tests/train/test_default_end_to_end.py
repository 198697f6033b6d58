# SPDX-License-Identifier: MIT
"""The bundled model from samples to samples: the daemon's file job on the golden mixture
(train/make_golden.py: tests/train/default_golden_audio.bin) must give the PyTorch model's
output (train/model.py Denoiser.forward, float64) within 1e-4 of the output's peak, sample for
sample, with the same length: the front end, the model, the lookahead, the synthesis and the
alignment together.  Usage: test_default_end_to_end.py SSMD MODEL GOLDEN WORKDIR"""
import os
import struct
import subprocess
import sys

import numpy as np
import soundfile as sf

ssmd, model, golden, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)


def fnv1a64(path):
    h = 0xcbf29ce484222325
    for x in np.fromfile(path, np.uint8).tolist():
        h ^= x
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


with open(golden, "rb") as fh:
    b = fh.read()
if b[:8] != b"SSMDGAUD":
    sys.exit(f"{golden}: not an audio golden file")
n, rate, h = struct.unpack("<2iQ", b[8:24])
if h != fnv1a64(model):
    sys.exit(f"{golden} was made from another model file than {model} (run train/make_golden.py)")
x = np.frombuffer(b, "<f4", n, 24)
y_ref = np.frombuffer(b, "<f4", n, 24 + 4 * n)
src, dst = os.path.join(work, "golden_in.wav"), os.path.join(work, "golden_out.wav")
sf.write(src, x, rate, subtype="FLOAT")
r = subprocess.run([ssmd, "--model", model, src, "-o", dst, "--output-format", "float"], capture_output=True, text=True)
if r.returncode != 0:
    sys.exit(f"ssmd exited {r.returncode}: {r.stderr.strip()}")
y, sr = sf.read(dst, dtype="float32")
peak = float(np.abs(y_ref).max())
err = float(np.abs(y - y_ref).max()) if len(y) == n else float("inf")
lag = max(range(-3, 4), key=lambda k: float(np.dot(np.roll(y, k), y_ref))) if len(y) == n else None
print(f"{n} samples at {rate} Hz: daemon {len(y)} samples at {sr} Hz, max |daemon - PyTorch| {err:.3g} "
      f"(output peak {peak:.3g}, tolerance {1e-4 * peak:.3g}), best lag {lag}")
ok = sr == rate and len(y) == n and err <= 1e-4 * peak and peak > 1e-3
print("OK" if ok else "FAIL")
sys.exit(0 if ok else 1)
