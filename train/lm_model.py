# SPDX-License-Identifier: MIT
"""The mu-law token model: embedding → Mamba-1 blocks of train/model.py → RMSNorm → lm head.

One step per 16 kHz sample, vocabulary 256 (8-bit mu-law codes); the logits
at sample t predict sample t+1.  Blocks, chunked scan and its Δ·A bound
(DELTA_A_MIN, recorded in the file's metadata as delta_A_min) are those of
train/model.py, so the C engine (ssm/model.h, tokens input, lm head)
computes the same function.  `export(net, path)` writes the ssmd file;
`from_file(path)` rebuilds the PyTorch model from one.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402
import ssmd_file  # noqa: E402

VOCAB = 256


class TokenLM(nn.Module):
    def __init__(self, d_model=96, n_layer=3, d_state=8, d_conv=4, expand=2):
        super().__init__()
        self.cfg = dict(d_model=d_model, n_layer=n_layer, d_state=d_state, d_conv=d_conv, expand=expand)
        self.embedding = nn.Embedding(VOCAB, d_model)
        self.layers = nn.ModuleList(M.Block(d_model, d_state=d_state, d_conv=d_conv, expand=expand)
                                    for _ in range(n_layer))
        self.norm_f = M.RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, VOCAB, bias=False)
        with torch.no_grad():
            nn.init.normal_(self.embedding.weight, std=0.5)
            for b in self.layers:
                b.mixer.out_proj.weight /= (2 * n_layer) ** 0.5

    def forward(self, tokens, sequential=False):
        """tokens {B, L} int64 → logits {B, L, 256} (row t predicts token t+1)."""
        r = self.embedding(tokens)
        for b in self.layers:
            r = b(r, sequential)
        return self.lm_head(self.norm_f(r))


def n_params(net):
    return sum(p.numel() for p in net.parameters())


def tensors_of(net):
    sd = {k: v.detach().float().numpy() for k, v in net.state_dict().items()}
    t = {"backbone.embedding.weight": sd["embedding.weight"],
         "backbone.norm_f.weight": sd["norm_f.weight"], "lm_head.weight": sd["lm_head.weight"]}
    for i in range(len(net.layers)):
        p, q = f"backbone.layers.{i}.", f"layers.{i}."
        t[p + "norm.weight"] = sd[q + "norm.weight"]
        for name in ("in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight",
                     "dt_proj.weight", "dt_proj.bias", "A_log", "D", "out_proj.weight"):
            t[p + "mixer." + name] = sd[q + "mixer." + name]
    return {k: np.ascontiguousarray(v, np.float32) for k, v in t.items()}


def export(net, path, extra=None):
    c = net.cfg
    meta = {"ssmd.format": "1", "architecture": "mamba1", "name": "ssmd-mulaw-lm",
            "description": "8-bit mu-law sample-level token model (speech + music); see models/mulaw_lm.md",
            "d_model": c["d_model"], "n_layer": c["n_layer"], "d_state": c["d_state"],
            "d_conv": c["d_conv"], "expand": c["expand"], "dt_rank": "auto",
            "norm": "rmsnorm", "norm_eps": "1e-5", "delta_A_min": repr(M.DELTA_A_MIN),
            "input": "tokens", "vocab_size": VOCAB, "heads": "lm",
            "frontend.features": "mulaw", "frontend.mulaw_mu": 255, "frontend.sample_rate_hz": 16000}
    meta.update(extra or {})
    tmp = path + ".tmp"
    ssmd_file.save(tmp, tensors_of(net), {k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)


def from_file(path):
    t, meta = ssmd_file.load(path)
    net = TokenLM(d_model=int(meta["d_model"]), n_layer=int(meta["n_layer"]),
                  d_state=int(meta["d_state"]), d_conv=int(meta["d_conv"]), expand=int(meta["expand"]))
    sd = {"embedding.weight": t["backbone.embedding.weight"], "norm_f.weight": t["backbone.norm_f.weight"],
          "lm_head.weight": t["lm_head.weight"]}
    for i in range(net.cfg["n_layer"]):
        for k, v in t.items():
            p = f"backbone.layers.{i}."
            if k.startswith(p):
                sd[f"layers.{i}." + k[len(p):]] = v
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sd.items()})
    net.eval()
    return net, meta
