# SPDX-License-Identifier: MIT
"""train/export.py on Mamba-2 checkpoints → C model, against a PyTorch module.

Usage: test_export_mamba2.py MODEL_RUN WORKDIR

Builds a small Mamba-2 language model in PyTorch, written here from the
equations of the Mamba-2 layer (Dao & Gu 2024, arXiv:2405.21060; the module
structure and parameter names of mamba_ssm's MambaLMHeadModel with
ssm_cfg.layer = "Mamba2", modules/mamba2.py; mamba_ssm itself is not needed),
with random weights, saves it as
  1. a mamba_ssm checkpoint (config.json with ssm_cfg, pytorch_model.bin), and
  2. a HuggingFace Mamba2ForCausalLM checkpoint (config.json with
     model_type "mamba2", backbone.embeddings.weight, its norm over all of
     d_inner, projection biases, no conv bias),
exports each with train/export.py (f32), runs the C model on a random token
sequence (ssm_step one frame at a time and ssm_forward in chunks of 16) and
compares the embedding and logits with the module's float64 output: normwise
relative error <= 1e-5 (also for the chunked SSD forward, SSM_RUNNER_SSD_FORWARD).  Then checks that export refuses Mamba-2 options ssmd
does not compute with one "export: ..." line.  Needs torch (skips with exit
status 77 when it is missing).
"""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:
    print("torch is not importable: skipped")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT = os.path.join(HERE, "..", "..", "train", "export.py")
failures = []


class RMSNorm(nn.Module):
    def __init__(self, d, eps, group_size=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps, self.group_size = eps, group_size or d

    def forward(self, x, z=None):
        if z is not None:                       # norm_before_gate=False: gate, then norm
            x = x * F.silu(z)
        g = x.reshape(*x.shape[:-1], -1, self.group_size)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return g.reshape(x.shape) * self.weight


class Mamba2(nn.Module):
    """One Mamba-2 mixer over a whole sequence u {T, d_model} from a zero state."""

    def __init__(self, d_model, d_state, d_conv, expand, headdim, ngroups, bias, conv_bias,
                 norm_group_size, norm_eps):
        super().__init__()
        self.d_inner = expand * d_model
        self.H, self.P, self.G, self.N = self.d_inner // headdim, headdim, ngroups, d_state
        self.conv_dim = self.d_inner + 2 * ngroups * d_state
        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + self.H, bias=bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim,
                                padding=d_conv - 1, bias=conv_bias)
        dt = torch.exp(torch.empty(self.H).uniform_(math.log(1e-3), math.log(0.1)))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.H).uniform_(1, 16)))
        self.D = nn.Parameter(torch.empty(self.H).uniform_(0.5, 1.5))
        self.norm = RMSNorm(self.d_inner, norm_eps, norm_group_size)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)

    def forward(self, u):
        T = u.shape[0]
        z, xBC, dt = torch.split(self.in_proj(u), [self.d_inner, self.conv_dim, self.H], dim=-1)
        xBC = F.silu(self.conv1d(xBC.t().unsqueeze(0))[0, :, :T].t())
        x, B, C = torch.split(xBC, [self.d_inner, self.G * self.N, self.G * self.N], dim=-1)
        x = x.reshape(T, self.H, self.P)
        rep = self.H // self.G                  # head h reads group h // rep
        B = B.reshape(T, self.G, self.N).repeat_interleave(rep, dim=1)
        C = C.reshape(T, self.G, self.N).repeat_interleave(rep, dim=1)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        h = torch.zeros(self.H, self.P, self.N, dtype=u.dtype)
        ys = []
        for t in range(T):                      # h <- exp(Δ A) h + Δ x ⊗ B;  y = h C + D x
            h = torch.exp(dt[t] * A)[:, None, None] * h + \
                (dt[t][:, None] * x[t])[:, :, None] * B[t][:, None, :]
            ys.append(torch.einsum("hpn,hn->hp", h, C[t]) + self.D[:, None] * x[t])
        y = torch.stack(ys).reshape(T, self.d_inner)
        return self.out_proj(self.norm(y, z))


class Block(nn.Module):
    def __init__(self, d_model, eps, mixer):
        super().__init__()
        self.norm, self.mixer = RMSNorm(d_model, eps), mixer

    def forward(self, r):
        return r + self.mixer(self.norm(r))


class LM(nn.Module):
    def __init__(self, vocab, d_model, n_layer, eps, mixer_kw):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.embedding = nn.Embedding(vocab, d_model)
        self.backbone.layers = nn.ModuleList(
            [Block(d_model, eps, Mamba2(d_model, **mixer_kw)) for _ in range(n_layer)])
        self.backbone.norm_f = RMSNorm(d_model, eps)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)

    def forward(self, tokens):
        r = self.backbone.embedding(tokens)
        for layer in self.backbone.layers:
            r = layer(r)
        hf = self.backbone.norm_f(r)
        return torch.cat([hf, self.lm_head(hf)], dim=-1)   # model_run's order


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("dt_bias", "A_log", "mixer.D")):
                continue
            if "norm" in name:
                p.copy_(1 + 0.2 * (torch.rand(p.shape, generator=g) - 0.5))
            elif name.endswith("bias"):
                p.copy_(0.2 * (torch.rand(p.shape, generator=g) - 0.5))
            else:
                fan_in = p.shape[-1] if p.dim() > 1 else 1
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / math.sqrt(fan_in))


def run_c(model_run, path, mode, arg, tokens, work, tag, extra=()):
    fin, fout = os.path.join(work, tag + ".in"), os.path.join(work, tag + ".out")
    tokens.astype("<i4").tofile(fin)
    res = subprocess.run([model_run, path, mode, str(arg), str(len(tokens)), fin, fout, *extra],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tag}: model_run failed: {res.stderr.strip()}")
    return np.fromfile(fout, dtype="<f4")


def case(model_run, work, tag, hf):
    torch.manual_seed(5 if hf else 4)
    d_model, n_layer, vocab, d_state, d_conv, expand, headdim, ngroups = 32, 2, 50, 16, 4, 2, 16, 2
    d_inner = expand * d_model
    eps = 1e-6 if hf else 1e-5
    mixer_kw = dict(d_state=d_state, d_conv=d_conv, expand=expand, headdim=headdim,
                    ngroups=ngroups, bias=hf, conv_bias=not hf,
                    norm_group_size=d_inner if hf else d_inner // ngroups,
                    norm_eps=eps if hf else 1e-5)
    lm = LM(vocab, d_model, n_layer, eps, mixer_kw)
    randomise(lm, 11 if hf else 10)
    sd = {k: v.detach().clone() for k, v in lm.state_dict().items()}
    ck = os.path.join(work, tag)
    shutil.rmtree(ck, ignore_errors=True)
    os.makedirs(ck)
    if hf:
        sd["backbone.embeddings.weight"] = sd.pop("backbone.embedding.weight")
        cfg = {"model_type": "mamba2", "hidden_size": d_model, "num_hidden_layers": n_layer,
               "vocab_size": vocab, "state_size": d_state, "conv_kernel": d_conv,
               "expand": expand, "num_heads": d_inner // headdim, "head_dim": headdim,
               "n_groups": ngroups, "use_bias": True, "use_conv_bias": False,
               "layer_norm_epsilon": eps, "rms_norm": True, "tie_word_embeddings": False}
    else:
        cfg = {"d_model": d_model, "n_layer": n_layer, "vocab_size": vocab, "rms_norm": True,
               "norm_epsilon": eps, "tie_embeddings": False,
               "ssm_cfg": {"layer": "Mamba2", "d_state": d_state, "d_conv": d_conv,
                           "expand": expand, "headdim": headdim, "ngroups": ngroups}}
    with open(os.path.join(ck, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.save(sd, os.path.join(ck, "pytorch_model.bin"))
    out = os.path.join(work, tag + ".safetensors")
    res = subprocess.run([sys.executable, EXPORT, ck, "-o", out], capture_output=True, text=True)
    if res.returncode != 0:
        failures.append(tag)
        print(f"FAIL {tag}: export: {res.stderr.strip()}")
        return
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, vocab, 40).astype(np.int32)
    with torch.no_grad():
        ref = lm.double()(torch.from_numpy(tokens.astype(np.int64))).numpy()
    n_out = d_model + vocab
    worst = {}
    for mode, arg, extra in (("step", 1, ()), ("forward", 16, ()), ("forward", 16, ("ssd",))):
        what = mode + ("-ssd" if extra else "")
        got = run_c(model_run, out, mode, arg, tokens, work, f"{tag}_{what}", extra)
        got = got.reshape(-1, n_out)
        for name, lo, hi in (("embedding", 0, d_model), ("logits", d_model, n_out)):
            e = np.max(np.abs(got[:, lo:hi] - ref[:, lo:hi])) / np.max(np.abs(ref[:, lo:hi]))
            worst[f"{what} {name}"] = e
    ok = max(worst.values()) <= 1e-5
    print(f"{'ok  ' if ok else 'FAIL'} {tag}: {res.stdout.strip()}")
    print("     C vs torch (float64): " + ", ".join(f"{k} {v:.2e}" for k, v in worst.items())
          + " (tolerance 1e-5)")
    if not ok:
        failures.append(tag)


def refusals(work):
    """Mamba-2 options ssmd does not compute: one 'export:' line, status 1."""
    base = os.path.join(work, "mamba_ssm_m2")
    sd_path = os.path.join(base, "pytorch_model.bin")
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    for change, what in (({"norm_before_gate": True}, "norm_before_gate"),
                         ({"D_has_hdim": True}, "D_has_hdim"),
                         ({"dt_limit": [0.001, 0.1]}, "dt_limit"),
                         ({"headdim": 24}, "head_dim"),
                         ({"layer": "Mamba3"}, "ssm_cfg.layer")):
        c = json.loads(json.dumps(cfg))
        c["ssm_cfg"].update(change)
        cpath = os.path.join(work, "refuse.json")
        with open(cpath, "w") as f:
            json.dump(c, f)
        out = os.path.join(work, "refused.safetensors")
        res = subprocess.run([sys.executable, EXPORT, sd_path, "--config", cpath, "-o", out],
                             capture_output=True, text=True)
        lines = res.stderr.strip().splitlines()
        ok = (res.returncode == 1 and len(lines) == 1 and lines[0].startswith("export: ")
              and what in lines[0] and not os.path.exists(out))
        print(f"{'ok  ' if ok else 'FAIL'} refused {change}: {res.stderr.strip()}")
        if not ok:
            failures.append(f"refuse {change}")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_run, work = argv[1], argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    case(model_run, work, "mamba_ssm_m2", hf=False)
    case(model_run, work, "hf_m2", hf=True)
    refusals(work)
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
