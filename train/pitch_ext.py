# SPDX-License-Identifier: MIT
"""The pitch features of training clips computed by the daemon's own code (dsp/src/pitch.c).

`pitch_features(x)` returns what model.pitch_features returns ({B, L // HOP + 1, N_PITCH}
float32 for x {B, L}), computed by train/pitch_ext.c: each clip framed as the daemon
frames it, its frames' spectra taken with dsp/'s STFT and passed to dsp_pitch_frame.  The
features are then the bits ssmd computes for the same float32 samples (model.pitch_features,
the reference in float64 through FFTs, agrees to 1e-4: tests/train/test_pitch_train.py), and
about 16x cheaper on a CPU, so the training data thread spends its time mixing clips rather
than searching lags.

The library is built on first use (train/cbuild.py) with the system's C compiler (`cc -O2 -ffp-contract=off`,
as dsp/ is built) from train/pitch_ext.c and dsp/src/{pitch,stft,dsp}.c against FFTW
(libfftw3-dev, which scripts/setup.sh installs) into train/cache/ (not committed), and rebuilt
when a source changes.  `available()` says whether it could be built; `pitch_features` falls
back to model.pitch_features when not.

  /usr/bin/python3 train/pitch_ext.py     # compares both on mixtures and prints the speed-up
"""
import ctypes
import os
import sys

import numpy as np
import torch

import cbuild
import model as M

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SRCS = [os.path.join(HERE, "pitch_ext.c")] + [os.path.join(ROOT, "dsp", "src", f) for f in
                                              ("pitch.c", "stft.c", "dsp.c")]
HDRS = [os.path.join(ROOT, "dsp", "include", "dsp", f) for f in ("pitch.h", "stft.h", "dsp.h")]
CFLAGS = ["-O2", "-ffp-contract=off", "-shared", "-fPIC", "-I" + os.path.join(ROOT, "dsp", "include")]
LIBS = ["-lfftw3f", "-lm", "-lpthread"]
_lib = None
_err = None


def _load():
    global _lib, _err
    if _lib is not None or _err is not None:
        return _lib
    lib, _err = cbuild.load("pitch_ext", SRCS, CFLAGS, LIBS, HDRS)
    if lib is not None:
        P = ctypes.c_void_p
        lib.ssm_train_pitch.argtypes = [ctypes.c_int, ctypes.c_long, P, P] + [ctypes.c_int] * 4 + [P, ctypes.c_int,
                                                                                                    ctypes.c_char_p]
        lib.ssm_train_pitch.restype = ctypes.c_int
        _lib = lib
    return _lib


def available():
    return _load() is not None


_EDGES = (ctypes.c_int * len(M.PITCH_EDGES))(*M.PITCH_EDGES)


def pitch_features(x):
    """x {B, L} → {B, L // HOP + 1, N_PITCH} float32 (model.pitch_features)."""
    if _load() is None:
        return M.pitch_features(x, M.window())
    xs = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    B, L = xs.shape
    n_frames = L // M.HOP + 1
    if L % M.HOP:  # the C code frames whole hops: zeros after the end, as model.pitch_features pads
        xs = np.pad(xs, ((0, 0), (0, M.HOP - L % M.HOP)))
        L = xs.shape[1]
    out = np.empty((B, L // M.HOP + 1, M.N_PITCH), dtype=np.float32)
    err = ctypes.create_string_buffer(256)
    if _lib.ssm_train_pitch(B, L, xs.ctypes.data, out.ctypes.data, M.N_FFT, M.HOP, M.PITCH_LAG_MIN,
                            M.PITCH_LAG_MAX, _EDGES, len(M.PITCH_EDGES), err) != 0:
        raise ValueError(f"pitch features: {err.value.decode()}")
    return torch.from_numpy(out[:, :n_frames])


def _check():
    import time
    if not available():
        print(f"pitch_ext: the library could not be built: {_err}")
        return 1
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    t = np.arange(3 * M.SR) / M.SR
    f0 = 120 + 60 * np.sin(2 * np.pi * 0.7 * t)
    tone = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / M.SR) / k for k in range(1, 12))
    x = torch.from_numpy(np.stack([0.1 * tone + 0.05 * rng.standard_normal(t.size),
                                   0.3 * rng.standard_normal(t.size), np.zeros(t.size)]).astype(np.float32))
    t0 = time.perf_counter()
    ref = M.pitch_features(x, M.window())
    t1 = time.perf_counter()
    got = pitch_features(x)
    t2 = time.perf_counter()
    worst = float((got - ref).abs().max())
    print(f"{tuple(got.shape)}: max |C - model.pitch_features| = {worst:.3g}; "
          f"{(t1 - t0) / (t2 - t1):.1f}x faster ({t2 - t1:.3f} s against {t1 - t0:.3f} s)")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(_check())
