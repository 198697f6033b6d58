# SPDX-License-Identifier: MIT
"""Scores checkpoints on train.py's validation set (held-out voices and noise
recordings of the val banks, seed 777; never the test banks): SI-SDR
improvement per noise family and SNR, noise-only attenuation and mean voice
activity on noise-only clips of each family, and the voice activity's ROC-AUC on
the 5 dB mixtures (all, and per family) against labels from the clean speech.
Takes checkpoints or exported .safetensors files.  For model selection between
checkpoints of different runs on the same banks.

  /usr/bin/python3 train/validate.py [--per-cell N] train/cache/ckpt_run6_step400.pt [more.pt ...]

--per-cell N: mixtures per (noise family, SNR) cell, 6 by default (train.py's own
validation, 72 mixtures); more makes the figures steadier (24: 288 mixtures, about
4x the time).  The first 6 of each cell are train.py's.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import banks  # noqa: E402
import evaluate  # noqa: E402
import mixtures  # noqa: E402
import model as M  # noqa: E402
import train as T  # noqa: E402


def val_sets(per_cell=6):
    """The validation batches exactly as train.py builds them (per_cell 6), plus noise-only
    clips per family; per_cell > 6 adds batches of 6 more mixtures per cell from seed 779."""
    vsb, vnb = banks.Bank("speech", "val"), banks.Bank("noise", "val")
    vrng = np.random.default_rng(777)
    val = [(fam, snr, T.make_batch(vsb, vnb, vrng, 6, snr_db=snr, family=fam))
           for fam in mixtures.FAMILIES for snr in (-5, 0, 5, 10)]
    xrng = np.random.default_rng(779)
    for _ in range(max(0, per_cell - 6) // 6):
        val += [(fam, snr, T.make_batch(vsb, vnb, xrng, 6, snr_db=snr, family=fam))
                for fam in mixtures.FAMILIES for snr in (-5, 0, 5, 10)]
    vnoise = T.make_batch(vsb, vnb, vrng, 12, p_noise_only=1.0)
    nrng = np.random.default_rng(778)
    fam_noise = {fam: T.make_batch(vsb, vnb, nrng, 12, p_noise_only=1.0, family=fam)
                 for fam in ("generated", "real")}
    return val, vnoise, fam_noise


def score(path, sets):
    val, vnoise, fam_noise = sets
    if path.endswith(".safetensors"):  # an exported file, e.g. models/default.safetensors
        import make_golden
        net = make_golden.from_file(path)
    else:
        ck = torch.load(path, map_location="cpu")
        net = M.Denoiser(**ck["cfg"])
        net.load_state_dict(ck["state"])
    net.eval()
    out = {}
    with torch.no_grad():
        per, vad5 = {}, {}
        allv = []
        for fam, snr, b in val:
            _, sdr, _, _ = T.loss_fn(net, b, "c")
            imp = (sdr - T.si_sdr(b["mix"], b["clean"])).numpy()
            per.setdefault(fam, []).append(float(imp.mean()))
            allv.append(imp)
            if snr == 5:  # voice activity against the clean speech's labels
                _, _, vv = net.run(b["mix"], None, "c")
                nv = b["vad"].shape[1]
                vad5.setdefault(fam, []).append((vv[:, :nv].flatten().numpy(), b["vad"].flatten().numpy()))
        out["val_sisdr_improvement_db"] = float(np.concatenate(allv).mean())
        for fam, pairs in [("all", sum(vad5.values(), [])), *vad5.items()]:
            out[f"vad_roc_auc_5db_{fam}"] = evaluate.roc_auc(np.concatenate([p[0] for p in pairs]),
                                                             np.concatenate([p[1] for p in pairs]))
        for fam, v in per.items():
            out[f"{fam}_improvement_db"] = float(np.mean(v))
        for name, b in [("mixed", vnoise), *fam_noise.items()]:
            _, _, _, est = T.loss_fn(net, b, "c")
            att = 10 * torch.log10(b["mix"][:, 4800:].pow(2).mean() / est[:, 4800:].pow(2).mean().clamp(min=1e-20))
            _, _, vv = net.run(b["mix"], None, "c")
            out[f"noise_only_{name}_attenuation_db"] = float(att)
            out[f"noise_only_{name}_vad"] = float(torch.sigmoid(vv).mean())
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="score checkpoints on the validation set")
    ap.add_argument("--per-cell", type=int, default=6, help="mixtures per family and SNR (multiple of 6)")
    ap.add_argument("ckpt", nargs="+")
    a = ap.parse_args()
    if a.per_cell < 6 or a.per_cell % 6:
        ap.error(f"--per-cell must be a multiple of 6, at least 6 (got {a.per_cell})")
    torch.set_num_threads(1)
    sets = val_sets(a.per_cell)
    for p in a.ckpt:
        r = score(p, sets)
        print(os.path.basename(p), " ".join(f"{k}={v:.2f}" if "vad" not in k else f"{k}={v:.3f}"
                                           for k, v in r.items()), flush=True)
