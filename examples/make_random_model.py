#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes an UNTRAINED Mamba-1 model for the pipeline demo (scripts/demo.sh).

It has the shape of a spectral model (log-mel features in, a per-bin gain mask
and a voice-activity probability out) with random weights drawn the way
mamba_ssm initialises them (A_log = log(1..d_state), dt in [1e-3, 1e-1]).
Its outputs are not meaningful; it only exercises the engine end to end until
the trained default model (models/) exists.
Usage: /usr/bin/python3 examples/make_random_model.py OUT.safetensors
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import ssmd_file  # noqa: E402


def build(out, allpass=False, meta_overrides=None, mask_bias=4.0, pitch=False):
    """Writes the model; allpass=True makes the mask exactly 1 (sigmoid(40) rounds
    to 1.0f) so the pipeline must reproduce its input; meta_overrides change or
    (value None) remove metadata keys, for tests of bad front-ends; mask_bias sets
    the mask head's bias (4: gains about 0.98; -6: about 0.0025, a model that
    turns everything down by ~50 dB); pitch=True makes its inputs the log powers and
    pitch features (frontend.features log_power_pitch, dsp/pitch.h) instead of log-mels."""
    rng = np.random.default_rng(7)
    d_model, n_layer, d_state, d_conv, expand = 64, 2, 16, 4, 2
    d_inner = expand * d_model
    dt_rank = math.ceil(d_model / 16)
    n_mels, n_fft = 64, 512
    n_bins = n_fft // 2 + 1

    def lin(o, i):
        return rng.uniform(-1, 1, (o, i)) / math.sqrt(i)

    edges = [1, 3, 6, 10, 16, 24, 40]
    n_in = n_bins + len(edges) if pitch else n_mels
    t = {"frontend.proj.weight": lin(d_model, n_in),
         "frontend.proj.bias": np.zeros(d_model),
         "backbone.norm_f.weight": np.ones(d_model),
         # near all-pass mask (gains about 0.98): the demo output stays close to the input
         "head.mask.weight": 0.05 * lin(n_bins, d_model), "head.mask.bias": np.full(n_bins, mask_bias),
         "head.vad.weight": lin(1, d_model), "head.vad.bias": np.zeros(1)}
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), d_inner))
        t[p + "norm.weight"] = np.ones(d_model)
        t[p + "mixer.in_proj.weight"] = lin(2 * d_inner, d_model)
        t[p + "mixer.conv1d.weight"] = rng.uniform(-1, 1, (d_inner, 1, d_conv)) / math.sqrt(d_conv)
        t[p + "mixer.conv1d.bias"] = np.zeros(d_inner)
        t[p + "mixer.x_proj.weight"] = lin(dt_rank + 2 * d_state, d_inner)
        t[p + "mixer.dt_proj.weight"] = lin(d_inner, dt_rank)
        t[p + "mixer.dt_proj.bias"] = dt + np.log(-np.expm1(-dt))
        t[p + "mixer.A_log"] = np.log(np.tile(np.arange(1, d_state + 1), (d_inner, 1)))
        t[p + "mixer.D"] = np.ones(d_inner)
        t[p + "mixer.out_proj.weight"] = lin(d_model, d_inner) / math.sqrt(n_layer)
    if allpass:
        t["head.mask.weight"] = np.zeros((n_bins, d_model))
        t["head.mask.bias"] = np.full(n_bins, 40.0)
    meta = {"ssmd.format": "1", "architecture": "mamba1", "name": "random-demo (untrained)",
            "d_model": d_model, "n_layer": n_layer, "d_state": d_state, "d_conv": d_conv,
            "expand": expand, "dt_rank": "auto", "norm": "rmsnorm", "norm_eps": "1e-5",
            "input": "features", "n_features": n_in, "heads": "mask,vad",
            "frontend.sample_rate_hz": 16000, "frontend.n_fft": n_fft, "frontend.hop": 256,
            "frontend.window": "sqrt_hann", "frontend.features": "log_mel",
            "frontend.n_mels": n_mels}
    if pitch:
        meta.pop("frontend.n_mels")
        meta.update({"frontend.features": "log_power_pitch", "frontend.pitch_lag_min": "32",
                     "frontend.pitch_lag_max": "320", "frontend.pitch_band_edges": ",".join(map(str, edges))})
    for k, v in (meta_overrides or {}).items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    ssmd_file.save(out, t, meta)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Write an UNTRAINED Mamba-1 spectral model (random "
                                 "weights, near all-pass mask) for trying ssmd without the trained default.")
    ap.add_argument("out", help="output model file, e.g. /tmp/untrained.safetensors")
    ap.add_argument("--allpass", action="store_true", help="make the mask exactly 1 (output = input)")
    a = ap.parse_args()
    build(a.out, allpass=a.allpass)
    print(f"wrote {a.out} (untrained: outputs are not meaningful)")
