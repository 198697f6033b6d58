# SPDX-License-Identifier: MIT
"""How far a model's gains are from the best gains of the same form: SI-SDR improvement of a
model (checkpoint or exported file) next to oracle masks computed from the clean speech, per
noise family and input SNR, on mixtures of a split's banks (train/mixtures.py, as train.py
builds its validation batches, seed 777; no reverberation or colouring beyond train.py's).

  band oracle  sqrt(E_S / E_X) per ERB-like band of the model's own band layout (its band
               centres' triangular weights, energies of the clean speech S and the mixture X),
               interpolated to the bins like the model's head, capped at 1: the best gains a
               band head of that resolution could give (up to the cap and the interpolation)
  bin IRM      |S| / |X| per bin, capped at 1 (a per-bin head's)
  bin Wiener   |S|² / (|S|² + |N|²) per bin (the noise N = X − S known)

The gap between the model and the band oracle is what training could still gain with this
head; the gap between the band oracle and the bin masks is what finer frequency resolution
could add.  Evaluation-only packages are never read (banks.py leaves them out).

--where adds a second table: where the model's gains lose to the band oracle's.  "oracle in
speech" uses the oracle's gains in the frames the clean speech labels active (the voice-activity
labels) and the model's elsewhere, "oracle in pauses" the reverse; "speech lost" is
Σ|S|²(G − 1)² / Σ|S|² and "noise left" Σ|N|²G² / Σ|N|² over the speech frames (dB), for the
model's gains G and the oracle's.

  /usr/bin/python3 train/oracle.py [--split val|train] [--per-cell N] [--bands B] [--where] MODEL
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import banks  # noqa: E402
import mixtures  # noqa: E402
import model as M  # noqa: E402
import train as T  # noqa: E402


def load(path):
    if path.endswith(".safetensors"):
        import make_golden
        return make_golden.from_file(path)
    ck = torch.load(path, map_location="cpu")
    net = M.Denoiser(**ck["cfg"])
    net.load_state_dict(ck["state"])
    return net.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--split", choices=["val", "train"], default="val")
    ap.add_argument("--per-cell", type=int, default=12)
    ap.add_argument("--bands", type=int, default=32, help="band layout of the band oracle (model.band_centres_hz)")
    ap.add_argument("--where", action="store_true", help="also the table of where the model loses to the oracle")
    a = ap.parse_args()
    torch.set_num_threads(1)
    net = load(a.model)
    E = M.band_interp(a.bands).float()            # {bins, bands}
    sb, nb = banks.Bank("speech", a.split), banks.Bank("noise", a.split)
    rng = np.random.default_rng(777)
    win = M.window()
    print(f"{a.model} on the {a.split} banks, {a.per_cell} mixtures per cell: SI-SDR improvement (dB)")
    where = []
    print("| noise | input SNR | model | band oracle | bin IRM | bin Wiener |")
    print("|---|---|---|---|---|---|")
    for fam in mixtures.FAMILIES:
        for snr in (-5, 0, 5, 10):
            b = T.make_batch(sb, nb, rng, a.per_cell, pitch=net.cfg.get("pitch", False),
                             lookahead=net.cfg.get("lookahead", 0), snr_db=snr, family=fam)
            mix, clean = b["mix"], b["clean"]
            X, S = M.stft(mix, win), M.stft(clean, win)
            N = X - S
            base = T.si_sdr(mix, clean)

            def imp(G):
                y = M.istft(X * G, win, mix.shape[1])
                return float((T.si_sdr(y, clean) - base).mean())
            band = T.oracle_gains(X, S, E)
            irm = (S.abs() / X.abs().clamp(min=1e-9)).clamp(max=1)
            wien = S.abs() ** 2 / (S.abs() ** 2 + N.abs() ** 2 + 1e-12)
            with torch.no_grad():
                _, m, _ = net.run(mix, b.get("pitch"), "c")
            g = torch.sigmoid(m)
            i_model, i_band = imp(g), imp(band)
            print(f"| {fam} | {snr} dB | {i_model:+.2f} | {i_band:+.2f} | {imp(irm):+.2f} | "
                  f"{imp(wien):+.2f} |", flush=True)
            if a.where:
                sp = torch.zeros(g.shape[:2])
                nv = min(b["vad"].shape[1], sp.shape[1])
                sp[:, :nv] = b["vad"][:, :nv]
                sp = sp[..., None]

                def lost_left(G):
                    d = ((S.abs() ** 2) * (G - 1) ** 2 * sp).sum() / ((S.abs() ** 2) * sp).sum().clamp(min=1e-20)
                    r = ((N.abs() ** 2) * G ** 2 * sp).sum() / ((N.abs() ** 2) * sp).sum().clamp(min=1e-20)
                    return f"{10 * torch.log10(d.clamp(min=1e-20)):+.1f} / {10 * torch.log10(r.clamp(min=1e-20)):+.1f}"
                where.append(f"| {fam} | {snr} dB | {i_model:+.2f} | {imp(band * sp + g * (1 - sp)):+.2f} | "
                             f"{imp(g * sp + band * (1 - sp)):+.2f} | {i_band:+.2f} | {lost_left(g)} | "
                             f"{lost_left(band)} |")
    if a.where:
        print("\nWhere the model loses to the band oracle (SI-SDR improvement, dB; speech lost / noise left "
              "in the speech frames, dB)")
        print("| noise | input SNR | model | oracle in speech | oracle in pauses | band oracle | model: speech lost / "
              "noise left | oracle: speech lost / noise left |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(where))


if __name__ == "__main__":
    main()
