# SPDX-License-Identifier: MIT
"""Writes the golden file tests/train/default_golden.bin: the PyTorch model's
outputs (in float64, sequential scan) on a short held-out mixture (a held-out
synthetic voice at 48 kHz in pink noise, 0 dB), which
tests/train/test_default_model.c checks the C engine reproduces within 1e-4.

  /usr/bin/python3 train/make_golden.py [MODEL] [OUT]   (default models/default.safetensors)

The PyTorch model is built from the exported file itself (its float32 weights,
with the normalisation already folded into frontend.proj), then run in
float64: the golden outputs are the function the file defines.  The file's
hash is recorded, so a golden file made from another model fails clearly.

Layout (little-endian): char magic[8] = "SSMDGOLD"; int32 T, n_features,
d_model, n_mask; uint64 FNV-1a 64 hash of the model file; then float32
features {T, n_features}, embedding {T, d_model}, mask {T, n_mask} (sigmoid
gains), vad {T} (probability).  Features are the front end's raw log power
of the mixture (train/model.py stft/features), then for a log_power_pitch model its
pitch features (train/model.py pitch_features).

Beside it, OUT with "_audio" before the extension (tests/train/default_golden_audio.bin): the
whole function from samples to samples, which tests/train/test_default_end_to_end.py checks
the daemon's file job reproduces (front end, lookahead, synthesis, alignment).  Layout:
char magic[8] = "SSMDGAUD"; int32 n, sample_rate_hz; uint64 the model file's hash; float32
mixture {n}, then float32 denoised {n} (train/model.py Denoiser.forward in float64).
"""
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import model as M  # noqa: E402
from scipy.signal import resample_poly  # noqa: E402
import ssmd_file  # noqa: E402

T_FRAMES = 32


def fnv1a64(path):
    h = 0xcbf29ce484222325
    with open(path, "rb") as f:
        b = f.read()
    a = np.frombuffer(b, dtype=np.uint8)
    for x in a.tolist():
        h ^= x
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def from_file(path):
    """A train/model.py Denoiser holding the weights of an exported file."""
    t, meta = ssmd_file.load(path)
    pitch = meta.get("frontend.features") == "log_power_pitch"
    if pitch and (int(meta["frontend.pitch_lag_min"]) != M.PITCH_LAG_MIN or
                  int(meta["frontend.pitch_lag_max"]) != M.PITCH_LAG_MAX or
                  meta["frontend.pitch_band_edges"] != ",".join(str(e) for e in M.PITCH_EDGES)):
        raise ValueError(f"{path}: pitch front-end differs from train/model.py's")
    mw, mb = t["head.mask.weight"], t["head.mask.bias"]
    n_bands = 0
    if "head.mask.interp" in t:  # band logits: model.py's own bands, else folded into a per-bin head
        E = np.asarray(t["head.mask.interp"], np.float64)
        if E.shape[1] < M.N_BINS and np.array_equal(E.astype(np.float32),
                                                   M.band_interp(E.shape[1]).float().numpy()):
            n_bands = E.shape[1]
        else:
            mw, mb = E @ np.asarray(mw, np.float64), E @ np.asarray(mb, np.float64)
    net = M.Denoiser(d_model=int(meta["d_model"]), n_layer=int(meta["n_layer"]),
                     d_state=int(meta["d_state"]), d_conv=int(meta["d_conv"]), expand=int(meta["expand"]),
                     n_bands=n_bands, pitch=pitch, lookahead=int(meta.get("frontend.lookahead_frames", 0)))
    sd = {"proj.weight": t["frontend.proj.weight"], "proj.bias": t["frontend.proj.bias"],
          "norm_f.weight": t["backbone.norm_f.weight"], "mask.weight": mw,
          "mask.bias": mb, "vad.weight": t["head.vad.weight"], "vad.bias": t["head.vad.bias"],
          "feat_mean": np.zeros(net.n_features, np.float32), "feat_std": np.ones(net.n_features, np.float32),
          "win": M.window().numpy()}
    if n_bands:
        sd["band_interp"] = M.band_interp(n_bands).float().numpy()
    for k in list(t):
        if k.startswith("backbone.layers."):
            sd[k[len("backbone."):]] = t[k]
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    return net.eval()


def main():
    model_file = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "models", "default.safetensors")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "tests", "train", "default_golden.bin")
    if not os.path.isfile(model_file):
        sys.exit(f"make_golden: {model_file}: no such model file (run train/export_default.py)")
    torch.set_num_threads(1)
    net = from_file(model_file).double()
    rng = np.random.default_rng(4242)
    vbank = [resample_poly(u, M.SR // data.SR, 1) for u in data.load_bank("val")[:40]]  # held-out voices
    H = M.HOP
    clean = np.zeros(H * T_FRAMES)
    clean[H * 4:] = np.concatenate(vbank)[:H * (T_FRAMES - 4)]  # silence, then speech
    noise = data.make_noise("pink", len(clean), rng, sr=M.SR)
    mix, _ = data.make_mixture(clean, noise, 0.0, rng, level_db=-25)
    x = torch.from_numpy(mix.astype(np.float64))[None]
    with torch.no_grad():
        X = M.stft(x, net.win.double())
        f = net.input_features(x, X)[:, :T_FRAMES]
        f = f.float().double()  # the C engine reads float32 features
        emb, m, v = net.heads(f, sequential=True)
    arrs = [f[0], emb[0], torch.sigmoid(m[0]), torch.sigmoid(v[0])]
    with open(out, "wb") as fh:
        fh.write(b"SSMDGOLD")
        fh.write(struct.pack("<4iQ", T_FRAMES, net.n_features, emb.shape[-1], m.shape[-1], fnv1a64(model_file)))
        for a in arrs:
            fh.write(a.numpy().astype("<f4").tobytes())
    print(f"{out}: {os.path.getsize(out)} bytes, {T_FRAMES} frames")
    base, ext = os.path.splitext(out)
    out_audio = base + "_audio" + (ext or ".bin")
    xf = torch.from_numpy(mix.astype(np.float32).astype(np.float64))[None]  # the daemon reads float32
    with torch.no_grad():
        y = net(xf, sequential=True)[0][0].numpy()
    with open(out_audio, "wb") as fh:
        fh.write(b"SSMDGAUD")
        fh.write(struct.pack("<2iQ", len(mix), M.SR, fnv1a64(model_file)))
        fh.write(xf[0].numpy().astype("<f4").tobytes())
        fh.write(y.astype("<f4").tobytes())
    print(f"{out_audio}: {os.path.getsize(out_audio)} bytes, {len(mix)} samples")


if __name__ == "__main__":
    main()
