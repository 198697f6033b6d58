# SPDX-License-Identifier: MIT
"""PyTorch eager peer of bench/model_bench.c for any layer mix: Mamba-1,
Mamba-2 and sliding-window attention layers (and gated MLP blocks), read
from the same model file and written from the equations of the float64
references (tests/ref/mamba_ref.py, mamba2_ref.py, attn_ref.py), not from
mamba_ssm.  torch.no_grad(), fp32, one thread (the bench pins one core).

Step: one frame for B streams, states updated in place (Mamba-1 conv + SSM
state, Mamba-2 conv + per-head SSD state, attention KV ring indexed by the
frame counter, as ssmd keeps them).  Forward: T frames of one stream from a
state: projections over the chunk, Mamba-1 scan frame by frame (as
selective_scan_ref), Mamba-2 in the chunked SSD form (blocks of 64: the
quadratic form inside, the state between; as mamba_ssm's ssd_minimal),
attention as banded softmax over the ring's rows and the chunk's.

  arch_torch_peer.py MODEL NAME [BATCH...]    JSON lines like model_bench's
        (model_step per batch: "impl":"torch-1t"; model_forward, chunk 256)
  arch_torch_peer.py --check MODEL            step and forward vs the float64
        reference (tests/ref/attn_ref.py reference) over 100 frames
  arch_torch_peer.py --make DIR               the three bench models (below)
Env: SSMD_BENCH_SECONDS (per figure, default 1.0), SSMD_BENCH_MIN_STEPS_B1
(least steps timed at batch 1, default 2000).
"""
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)

D_MODEL = 256
# name, kinds, extra make_model arguments: d_model 256, 4 layers, d_inner 512,
# 64 features in, mask {257} + vad out; Mamba-1 d_state 16; Mamba-2 head_dim 64
# (8 heads), 1 group, d_state 128 (mamba_ssm's Mamba2 default); attention
# 4 heads of 64, window 64, RoPE on 32 channels, mlp_dim 512 (mha.py's
# in-mixer MLP, which brings its parameters to a Mamba-2 layer's)
MODELS = [
    ("mamba1", ["mamba1"] * 4, {}),
    ("mamba2", ["mamba2"] * 4, {}),
    ("hybrid", ["mamba2", "mamba2", "attention", "mamba2"],
     {"attn": dict(num_heads=4, head_dim=64, window=64, rotary_emb_dim=32, mlp_dim=512)}),
]


def make(work):
    import attn_ref
    import mamba2_ref
    os.makedirs(work, exist_ok=True)
    for name, kinds, extra in MODELS:
        path = os.path.join(work, f"arch_{name}.safetensors")
        kw = dict(d_model=D_MODEL, kinds=kinds, d_state=16, m2_d_state=128, head_dim=64,
                  n_groups=1, n_features=64, heads="mask,vad", n_mask=257, seed=18)
        if "attention" in kinds:
            attn_ref.make_model(path, **kw, **extra)
        else:
            mamba2_ref.make_model(path, **kw)
        print(path)


class Peer:
    def __init__(self, path, torch):
        import ssmd_file
        import attn_ref
        import mamba2_ref
        self.t = torch
        t, meta = ssmd_file.load(path)
        g = {k: torch.from_numpy(v.astype("float32")) for k, v in t.items()}
        self.g, self.meta = g, meta
        self.kinds = attn_ref.layer_kinds(meta)
        self.dm = int(meta["d_model"])
        self.eps = float(meta["norm_eps"])
        self.nf = int(meta["n_features"])
        self.di = int(meta.get("d_inner", int(meta["expand"]) * self.dm))
        self.N, self.K = int(meta["d_state"]), int(meta["d_conv"])
        dtr = meta.get("dt_rank", "auto")
        self.R = math.ceil(self.dm / 16) if dtr == "auto" else int(dtr)
        self.d_inter = int(meta.get("d_intermediate", 0))
        if "mamba2" in self.kinds:
            (self.d2, self.H2, self.P2, self.G2, self.N2, self.K2,
             self.eps2) = mamba2_ref.m2_geometry(meta)
            self.gs2 = mamba2_ref.norm_group_size(meta)
        if "attention" in self.kinds:
            (self.Ha, self.Hkv, self.Pa, self.W, self.rd, self.inter, base, self.scale,
             self.mlp_dim) = attn_ref.attn_geometry(meta)
            self.inv_freq = (base ** (-torch.arange(0, self.rd, 2, dtype=torch.float64) / self.rd)
                             if self.rd else None)
        self.L = []
        for i, kind in enumerate(self.kinds):
            p = f"backbone.layers.{i}.mixer."
            d = {k[len(p):]: v for k, v in g.items() if k.startswith(p)}
            d["norm"] = g[f"backbone.layers.{i}.norm.weight"]
            if "conv1d.weight" in d:
                d["conv_w"] = d["conv1d.weight"][:, 0, :].contiguous()
                d["conv_b"] = d.get("conv1d.bias", torch.zeros(d["conv_w"].shape[0]))
            if kind in ("mamba1", "mamba2"):
                d["A"] = -torch.exp(d["A_log"])
            fc1 = g.get(f"backbone.layers.{i}.mlp.fc1.weight")
            if fc1 is not None:
                d["norm2"] = g[f"backbone.layers.{i}.norm2.weight"]
                d["fc1"], d["fc2"] = fc1, g[f"backbone.layers.{i}.mlp.fc2.weight"]
            self.L.append(d)

    # ---- helpers ----
    def rms(self, x, w, eps=None):
        t = self.t
        return x * t.rsqrt(x.pow(2).mean(-1, keepdim=True) + (eps or self.eps)) * w

    def lin(self, x, d, w, b):
        return self.t.nn.functional.linear(x, d[w], d.get(b))

    def rope(self, x, pos):
        """x {..., T, heads, P} at positions pos {T} (int64): the first rd channels rotated;
        angles in float64 (as ssmd), then fp32."""
        if not self.rd:
            return x
        t = self.t
        ang = pos.to(t.float64)[:, None] * self.inv_freq[None, :]          # {T, rd/2}
        c = t.cos(ang).to(t.float32)[:, None, :]
        s = t.sin(ang).to(t.float32)[:, None, :]
        out = x.clone()
        rd = self.rd
        if self.inter:
            x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
            out[..., 0:rd:2] = x1 * c - x2 * s
            out[..., 1:rd:2] = x2 * c + x1 * s
        else:
            h = rd // 2
            x1, x2 = x[..., :h], x[..., h:rd]
            out[..., :h] = x1 * c - x2 * s
            out[..., h:rd] = x2 * c + x1 * s
        return out

    def states(self, B):
        t = self.t
        st = []
        for kind in self.kinds:
            if kind == "mamba1":
                st.append({"conv": t.zeros(B, self.di, self.K), "ssm": t.zeros(B, self.di, self.N)})
            elif kind == "mamba2":
                cd = self.d2 + 2 * self.G2 * self.N2
                st.append({"conv": t.zeros(B, cd, self.K2),
                           "ssm": t.zeros(B, self.H2, self.P2, self.N2)})
            else:
                st.append({"k": t.zeros(B, self.W, self.Hkv, self.Pa),
                           "v": t.zeros(B, self.W, self.Hkv, self.Pa), "pos": 0})
        return st

    def heads(self, r):
        F = self.t.nn.functional
        g = self.g
        hf = self.rms(r, g["backbone.norm_f.weight"])
        mask = self.t.sigmoid(F.linear(hf, g["head.mask.weight"], g["head.mask.bias"]))
        vad = self.t.sigmoid(F.linear(hf, g["head.vad.weight"], g["head.vad.bias"]))
        return hf, mask, vad

    def mlp(self, r, d):
        if "fc1" not in d:
            return r
        F = self.t.nn.functional
        ab = F.linear(self.rms(r, d["norm2"]), d["fc1"])
        return r + F.linear(ab[..., :self.d_inter] * F.silu(ab[..., self.d_inter:]), d["fc2"])

    # ---- step: u {B, nf} ----
    def step(self, u, st):
        t = self.t
        F = t.nn.functional
        r = F.linear(u, self.g["frontend.proj.weight"], self.g["frontend.proj.bias"])
        for kind, d, s in zip(self.kinds, self.L, st):
            h = self.rms(r, d["norm"])
            if kind == "mamba1":
                o = self.m1_step(h, d, s)
            elif kind == "mamba2":
                o = self.m2_step(h, d, s)
            else:
                o = self.at_step(h, d, s)
            r = self.mlp(r + o, d)
        return self.heads(r)

    def conv_step(self, x, d, s):
        s["conv"].copy_(self.t.roll(s["conv"], shifts=-1, dims=-1))
        s["conv"][:, :, -1] = x
        return self.t.nn.functional.silu((s["conv"] * d["conv_w"]).sum(-1) + d["conv_b"])

    def m1_step(self, h, d, s):
        t = self.t
        F = t.nn.functional
        di, N, R = self.di, self.N, self.R
        xz = self.lin(h, d, "in_proj.weight", "in_proj.bias")
        x, z = xz[:, :di], xz[:, di:]
        x = self.conv_step(x, d, s)
        dbc = F.linear(x, d["x_proj.weight"])
        dt, B, C = t.split(dbc, [R, N, N], dim=-1)
        dt = F.softplus(F.linear(dt, d["dt_proj.weight"], d["dt_proj.bias"]))
        dA = t.exp(dt.unsqueeze(-1) * d["A"])
        s["ssm"].mul_(dA).add_((dt * x).unsqueeze(-1) * B.unsqueeze(1))
        y = t.einsum("bdn,bn->bd", s["ssm"], C) + d["D"] * x
        return self.lin(y * F.silu(z), d, "out_proj.weight", "out_proj.bias")

    def m2_gate_out(self, y, z, d):
        F = self.t.nn.functional
        y = y * F.silu(z)
        sh = y.shape
        yg = y.reshape(*sh[:-1], -1, self.gs2)
        yg = yg * self.t.rsqrt(yg.pow(2).mean(-1, keepdim=True) + self.eps2)
        y = yg.reshape(sh) * d["norm.weight"]
        return self.lin(y, d, "out_proj.weight", "out_proj.bias")

    def m2_step(self, h, d, s):
        t = self.t
        F = t.nn.functional
        di, H, P, G, N = self.d2, self.H2, self.P2, self.G2, self.N2
        cd = di + 2 * G * N
        zx = self.lin(h, d, "in_proj.weight", "in_proj.bias")
        z, xBC, dt = zx[:, :di], zx[:, di:di + cd], zx[:, di + cd:]
        xBC = self.conv_step(xBC, d, s)
        Bn = xBC.shape[0]
        x = xBC[:, :di].reshape(Bn, H, P)
        Bm = xBC[:, di:di + G * N].reshape(Bn, G, N).repeat_interleave(H // G, dim=1)
        Cm = xBC[:, di + G * N:].reshape(Bn, G, N).repeat_interleave(H // G, dim=1)
        dt = F.softplus(dt + d["dt_bias"])                               # {B, H}
        dA = t.exp(dt * d["A"])
        s["ssm"].mul_(dA[:, :, None, None]).add_((dt[:, :, None] * x).unsqueeze(-1)
                                                 * Bm.unsqueeze(2))
        y = t.einsum("bhpn,bhn->bhp", s["ssm"], Cm) + d["D"][:, None] * x
        return self.m2_gate_out(y.reshape(Bn, di), z, d)

    def at_split(self, qkv):
        H, Hkv, P, m = self.Ha, self.Hkv, self.Pa, self.mlp_dim
        nq, nkv = H * P, Hkv * P
        sh = qkv.shape[:-1]
        q = qkv[..., :nq].reshape(*sh, H, P)
        k = qkv[..., nq:nq + nkv].reshape(*sh, Hkv, P)
        v = qkv[..., nq + nkv:nq + 2 * nkv].reshape(*sh, Hkv, P)
        up = qkv[..., nq + 2 * nkv:nq + 2 * nkv + m // 2] if m else None
        gate = qkv[..., nq + 2 * nkv + m // 2:] if m else None
        return q, k, v, up, gate

    def at_out(self, y, up, gate, d):
        F = self.t.nn.functional
        if up is not None:
            y = self.t.cat([y, up * F.silu(gate)], dim=-1)
        return self.lin(y, d, "out_proj.weight", "out_proj.bias")

    def at_step(self, h, d, s):
        t = self.t
        Bn = h.shape[0]
        pos = s["pos"]
        q, k, v, up, gate = self.at_split(self.lin(h, d, "in_proj.weight", "in_proj.bias"))
        pt = t.tensor([pos])
        q = self.rope(q.unsqueeze(1), pt)[:, 0]
        k = self.rope(k.unsqueeze(1), pt)[:, 0]
        s["k"][:, pos % self.W] = k
        s["v"][:, pos % self.W] = v
        n = min(pos + 1, self.W)
        rep = self.Ha // self.Hkv
        K = s["k"][:, :n].repeat_interleave(rep, dim=2)                  # {B, n, H, P}
        V = s["v"][:, :n].repeat_interleave(rep, dim=2)
        a = t.softmax(t.einsum("bhp,bjhp->bhj", q, K) * self.scale, dim=-1)
        y = t.einsum("bhj,bjhp->bhp", a, V).reshape(Bn, self.Ha * self.Pa)
        s["pos"] = pos + 1
        return self.at_out(y, up, gate, d)

    # ---- forward: U {T, nf}, one stream (state batch 1) ----
    def forward(self, U, st):
        F = self.t.nn.functional
        r = F.linear(U, self.g["frontend.proj.weight"], self.g["frontend.proj.bias"])
        for kind, d, s in zip(self.kinds, self.L, st):
            h = self.rms(r, d["norm"])
            if kind == "mamba1":
                o = self.m1_forward(h, d, s)
            elif kind == "mamba2":
                o = self.m2_forward(h, d, s)
            else:
                o = self.at_forward(h, d, s)
            r = self.mlp(r + o, d)
        return self.heads(r)

    def conv_forward(self, x, d, s, K):
        """x {T, C} after the state's K-1 newest inputs (causal depthwise conv + SiLU)."""
        t = self.t
        T = x.shape[0]
        xp = t.cat([s["conv"][0, :, 1:].T, x], dim=0)                    # {K-1+T, C}
        s["conv"][0] = xp[-K:].T
        out = t.nn.functional.conv1d(xp.T.unsqueeze(0), d["conv_w"].unsqueeze(1), d["conv_b"],
                                     groups=x.shape[1])[0].T
        return t.nn.functional.silu(out[:T])

    def m1_forward(self, h, d, s):
        t = self.t
        F = t.nn.functional
        di, N, R = self.di, self.N, self.R
        xz = self.lin(h, d, "in_proj.weight", "in_proj.bias")
        x, z = xz[:, :di], xz[:, di:]
        x = self.conv_forward(x, d, s, self.K)
        dbc = F.linear(x, d["x_proj.weight"])
        dt, B, C = t.split(dbc, [R, N, N], dim=-1)
        dt = F.softplus(F.linear(dt, d["dt_proj.weight"], d["dt_proj.bias"]))   # {T, di}
        dA = t.exp(dt.unsqueeze(-1) * d["A"])                              # {T, di, N}
        dBx = (dt * x).unsqueeze(-1) * B.unsqueeze(1)
        S = s["ssm"][0]
        ys = []
        for i in range(x.shape[0]):   # selective_scan_ref's loop
            S = dA[i] * S + dBx[i]
            ys.append(S @ C[i])
        s["ssm"][0] = S
        y = t.stack(ys) + d["D"] * x
        return self.lin(y * F.silu(z), d, "out_proj.weight", "out_proj.bias")

    def m2_forward(self, h, d, s, block=64):
        t = self.t
        F = t.nn.functional
        di, H, P, G, N = self.d2, self.H2, self.P2, self.G2, self.N2
        cd = di + 2 * G * N
        T = h.shape[0]
        zx = self.lin(h, d, "in_proj.weight", "in_proj.bias")
        z, xBC, dt = zx[:, :di], zx[:, di:di + cd], zx[:, di + cd:]
        xBC = self.conv_forward(xBC, d, s, self.K2)
        x = xBC[:, :di].reshape(T, H, P)
        Bm = xBC[:, di:di + G * N].reshape(T, G, N).repeat_interleave(H // G, dim=1)
        Cm = xBC[:, di + G * N:].reshape(T, G, N).repeat_interleave(H // G, dim=1)
        dt = F.softplus(dt + d["dt_bias"])                                 # {T, H}
        S = s["ssm"][0]                                                   # {H, P, N}
        ys = []
        for t0 in range(0, T, block):   # chunked SSD (mamba2_ref.ssd_chunked)
            t1 = min(T, t0 + block)
            L = t1 - t0
            a = t.cumsum(dt[t0:t1] * d["A"], dim=0)                        # {L, H}
            seg = a[:, None, :] - a[None, :, :]
            mask = t.tril(t.ones(L, L, dtype=t.bool))[:, :, None]
            Lm = t.where(mask, t.exp(t.where(mask, seg, t.zeros(()))), t.zeros(()))
            CB = t.einsum("thn,shn->tsh", Cm[t0:t1], Bm[t0:t1])
            M = Lm * CB * dt[t0:t1][None, :, :]
            xc = x[t0:t1]
            y = (t.einsum("tsh,shp->thp", M, xc)
                 + t.exp(a)[:, :, None] * t.einsum("hpn,thn->thp", S, Cm[t0:t1])
                 + d["D"][None, :, None] * xc)
            ys.append(y)
            w = t.exp(a[-1][None, :] - a) * dt[t0:t1]
            S = t.exp(a[-1])[:, None, None] * S + t.einsum("sh,shp,shn->hpn", w, xc, Bm[t0:t1])
        s["ssm"][0] = S
        return self.m2_gate_out(t.cat(ys).reshape(T, di), z, d)

    def at_forward(self, h, d, s):
        t = self.t
        T, W, pos = h.shape[0], self.W, s["pos"]
        q, k, v, up, gate = self.at_split(self.lin(h, d, "in_proj.weight", "in_proj.bias"))
        pts = t.arange(pos, pos + T)
        q, k = self.rope(q, pts), self.rope(k, pts)
        # the ring's valid rows, oldest first, then the chunk's
        n_old = min(pos, W)
        idx = t.arange(pos - n_old, pos) % W
        Kc = t.cat([s["k"][0, idx], k])                                   # {n_old+T, Hkv, P}
        Vc = t.cat([s["v"][0, idx], v])
        kpos = t.arange(pos - n_old, pos + T)
        rep = self.Ha // self.Hkv
        K, V = Kc.repeat_interleave(rep, dim=1), Vc.repeat_interleave(rep, dim=1)
        sc = t.einsum("thp,jhp->htj", q, K) * self.scale                   # {H, T, J}
        qp = pts[:, None]
        band = (kpos[None, :] <= qp) & (kpos[None, :] > qp - W)
        a = t.softmax(sc.masked_fill(~band, float("-inf")), dim=-1)
        y = t.einsum("htj,jhp->thp", a, V).reshape(T, self.Ha * self.Pa)
        keep = min(W, n_old + T)   # the newest W rows back into the ring
        s["k"][0, kpos[-keep:] % W] = Kc[-keep:]
        s["v"][0, kpos[-keep:] % W] = Vc[-keep:]
        s["pos"] = pos + T
        return self.at_out(y, up, gate, d)


def check(path):
    """The peer's step (3 streams) and forward (chunks 37, 63) vs the float64 reference."""
    import numpy as np
    import torch
    import attn_ref
    torch.set_num_threads(1)
    peer = Peer(path, torch)
    T = 100
    rng = np.random.default_rng(4)
    u = rng.uniform(-1, 1, (T, peer.nf)).astype(np.float32)
    ref = attn_ref.reference(path, u)                                    # {T, dm + 257 + 1}
    scale = np.abs(ref).max(axis=0).max()
    with torch.no_grad():
        st = peer.states(3)
        out = []
        for i in range(T):
            hf, m, v = peer.step(torch.from_numpy(np.repeat(u[i:i + 1], 3, 0)), st)
            out.append(torch.cat([hf, m, v], dim=1)[1].numpy())
        e_step = float(np.abs(np.array(out) - ref).max() / scale)
        st = peer.states(1)
        outf = []
        for a, b in ((0, 37), (37, 100)):
            hf, m, v = peer.forward(torch.from_numpy(u[a:b]), st)
            outf.append(torch.cat([hf, m, v], dim=1).numpy())
        e_fwd = float(np.abs(np.concatenate(outf) - ref).max() / scale)
    ok = e_step < 1e-4 and e_fwd < 1e-4
    print(machine.line({"bench": "peer_check", "model": os.path.basename(path), "frames": T,
                      "step_vs_float64": e_step, "forward_vs_float64": e_fwd, "ok": ok}))
    return 0 if ok else 1


def bench(path, name, batches):
    import torch
    torch.set_num_threads(1)
    budget = float(os.environ.get("SSMD_BENCH_SECONDS", "1.0"))
    min_b1 = int(os.environ.get("SSMD_BENCH_MIN_STEPS_B1", "2000"))
    peer = Peer(path, torch)
    layer_params = sum(v.numel() for k, v in peer.g.items() if k.startswith("backbone.layers."))
    print(machine.line({"bench": "model_params", "model": name, "layers": ",".join(peer.kinds),
                      "params": sum(v.numel() for v in peer.g.values()),
                      "layer_params": layer_params}), flush=True)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for B in batches:
            u = torch.rand(B, peer.nf, generator=gen) * 2 - 1
            st = peer.states(B)
            for _ in range(5):
                peer.step(u, st)
            lat = []
            t0 = time.perf_counter()
            min_steps = min_b1 if B == 1 else 10
            while len(lat) < min_steps or time.perf_counter() - t0 < budget:
                a = time.perf_counter()
                peer.step(u, st)
                lat.append(time.perf_counter() - a)
            total = time.perf_counter() - t0
            lat.sort()
            n = len(lat)
            med = lat[n // 2]
            print(machine.line({"bench": "model_step", "impl": "torch-1t", "model": name, "batch": B,
                              "threads": 1, "steps": n, "stream_steps_per_s": round(B / med, 1),
                              "mean_stream_steps_per_s": round(n * B / total, 1),
                              "median_us": round(med * 1e6, 2),
                              "p99_us": round(lat[int((n - 1) * 0.99)] * 1e6, 2),
                              "min_us": round(lat[0] * 1e6, 2)}), flush=True)
        chunk = 256
        U = torch.rand(chunk, peer.nf, generator=gen) * 2 - 1
        st = peer.states(1)
        peer.forward(U, st)
        n, t0 = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - t0 < budget:
            peer.forward(U, st)
            n += 1
        total = time.perf_counter() - t0
        print(machine.line({"bench": "model_forward", "impl": "torch-1t", "model": name,
                          "chunk": chunk, "frames_per_s": round(n * chunk / total, 1)}), flush=True)


def main(argv):
    if len(argv) == 3 and argv[1] == "--make":
        make(argv[2])
        return 0
    if len(argv) == 3 and argv[1] == "--check":
        return check(argv[2])
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench(argv[1], argv[2], [int(b) for b in argv[3:]] or [1, 16, 64, 256])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
