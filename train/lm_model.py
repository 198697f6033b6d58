# SPDX-License-Identifier: MIT
"""The mu-law token model: embedding → blocks → RMSNorm → lm head.

One step per 16 kHz sample, vocabulary 256 (8-bit mu-law codes); the logits
at sample t predict sample t+1.  Every block is a pre-RMSNorm residual
r ← r + mixer(RMSNorm(r)) whose mixer is one of three kinds (docs/model-format.md,
"Layer kinds"), so the C engine (ssm/model.h, tokens input, lm head) computes
the same function:

- mamba1: train/model.py's Mixer, chunked scan and Δ·A bound (DELTA_A_MIN,
  recorded in the file's metadata as delta_A_min; it applies to these layers only);
- mamba2: Mamba2Mixer below (Dao & Gu 2024, arXiv:2405.21060; mamba_ssm
  modules/mamba2.py's parameter names): per-head scalar decay, B and C shared
  by groups of heads, conv over x‖B‖C, gated RMSNorm per group; trained with
  the chunked SSD form (§6), checked against the per-step recurrence;
- attention: AttnMixer below (mamba_ssm modules/mha.py, causal): multi-head
  softmax attention with RoPE (GPT-NeoX pairs) over a sliding window of
  `window` samples, the query itself included, no biases, no MLP.

`export(net, path)` writes the ssmd file; `from_file(path)` rebuilds the
PyTorch model from one.  A stack of mamba1 layers only is written exactly as
before (architecture mamba1, no layers.{i}.kind keys).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as M  # noqa: E402
import ssmd_file  # noqa: E402

VOCAB = 256
SSD_CHUNK = 64


def segsum_decay(a):
    """a {..., Q} log-decays per step → {..., Q, Q}: exp(Σ_{j<s≤i} a_s) for j ≤ i, 0 above.
    Each entry is the exponential of a sum of non-positive terms (a difference of
    cumulative sums, ≤ 0): no overflow and no clamp, which is why mamba_ssm's
    Mamba-2 (and the C engine's) has no Δ·A bound."""
    Q = a.shape[-1]
    c = torch.cumsum(a, -1)
    d = c[..., :, None] - c[..., None, :]
    mask = torch.ones(Q, Q, dtype=torch.bool, device=a.device).tril()
    return torch.exp(d.masked_fill(~mask, -math.inf))


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, head_dim=32, n_groups=1, norm_eps=1e-5):
        super().__init__()
        di = expand * d_model
        assert di % head_dim == 0 and (di // head_dim) % n_groups == 0
        self.d_inner, self.N, self.G, self.P, self.H = di, d_state, n_groups, head_dim, di // head_dim
        self.conv_dim = di + 2 * n_groups * d_state
        self.norm_eps = norm_eps
        # in_proj rows: z (d_inner), x (d_inner), B (G·N), C (G·N), dt (H)
        self.in_proj = nn.Linear(d_model, di + self.conv_dim + self.H, bias=False)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1)
        dt = torch.exp(torch.rand(self.H) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.H).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.H))
        self.norm = M.RMSNorm(di)          # weight only; the gated norm is computed in forward
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def ssd_chunked(self, x, dt, A, Bm, Cm, chunk=SSD_CHUNK):
        """x {b,L,H,P}, dt {b,L,H}, A {H}, Bm/Cm {b,L,H,N} → y {b,L,H,P} (zero state, no D)."""
        b, L, H, P = x.shape
        Lp = (L + chunk - 1) // chunk * chunk
        if Lp != L:   # padded steps: dt = 0, no decay and no input
            x, dt = F.pad(x, (0, 0, 0, 0, 0, Lp - L)), F.pad(dt, (0, 0, 0, Lp - L))
            Bm, Cm = F.pad(Bm, (0, 0, 0, 0, 0, Lp - L)), F.pad(Cm, (0, 0, 0, 0, 0, Lp - L))
        nc = Lp // chunk
        xs = (x * dt[..., None]).reshape(b, nc, chunk, H, P)
        Bc, Cc = Bm.reshape(b, nc, chunk, H, -1), Cm.reshape(b, nc, chunk, H, -1)
        a = (dt * A).reshape(b, nc, chunk, H).permute(0, 3, 1, 2)          # b,H,nc,Q
        Ldec = segsum_decay(a)                                             # b,H,nc,Q,Q
        # inside chunks: y_i = Σ_{j≤i} (C_i·B_j) decay(i,j) Δ_j x_j
        G = torch.einsum("bcihn,bcjhn->bhcij", Cc, Bc)
        y = torch.einsum("bhcij,bcjhp->bcihp", G * Ldec, xs)
        # state each chunk leaves from its own inputs, then the recurrence across chunks
        c = torch.cumsum(a, -1)                                            # b,H,nc,Q
        to_end = torch.exp(c[..., -1:] - c)                                # b,H,nc,Q
        S_loc = torch.einsum("bhcj,bcjhn,bcjhp->bchpn", to_end, Bc, xs)
        dec_chunk = torch.exp(c[..., -1])                                  # b,H,nc
        S = torch.zeros(b, H, P, Bm.shape[-1], dtype=x.dtype)
        starts = []
        for k in range(nc):
            starts.append(S)
            S = dec_chunk[:, :, k, None, None] * S + S_loc[:, k]
        S0 = torch.stack(starts, 1)                                        # b,nc,H,P,N
        y = y + torch.einsum("bcihn,bchpn,bhci->bcihp", Cc, S0, torch.exp(c))
        return y.reshape(b, Lp, H, P)[:, :L]

    def ssd_sequential(self, x, dt, A, Bm, Cm):
        """The per-step recurrence the C engine computes: S ← exp(ΔA)S + Δx⊗B, y = S·C."""
        b, L, H, P = x.shape
        S = torch.zeros(b, H, P, Bm.shape[-1], dtype=x.dtype)
        ys = []
        for t in range(L):
            S = torch.exp(dt[:, t] * A)[..., None, None] * S + \
                (dt[:, t, :, None] * x[:, t])[..., None] * Bm[:, t, :, None, :]
            ys.append(torch.einsum("bhpn,bhn->bhp", S, Cm[:, t]))
        return torch.stack(ys, 1)

    def forward(self, h, sequential=False):
        b, L, _ = h.shape
        di, gn = self.d_inner, self.G * self.N
        z, xBC, dt = torch.split(self.in_proj(h), [di, self.conv_dim, self.H], dim=-1)
        xBC = F.silu(self.conv1d(xBC.transpose(1, 2))[..., :L].transpose(1, 2))
        x, Bm, Cm = torch.split(xBC, [di, gn, gn], dim=-1)
        x = x.reshape(b, L, self.H, self.P)
        rep = self.H // self.G                                  # head h reads group h // rep
        Bm = Bm.reshape(b, L, self.G, self.N).repeat_interleave(rep, dim=2)
        Cm = Cm.reshape(b, L, self.G, self.N).repeat_interleave(rep, dim=2)
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        y = (self.ssd_sequential if sequential else self.ssd_chunked)(x, dt, A, Bm, Cm)
        y = (y + self.D[:, None] * x).reshape(b, L, di)
        # gated RMSNorm (mamba_ssm RMSNormGated, norm_before_gate=False, groups of d_inner / G)
        g = (y * F.silu(z)).reshape(b, L, self.G, di // self.G)
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.norm_eps)
        return self.out_proj(g.reshape(b, L, di) * self.norm.weight)


class AttnMixer(nn.Module):
    def __init__(self, d_model, num_heads=4, head_dim=None, window=256, rotary_dim=None, base=10000.0):
        super().__init__()
        self.H = num_heads
        self.P = head_dim or d_model // num_heads
        self.W, self.base = window, base
        self.rd = self.P if rotary_dim is None else rotary_dim
        self.in_proj = nn.Linear(d_model, 3 * self.H * self.P, bias=False)   # rows q, k, v
        self.out_proj = nn.Linear(self.H * self.P, d_model, bias=False)

    def rope(self, x):
        """x {b,L,H,P}: the first rd channels of each head rotated by t·base^(−2i/rd),
        pairs (i, i + rd/2); positions from 0 (scores depend on t − s only)."""
        if self.rd == 0:
            return x
        L, h = x.shape[1], self.rd // 2
        inv = self.base ** (-torch.arange(0, self.rd, 2, dtype=torch.float64) / self.rd)
        ang = torch.arange(L, dtype=torch.float64)[:, None] * inv[None, :]
        c, s = torch.cos(ang).to(x.dtype)[:, None, :], torch.sin(ang).to(x.dtype)[:, None, :]
        x1, x2 = x[..., :h], x[..., h:self.rd]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, x[..., self.rd:]], -1)

    def forward(self, h, sequential=False):
        b, L, _ = h.shape
        q, k, v = self.in_proj(h).reshape(b, L, 3, self.H, self.P).unbind(2)
        q, k = self.rope(q), self.rope(k)
        s = torch.einsum("bihp,bjhp->bhij", q, k) / math.sqrt(self.P)
        i = torch.arange(L)
        keep = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < self.W)
        s = s.masked_fill(~keep, -math.inf)
        y = torch.einsum("bhij,bjhp->bihp", torch.softmax(s, -1), v)
        return self.out_proj(y.reshape(b, L, self.H * self.P))


class Block(nn.Module):
    def __init__(self, d_model, mixer):
        super().__init__()
        self.norm = M.RMSNorm(d_model)
        self.mixer = mixer

    def forward(self, r, sequential=False):
        return r + self.mixer(self.norm(r), sequential)


KINDS = ("mamba1", "mamba2", "attention")


class TokenLM(nn.Module):
    """kinds: one of KINDS per layer (default: n_layer mamba1 layers).
    m2: Mamba-2 geometry (d_state, head_dim, n_groups); attn: num_heads, head_dim, window, rotary_dim."""

    def __init__(self, d_model=96, n_layer=3, d_state=8, d_conv=4, expand=2, kinds=None, m2=None, attn=None):
        super().__init__()
        kinds = list(kinds or ["mamba1"] * n_layer)
        assert len(kinds) == n_layer and all(k in KINDS for k in kinds), kinds
        m2 = {"d_state": 16, "head_dim": 32, "n_groups": 1, **(m2 or {})} if "mamba2" in kinds else None
        attn = {"num_heads": 4, "head_dim": d_model // 4, "window": 256, "rotary_dim": None, **(attn or {})} \
            if "attention" in kinds else None
        if attn is not None and attn["rotary_dim"] is None:
            attn["rotary_dim"] = attn["head_dim"]
        self.cfg = dict(d_model=d_model, n_layer=n_layer, d_state=d_state, d_conv=d_conv, expand=expand,
                        kinds=kinds, m2=m2, attn=attn)
        self.embedding = nn.Embedding(VOCAB, d_model)

        def make(kind):
            if kind == "mamba1":
                return M.Block(d_model, d_state=d_state, d_conv=d_conv, expand=expand)
            if kind == "mamba2":
                return Block(d_model, Mamba2Mixer(d_model, m2["d_state"], d_conv, expand, m2["head_dim"],
                                                  m2["n_groups"]))
            return Block(d_model, AttnMixer(d_model, attn["num_heads"], attn["head_dim"], attn["window"],
                                            attn["rotary_dim"]))
        self.layers = nn.ModuleList(make(k) for k in kinds)
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
    t = {}
    for k, v in net.state_dict().items():
        if k.startswith("layers."):
            name = "backbone." + k
        elif k in ("embedding.weight", "norm_f.weight"):
            name = "backbone." + k
        else:
            name = k                                   # lm_head.weight
        t[name] = np.ascontiguousarray(v.detach().float().numpy(), np.float32)
    return t


def meta_of(net):
    c = net.cfg
    kinds = c["kinds"]
    meta = {"ssmd.format": "1", "architecture": kinds[0] if len(set(kinds)) == 1 else "mamba1",
            "name": "ssmd-mulaw-lm",
            "description": "8-bit mu-law sample-level token model (speech + music); see models/mulaw_lm.md",
            "d_model": c["d_model"], "n_layer": c["n_layer"], "d_state": c["d_state"],
            "d_conv": c["d_conv"], "expand": c["expand"], "dt_rank": "auto",
            "norm": "rmsnorm", "norm_eps": "1e-5", "delta_A_min": repr(M.DELTA_A_MIN),
            "input": "tokens", "vocab_size": VOCAB, "heads": "lm",
            "frontend.features": "mulaw", "frontend.mulaw_mu": 255, "frontend.sample_rate_hz": 16000}
    if len(set(kinds)) > 1:
        meta.update({f"layers.{i}.kind": k for i, k in enumerate(kinds)})
    if c["m2"]:
        m2 = c["m2"]
        di = c["expand"] * c["d_model"]
        meta.update({"mamba2.d_inner": di, "mamba2.d_state": m2["d_state"], "mamba2.d_conv": c["d_conv"],
                     "mamba2.head_dim": m2["head_dim"], "mamba2.n_groups": m2["n_groups"],
                     "mamba2.norm_group_size": di // m2["n_groups"], "mamba2.norm_eps": "1e-5"})
    if c["attn"]:
        a = c["attn"]
        meta.update({"attention.window": a["window"], "attention.num_heads": a["num_heads"],
                     "attention.head_dim": a["head_dim"], "attention.rotary_emb_dim": a["rotary_dim"],
                     "attention.rotary_emb_base": "10000", "attention.rotary_emb_interleaved": "false",
                     "attention.qkv_proj_bias": "false", "attention.out_proj_bias": "false",
                     "attention.mlp_dim": 0})
    return meta


def export(net, path, extra=None):
    meta = meta_of(net)
    meta.update(extra or {})
    tmp = path + ".tmp"
    ssmd_file.save(tmp, tensors_of(net), {k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)


def from_file(path):
    t, meta = ssmd_file.load(path)
    n = int(meta["n_layer"])
    kinds = [meta.get(f"layers.{i}.kind", meta["architecture"]) for i in range(n)]
    m2 = attn = None
    if "mamba2" in kinds:
        m2 = dict(d_state=int(meta["mamba2.d_state"]), head_dim=int(meta["mamba2.head_dim"]),
                  n_groups=int(meta["mamba2.n_groups"]))
    if "attention" in kinds:
        attn = dict(num_heads=int(meta["attention.num_heads"]), head_dim=int(meta["attention.head_dim"]),
                    window=int(meta["attention.window"]), rotary_dim=int(meta["attention.rotary_emb_dim"]))
    net = TokenLM(d_model=int(meta["d_model"]), n_layer=n, d_state=int(meta["d_state"]),
                  d_conv=int(meta["d_conv"]), expand=int(meta["expand"]), kinds=kinds, m2=m2, attn=attn)
    sd = {}
    for k, v in t.items():
        sd[k[len("backbone."):] if k.startswith("backbone.") else k] = v
    net.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sd.items()})
    net.eval()
    return net, meta


def preset(arch):
    """The three ~280 k-parameter models of models/mulaw_lm_architectures.md."""
    if arch == "mamba1":     # today's bundled model
        return TokenLM(d_model=128, n_layer=2, d_state=4)
    if arch == "mamba2":
        return TokenLM(d_model=128, n_layer=2, d_state=4, kinds=["mamba2"] * 2,
                       m2=dict(d_state=16, head_dim=32, n_groups=1))
    if arch == "hybrid":     # Mamba-1, attention over 256 samples, Mamba-1
        return TokenLM(d_model=112, n_layer=3, d_state=4, kinds=["mamba1", "attention", "mamba1"],
                       attn=dict(num_heads=4, head_dim=28, window=256))
    raise ValueError(arch)
