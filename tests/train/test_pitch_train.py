# SPDX-License-Identifier: MIT
"""train/model.py's pitch_features (what the bundled model was trained on) against
dsp/pitch.c (what the daemon computes).

Usage: test_pitch_train.py DSP_REF_HELPER WORKDIR

Runs tests/dsp/dsp_ref_helper (a voice-like harmonic tone gliding 100 → 260 Hz in
noise, then white noise, then silence, framed as the daemon frames it) and
compares the C features with pitch_features of the same float32 signal: max
absolute difference ≤ 1e-4 (float32 FFTs on both sides; features lie in
[−1, 1]).  tests/ref/dsp_ref.py checks the C side against the equations.
Then train/pitch_ext.py (what train.py's data thread uses: dsp/pitch.c built
for training) on the same signal must give the helper's features bit for bit,
and the same features for two clips in one call as for each alone.
Needs torch (skips with exit status 77 when it is missing).
"""
import os
import shutil
import subprocess
import sys

import numpy as np

import needs_torch  # noqa: F401,E402  (exits 77 without torch)
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "train"))
import model as M  # noqa: E402

TOL = 1e-4


def main():
    helper, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    subprocess.run([helper, work], check=True, stdout=subprocess.DEVNULL)
    line = next(ln.split() for ln in open(os.path.join(work, "manifest.txt")) if ln.startswith("pitch "))
    n, hop, lag_min, lag_max = int(line[2]), int(line[3]), int(line[4]), int(line[5])
    edges = tuple(int(v) for v in line[6].split(","))
    if (n, hop, lag_min, lag_max, edges) != (M.N_FFT, M.HOP, M.PITCH_LAG_MIN, M.PITCH_LAG_MAX, M.PITCH_EDGES):
        print(f"FAIL the helper's configuration {n, hop, lag_min, lag_max, edges} is not train/model.py's")
        return 1
    x = np.fromfile(os.path.join(work, line[8]), dtype="<f4")[:int(line[7])]
    nf = int(line[9])
    got = np.fromfile(os.path.join(work, line[10]), dtype="<f4").reshape(nf, len(edges))
    torch.set_num_threads(1)
    ref = M.pitch_features(torch.from_numpy(x)[None], M.window())[0, :nf].numpy()
    worst = float(np.max(np.abs(got - ref)))
    print(f"{nf} frames x {len(edges)} features: max |C - train/model.py| = {worst:.3g} (tolerance {TOL:g}); "
          f"voicing in the tone {np.median(ref[10:55, -1]):.3f}, in noise {np.median(np.abs(ref[65:115, -1])):.3f}")
    if not worst <= TOL:
        print("FAIL")
        return 1
    import pitch_ext  # noqa: E402
    if not pitch_ext.available():
        print(f"FAIL train/pitch_ext.py could not build its library: {pitch_ext._err}")
        return 1
    L = (x.size // M.HOP) * M.HOP
    ext = pitch_ext.pitch_features(torch.from_numpy(x[:L])[None])[0, :nf].numpy()
    n_same = nf if L // M.HOP + 1 >= nf else L // M.HOP + 1
    diff = int(np.count_nonzero(ext[:n_same] != got[:n_same]))
    pair = pitch_ext.pitch_features(torch.from_numpy(np.stack([x[:L][::-1].copy(), x[:L]])))[1, :nf].numpy()
    print(f"train/pitch_ext.py: {diff} of {n_same * len(edges)} values differ from the helper's; "
          f"second clip of a batch of two: {int(np.count_nonzero(pair[:n_same] != ext[:n_same]))} differ")
    if diff or n_same < nf - 1 or np.count_nonzero(pair[:n_same] != ext[:n_same]):
        print("FAIL")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
