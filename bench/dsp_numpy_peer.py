#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""numpy peer of bench/dsp_bench.c: the same work per frame — sqrt-Hann
window, rfft (n_fft 512), power, 80 Slaney mels (matmul), ln with floor
1e-10, irfft, synthesis window, overlap-add (hop 128) — on 10 s of 16 kHz
white noise, timed two ways:
  per_frame  a Python loop over frames (what a streaming caller would do),
  batched    all frames at once (rfft/irfft along an axis, one matmul).
Prints one JSON line per variant in dsp_bench's form.  One core: BLAS and
OpenMP threads are pinned to 1 before numpy is imported.  numpy's FFT is
pocketfft (it computes in float64 whatever the input dtype).

Usage: /usr/bin/python3 bench/dsp_numpy_peer.py [--seconds S]
"""
import os
import sys
import time

# numpy at its best: the batched variant allocates ~5 MB temporaries per call,
# and with glibc's default thresholds they go back to the kernel on free and
# are page-faulted in again on every call (about 10x slower on the reference
# VM).  Keep them in the heap instead; glibc reads these at start-up, hence
# the re-exec.  SSMD_NUMPY_DEFAULT_MALLOC=1 measures the default behaviour.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "268435456",
              "MALLOC_TOP_PAD_": "67108864"}
if not os.environ.get("SSMD_NUMPY_DEFAULT_MALLOC") and \
        any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
    os.environ.update(MALLOC_ENV)
    os.execv(sys.executable, [sys.executable] + sys.argv)
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from dsp_ref import mel_filterbank  # noqa: E402  (Slaney mel from the definitions)
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)

SR, N_FFT, HOP, N_MELS, FLOOR = 16000, 512, 128, 80, 1e-10


def setup():
    rng = np.random.default_rng(1)
    x = (rng.random(10 * SR) - 0.5).astype(np.float32)
    w = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    g = (w / (N_FFT / HOP / 2)).astype(np.float32)   # s / mean(D), D = (N/H)/2
    mel = mel_filterbank(SR, N_FFT, N_MELS, 0.0, SR / 2, "slaney", "slaney").astype(np.float32)
    # zero history + zero padding so that the output covers the input (as the C framer)
    lat = N_FFT - HOP
    n_frames = -(-(x.size + lat) // HOP)
    xp = np.zeros(n_frames * HOP + lat, dtype=np.float32)
    xp[lat:lat + x.size] = x
    return x, xp, w, g, mel, n_frames


def per_frame(xp, w, g, mel, n_frames):
    out = np.zeros(xp.size, dtype=np.float32)
    feats = np.empty((n_frames, N_MELS), dtype=np.float32)
    for m in range(n_frames):
        fr = xp[m * HOP:m * HOP + N_FFT]
        spec = np.fft.rfft(w * fr)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
        feats[m] = np.log(np.maximum(mel @ power, FLOOR))
        out[m * HOP:m * HOP + N_FFT] += np.fft.irfft(spec, N_FFT).astype(np.float32) * g
    return out, feats


def batched(xp, w, g, mel, n_frames):
    frames = np.lib.stride_tricks.as_strided(
        xp, shape=(n_frames, N_FFT), strides=(HOP * xp.itemsize, xp.itemsize))
    spec = np.fft.rfft(frames * w, axis=1)
    power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
    feats = np.log(np.maximum(power @ mel.T, FLOOR))
    y = (np.fft.irfft(spec, N_FFT, axis=1).astype(np.float32) * g).reshape(n_frames, N_FFT // HOP, HOP)
    r = N_FFT // HOP
    blocks = np.zeros((n_frames + r - 1, HOP), dtype=np.float32)
    for j in range(r):
        blocks[j:j + n_frames] += y[:, j]
    return blocks.reshape(-1), feats


def main():
    seconds = 2.0
    if len(sys.argv) == 3 and sys.argv[1] == "--seconds":
        seconds = float(sys.argv[2])
    elif len(sys.argv) != 1:
        print("usage: dsp_numpy_peer.py [--seconds S]", file=sys.stderr)
        return 2
    x, xp, w, g, mel, n_frames = setup()
    lat = N_FFT - HOP
    for name, fn in (("per_frame", per_frame), ("batched", batched)):
        out, _ = fn(xp, w, g, mel, n_frames)          # warm-up, and a sanity check
        err = np.sqrt(np.mean((out[lat:lat + x.size] - x) ** 2) / np.mean(x ** 2))
        if not err < 1e-5:
            print(f"dsp_numpy_peer: {name} reconstruction error {err:.3g}", file=sys.stderr)
            return 1
        # each pass timed alone; the fastest pass is the figure (as timeit's min:
        # other load on a shared machine only slows a pass down), median too
        frames, passes, t0 = 0, [], time.perf_counter()
        while True:
            tp = time.perf_counter()
            fn(xp, w, g, mel, n_frames)
            tn = time.perf_counter()
            passes.append(n_frames / (tn - tp))
            frames += n_frames
            elapsed = tn - t0
            if elapsed >= seconds and len(passes) >= 3:
                break
        fps, median = max(passes), float(np.median(passes))
        print(machine.line({"bench": "dsp_stft_logmel_istft", "impl": "numpy", "variant": name,
                          "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS, "passes": len(passes),
                          "frames": frames, "seconds": round(elapsed, 3), "frames_per_s": round(fps, 1),
                          "frames_per_s_median": round(median, 1),
                          "x_realtime_16k": round(fps * HOP / SR, 1),
                          "numpy": np.__version__, "rel_rms_err": float(f"{err:.3g}"),
                          "malloc": "default" if os.environ.get("SSMD_NUMPY_DEFAULT_MALLOC") else "tuned"}))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
