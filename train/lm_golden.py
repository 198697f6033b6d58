# SPDX-License-Identifier: MIT
"""Golden data for the mu-law token model's tests (committed, a few kB; no torch needed to test).

  /usr/bin/python3 train/lm_golden.py [MODEL]     (default models/mulaw_lm.safetensors)

1. tests/model/lm_golden.bin: PyTorch's per-sample negative log-likelihood of
   a held-out excerpt (train/cache/lm/val.npy), computed with the model
   rebuilt from the exported file (train/lm_model.py from_file) in float64
   with the sequential scan — the function the file defines.  The C engine
   must reproduce it within 1e-4 relative (tests/model/test_lm_nll.c).
   Layout (little-endian): char magic[8] = "SSMDLMGD"; int32 T; int32 0;
   uint64 FNV-1a 64 of the model file; uint8 codes {T + 1}; zero padding to a
   multiple of 8; float64 nll_nats {T} (nll[t] = −ln p(codes[t+1] | codes[..t])).
2. tests/model/lm_bounds.json: level and spectral statistics of 1-second
   windows of the training audio (train/cache/lm/train.npy, decoded mu-law):
   percentiles of RMS level (dBFS), of spectral flatness (geometric / arithmetic
   mean of the power spectrum, 512-point Hann frames) and of the fraction of
   power above 4 kHz.  tests/model/test_lm_generate.py derives its bounds on
   generated audio from them.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import lm_data  # noqa: E402
import lm_model as L  # noqa: E402

T = 4000


def fnv1a64(path):
    h = 0xcbf29ce484222325
    for x in open(path, "rb").read():
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def window_stats(x, sr=16000):
    """x: float samples → dict of arrays over 1-second windows."""
    n = len(x) // sr
    w = x[:n * sr].reshape(n, sr).astype(np.float64)
    rms = np.sqrt((w ** 2).mean(1))
    hann = np.hanning(512)
    fr = np.lib.stride_tricks.sliding_window_view(w, 512, axis=1)[:, ::256] * hann
    P = np.abs(np.fft.rfft(fr, axis=-1)) ** 2 + 1e-12
    Pm = P.mean(1)  # mean power spectrum per window
    flat = np.exp(np.log(Pm).mean(1)) / Pm.mean(1)
    hi = Pm[:, 128:].sum(1) / Pm.sum(1)  # bins above 4 kHz
    return {"rms_dbfs": 20 * np.log10(rms + 1e-12), "flatness": flat, "hf_fraction": hi}


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "mulaw_lm.safetensors")
    torch.set_num_threads(1)
    net, meta = L.from_file(path)
    net = net.double()
    va = np.load(os.path.join(HERE, "cache", "lm", "val.npy"))
    # an excerpt with sound in it: the first window of T+1 codes whose level is above -30 dBFS
    x = lm_data.mulaw_decode(va)
    start = 0
    for s in range(0, len(va) - T - 1, 1000):
        if np.sqrt((x[s:s + T] ** 2).mean()) > 10 ** (-30 / 20):
            start = s
            break
    codes = va[start:start + T + 1].astype(np.uint8)
    with torch.no_grad():
        lo = net(torch.from_numpy(codes[None, :-1].astype(np.int64)), sequential=True)[0]
        nll = -torch.log_softmax(lo, -1).gather(1, torch.from_numpy(codes[1:, None].astype(np.int64)))[:, 0]
    nll = nll.numpy().astype(np.float64)
    out = os.path.join(ROOT, "tests", "model", "lm_golden.bin")
    with open(out, "wb") as f:
        f.write(b"SSMDLMGD" + struct.pack("<iiQ", T, 0, fnv1a64(path)))
        f.write(codes.tobytes())
        f.write(b"\0" * (-(T + 1) % 8))
        f.write(nll.astype("<f8").tobytes())
    print(f"{out}: {T} samples from val.npy offset {start}, PyTorch (float64) NLL "
          f"{nll.mean() / np.log(2):.4f} bits/sample")
    tr = lm_data.mulaw_decode(np.load(os.path.join(HERE, "cache", "lm", "train.npy")))
    st = window_stats(tr)
    q = [1, 5, 25, 50, 75, 95, 99]
    bounds = {"source": "train/cache/lm/train.npy (train/lm_data.py), 1-second windows, train/lm_golden.py",
              "n_windows": int(len(st["rms_dbfs"])), "percentiles": q}
    for k, v in st.items():
        bounds[k] = [round(float(p), 5) for p in np.percentile(v, q)]
    bout = os.path.join(ROOT, "tests", "model", "lm_bounds.json")
    with open(bout, "w") as f:
        json.dump(bounds, f, indent=1)
        f.write("\n")
    print(f"{bout}: {bounds}")


if __name__ == "__main__":
    main()
