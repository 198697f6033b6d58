# SPDX-License-Identifier: MIT
"""Exports the trained denoiser (train/cache/ckpt.pt) to the ssmd model format.

  /usr/bin/python3 train/export_default.py [CKPT] [OUT]   (default models/default.safetensors)

The feature normalisation (x − mean)/std is folded into frontend.proj:
W' = W / std (per input column), b' = b − W'·mean, so the file's input is the
daemon's raw feature vector (log powers, then pitch features for a model trained
with --pitch: frontend.features log_power_pitch).  A model trained with band
logits (--n-bands B) keeps them: head.mask.weight {B, d_model}, head.mask.bias
{B} and head.mask.interp {481, B}, the fixed linear interpolation from the
bands to the bins (model.band_interp), which the engine applies before the
sigmoid (docs/model-format.md); a per-bin model writes head.mask.weight {481,
d_model}.  Tensor names follow
docs/model-format.md (as examples/make_random_model.py); the front-end and the
training scan's Δ·A bound go into __metadata__.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402
import ssmd_file  # noqa: E402


def load_ckpt(path):
    ck = torch.load(path, map_location="cpu")
    net = M.Denoiser(**{"n_bands": 0, **ck["cfg"]})
    net.load_state_dict(ck["state"])
    net.eval()
    return net, ck


def tensors_of(net):
    sd = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    W, b = sd["proj.weight"], sd["proj.bias"]
    Wf = W / sd["feat_std"][None, :]
    t = {"frontend.proj.weight": Wf, "frontend.proj.bias": b - Wf @ sd["feat_mean"],
         "backbone.norm_f.weight": sd["norm_f.weight"],
         "head.mask.weight": sd["mask.weight"], "head.mask.bias": sd["mask.bias"],
         "head.vad.weight": sd["vad.weight"], "head.vad.bias": sd["vad.bias"]}
    if net.cfg.get("n_bands"):
        t["head.mask.interp"] = net.band_interp.double().numpy()
    for i in range(len(net.layers)):
        p, q = f"backbone.layers.{i}.", f"layers.{i}."
        t[p + "norm.weight"] = sd[q + "norm.weight"]
        for name in ("in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                     "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight"):
            t[p + "mixer." + name] = sd[q + "mixer." + name]
    return {k: v.astype(np.float32) for k, v in t.items()}


def metadata(net, ck):
    c = net.cfg
    return {"ssmd.format": "1", "architecture": "mamba1",
            "name": "ssmd-default-denoiser",
            "description": "causal full-band (48 kHz) speech denoiser (per-bin gain) with voice activity, "
                           "trained on real voices and noises; see models/README.md",
            "d_model": c["d_model"], "n_layer": c["n_layer"], "d_state": c["d_state"],
            "d_conv": c["d_conv"], "expand": c["expand"], "dt_rank": "auto",
            "norm": "rmsnorm", "norm_eps": "1e-5", "delta_A_min": repr(M.DELTA_A_MIN),
            "input": "features", "n_features": net.n_features, "heads": "mask,vad",
            "frontend.sample_rate_hz": M.SR, "frontend.n_fft": M.N_FFT, "frontend.hop": M.HOP,
            "frontend.window": "sqrt_hann",
            "frontend.features": "log_power_pitch" if c.get("pitch") else "log_power",
            "frontend.log_floor": "1e-10",
            **({"frontend.pitch_lag_min": M.PITCH_LAG_MIN, "frontend.pitch_lag_max": M.PITCH_LAG_MAX,
                "frontend.pitch_band_edges": ",".join(str(e) for e in M.PITCH_EDGES)} if c.get("pitch") else {}),
            **({"frontend.lookahead_frames": c["lookahead"]} if c.get("lookahead") else {}),
            # a checkpoint continued from others (--init-from) may carry the whole chain's totals
            "train.steps": ck.get("total_steps", ck.get("step", 0)), "train.seed": ck.get("seed", 0),
            "train.minutes": f"{ck.get('total_minutes', ck.get('minutes', 0)):.1f}",
            "train.params": sum(int(np.prod(v.shape)) for k, v in tensors_of(net).items()
                                if k != "head.mask.interp")}  # the interpolation is fixed, not trained


def main():
    ckpt = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "cache", "ckpt.pt")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "models", "default.safetensors")
    if not os.path.isfile(ckpt):
        sys.exit(f"export_default: {ckpt}: no such checkpoint (run train/train.py)")
    net, ck = load_ckpt(ckpt)
    ssmd_file.save(out, tensors_of(net), {k: str(v) for k, v in metadata(net, ck).items()})
    print(f"{out}: {os.path.getsize(out)} bytes, step {ck.get('step')}")


if __name__ == "__main__":
    main()
