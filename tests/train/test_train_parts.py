# SPDX-License-Identifier: MIT
"""Parts of train/train.py that need no banks:

1. oracle_gains (the --gain-weight target): 1 on clean input, 0 on noise alone, and on a
   clip band-limited at 8 kHz in white noise the targets just below the cut-off equal those
   further down (the noise above the cut-off does not pull them down: with the clip's band
   mask they are within 0.03 of the 2-7 kHz median; without it they fall by > 0.05).
2. loss_fn with --gain-weight: finite gradients even where the mask logits are −300 (the
   square root of a sigmoid that underflows to 0 has an infinite derivative).
3. model.fast_pitch_features (dsp/pitch.c through train/pitch_ext.py) on a clip whose length is
   not a multiple of the hop: the frames of model.pitch_features, to 1e-4.
4. start_producer with a forked data process: a batch arrives although the parent ran
   PyTorch with two threads before the fork (OpenMP's pool does not survive a fork: the child
   hung in its first parallel operation); a batch function that raises, or a data process
   that dies, ends the run with one line instead of a wait without end.

Usage: test_train_parts.py
Needs torch (skips with exit status 77 when it is missing).
"""
import os
import subprocess
import sys

import needs_torch  # noqa: F401,E402  (exits 77 without torch)
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "..", "..", "train")
sys.path.insert(0, TRAIN)
import model as M  # noqa: E402
import train as T  # noqa: E402

bad = 0


def check(ok, what):
    global bad
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    bad += not ok


def oracle_tests():
    torch.manual_seed(0)
    win, E = M.window(), M.band_interp(32).float()
    L = 48000
    s = torch.randn(1, L) * 0.1
    S = M.stft(s, win)
    g = T.oracle_gains(S, S, E)
    check(float((g[:, 1:-1] - 1).abs().max()) < 1e-4, "oracle_gains: clean input gives 1")
    n = torch.randn(1, L) * 0.1
    g = T.oracle_gains(M.stft(n, win), torch.zeros_like(S), E)
    check(float(g.abs().max()) == 0.0, "oracle_gains: noise alone gives 0")
    # speech band-limited at 8 kHz (a brick-wall in the STFT domain), white noise at the same level
    Sl = S.clone()
    Sl[..., M.N_BINS * 8000 // 24000:] = 0
    sl = M.istft(Sl, win, L)
    Sl = M.stft(sl, win)
    X = M.stft(sl + 0.5 * n, win)
    bm = T.band_mask(torch.tensor([8000.0]), "cpu")
    k = lambda hz: int(round(hz * M.N_FFT / M.SR))  # noqa: E731
    for use_bm in (True, False):
        gt = T.oracle_gains(X, Sl, E, bm if use_bm else None).median(1).values[0]   # median over frames
        ref = float(gt[k(2000):k(7000)].median())
        edge = float(gt[k(7600):k(7950)].min())
        if use_bm:
            check(abs(edge - ref) < 0.03, f"oracle_gains with the band mask: {edge:.3f} at 7.6-7.95 kHz, "
                  f"{ref:.3f} at 2-7 kHz")
        else:
            check(ref - edge > 0.05, f"(the same without the band mask falls: {edge:.3f} against {ref:.3f}, "
                  "which is what the mask corrects)")


def gain_loss_tests():
    torch.manual_seed(1)
    net = M.Denoiser(d_model=8, n_layer=1, n_bands=32)
    with torch.no_grad():
        net.mask.bias.fill_(-300.0)
    x = torch.randn(2, 4800) * 0.1
    b = dict(mix=x, clean=0.5 * x, vad=torch.ones(2, 11), cutoff=torch.tensor([24000.0, 8000.0]),
             speech=torch.ones(2))
    terms = {}
    loss, *_ = T.loss_fn(net, b, "c", gain_weight=20.0, terms=terms)
    loss.backward()
    fin = all(bool(torch.isfinite(p.grad).all()) for p in net.parameters() if p.grad is not None)
    check(fin and terms["gain"] > 0, f"gain loss at logits -300: finite gradients (gain term {terms['gain']:.3f})")


CHILD = r"""
import os, sys, torch, torch.nn.functional as F
sys.path.insert(0, sys.argv[1])
import train as T
torch.set_num_threads(2)
a = torch.randn(256, 256)
for _ in range(3):
    a = F.pad(a @ a.T / 256, (0, 0)) # parallel work in the parent before the fork
mode = sys.argv[2]
def make():
    if mode == "raise":
        raise ValueError("boom")
    if mode == "die":
        os._exit(3)
    x = torch.randn(8, 48000)
    return F.pad(x, (0, 480)) @ torch.randn(48480, 4)
nb = T.start_producer(make, True, wait_s=2.0)
print(tuple(nb().shape), flush=True)
"""


def producer_tests():
    for mode, want_rc, want in (("ok", 0, "(8, 4)"), ("raise", 1, "train: making a batch failed: ValueError: boom"),
                                ("die", 1, "train: the data process ended (exit status 3) without a batch")):
        try:
            r = subprocess.run([sys.executable, "-c", CHILD, TRAIN, mode], capture_output=True, text=True, timeout=90)
            got = (r.stdout.strip() or r.stderr.strip().splitlines()[-1]) if (r.stdout.strip() or r.stderr.strip()) else ""
            rc = r.returncode
        except subprocess.TimeoutExpired:
            got, rc = "no answer in 90 s (hung)", None
        check(rc == want_rc and got == want, f"start_producer, forked, batch function {mode!r}: exit {rc}, {got!r}")


def pitch_length_tests():
    torch.manual_seed(2)
    t = torch.arange(48100) / M.SR
    x = (0.1 * torch.sin(2 * torch.pi * 150 * t) + 0.02 * torch.randn(48100))[None]
    ref = M.pitch_features(x, M.window())
    try:
        got = M.fast_pitch_features(x)
        ok = got.shape == ref.shape and float((got - ref).abs().max()) <= 1e-4
        what = f"{tuple(got.shape)} against {tuple(ref.shape)}, max difference {float((got - ref).abs().max()):.2g}"
    except ValueError as e:
        ok, what = False, str(e)
    check(ok, f"fast_pitch_features of 48 100 samples: {what}")


oracle_tests()
gain_loss_tests()
pitch_length_tests()
producer_tests()
sys.exit(1 if bad else 0)
