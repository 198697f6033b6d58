# SPDX-License-Identifier: MIT
"""Independent float64 numpy reference of Mamba-2 (SSD) layers and of stacks
that mix them with Mamba-1 layers, written from the equations, and the tests
that hold ssmd's C model to it.

Source of the math: Dao & Gu 2024, "Transformers are SSMs" (arXiv:2405.21060),
§6-7 (the SSD layer and its chunked algorithm), and state-spaces/mamba
mamba_ssm/modules/mamba2.py (Mamba2.step: the projection layout, the conv
over x|B|C, per-head Δ and A, group-shared B and C, gated RMSNorm).

One Mamba-2 layer, for a frame (r: the fp32 residual, D = d_model):
  h = RMSNorm(r) * norm                                    (block pre-norm)
  [z | xBC | dt] = W_in h (+ b_in)     sizes d_inner, conv_dim, n_heads
                                        conv_dim = d_inner + 2 n_groups d_state
  xBC = silu(causal depthwise conv over the last d_conv xBC + b_conv)
  [x | B | C] = xBC   x {n_heads, head_dim}, B, C {n_groups, d_state}
  Δ = softplus(dt + dt_bias) {n_heads};  A = -exp(A_log) {n_heads}
  per head h (group g = h // (n_heads / n_groups)):
     S_h <- exp(Δ_h A_h) S_h + Δ_h x_h ⊗ B_g          S {n_heads, head_dim, d_state}
     y_h = S_h C_g + D_h x_h
  y = y * silu(z);  y = RMSNorm per group of d_inner/n_groups channels * norm_w
  r <- r + W_out y (+ b_out)
Chunked (SSD) form over L frames from a state S0, per head, a_t = Σ_{k<=t} Δ_k A:
  y_t = exp(a_t) S0 C_t + Σ_{s<=t} exp(a_t - a_s) (C_t·B_s) Δ_s x_s + D x_t
  S_L = exp(a_L) S0 + Σ_s exp(a_L - a_s) Δ_s x_s ⊗ B_s

Usage (through tests/ref/run_ref.sh):
  mamba2_ref.py check  MODEL_RUN WORKDIR        step/forward/batch tests vs float64
  mamba2_ref.py long   MODEL_RUN WORKDIR [N]    N steps (default 1e5): no drift
  mamba2_ref.py bad    LOADER_CHECK WORKDIR     malformed Mamba-2 metadata: one line each
  mamba2_ref.py gen    WORKDIR [STAMP]          models for tests/model/test_model.c
"""
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "train"))
sys.path.insert(0, HERE)
import ssmd_file  # noqa: E402


# ---------------------------------------------------------------- models ----

def make_model(path, d_model, kinds, d_state=16, m2_d_state=None, m2_d_inner=None, d_conv=4, expand=2,
               head_dim=8, n_groups=1, inp="features", n_features=13, vocab=11,
               heads="mask,vad", n_mask=9, dtype="F32", seed=0, proj_bias=False,
               conv_bias=True, dt_max=0.1, meta_extra=None):
    """Random model whose layer i is kinds[i] ("mamba1" or "mamba2"); returns
    its metadata (strings).  Mamba-2 layers use m2_d_state (default d_state),
    head_dim and n_groups; Mamba-1 layers dt_rank auto."""
    rng = np.random.default_rng(seed)
    n_layer = len(kinds)
    d_inner = expand * d_model
    N2 = m2_d_state or d_state
    d2 = m2_d_inner or d_inner
    H = d2 // head_dim
    conv_dim = d2 + 2 * n_groups * N2
    R = math.ceil(d_model / 16)

    def lin(o, i, scale=1.0):
        return rng.uniform(-1, 1, (o, i)) * scale / math.sqrt(i)

    def inv_softplus_dt(n):
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(dt_max), n))
        return dt + np.log(-np.expm1(-dt))

    t = {"backbone.norm_f.weight": rng.uniform(0.8, 1.2, d_model)}
    if inp == "tokens":
        t["backbone.embedding.weight"] = rng.normal(0, 1, (vocab, d_model))
    else:
        t["frontend.proj.weight"] = lin(d_model, n_features)
        t["frontend.proj.bias"] = rng.uniform(-0.1, 0.1, d_model)
    hs = heads.split(",") if heads else []
    if "mask" in hs:
        t["head.mask.weight"] = lin(n_mask, d_model)
        t["head.mask.bias"] = rng.uniform(-1, 1, n_mask)
    if "vad" in hs:
        t["head.vad.weight"] = lin(1, d_model)
        t["head.vad.bias"] = rng.uniform(-1, 1, 1)
    if "lm" in hs:
        t["lm_head.weight"] = lin(vocab, d_model)
    for i, kind in enumerate(kinds):
        p = f"backbone.layers.{i}."
        t[p + "norm.weight"] = rng.uniform(0.8, 1.2, d_model)
        if kind == "mamba1":
            t[p + "mixer.in_proj.weight"] = lin(2 * d_inner, d_model)
            t[p + "mixer.conv1d.weight"] = rng.uniform(-1, 1, (d_inner, 1, d_conv)) / math.sqrt(d_conv)
            if conv_bias:
                t[p + "mixer.conv1d.bias"] = rng.uniform(-0.1, 0.1, d_inner)
            t[p + "mixer.x_proj.weight"] = lin(R + 2 * d_state, d_inner)
            t[p + "mixer.dt_proj.weight"] = lin(d_inner, R, R ** -0.5)
            t[p + "mixer.dt_proj.bias"] = inv_softplus_dt(d_inner)
            t[p + "mixer.A_log"] = np.log(np.tile(np.arange(1, d_state + 1, dtype=np.float64),
                                                  (d_inner, 1)))
            t[p + "mixer.D"] = rng.uniform(0.5, 1.5, d_inner)
            if proj_bias:
                t[p + "mixer.in_proj.bias"] = rng.uniform(-0.1, 0.1, 2 * d_inner)
        else:
            n_in = 2 * d2 + 2 * n_groups * N2 + H
            t[p + "mixer.in_proj.weight"] = lin(n_in, d_model)
            t[p + "mixer.conv1d.weight"] = rng.uniform(-1, 1, (conv_dim, 1, d_conv)) / math.sqrt(d_conv)
            if conv_bias:
                t[p + "mixer.conv1d.bias"] = rng.uniform(-0.1, 0.1, conv_dim)
            t[p + "mixer.dt_bias"] = inv_softplus_dt(H)
            t[p + "mixer.A_log"] = np.log(rng.uniform(1, 16, H))
            t[p + "mixer.D"] = rng.uniform(0.5, 1.5, H)
            t[p + "mixer.norm.weight"] = rng.uniform(0.8, 1.2, d2)
            if proj_bias:
                t[p + "mixer.in_proj.bias"] = rng.uniform(-0.1, 0.1, n_in)
        di = d2 if kind == "mamba2" else d_inner
        t[p + "mixer.out_proj.weight"] = lin(d_model, di, 1.0 / math.sqrt(n_layer))
        if proj_bias:
            t[p + "mixer.out_proj.bias"] = rng.uniform(-0.1, 0.1, d_model)
    arch = kinds[0]
    meta = {"ssmd.format": "1", "architecture": arch, "d_model": d_model,
            "n_layer": n_layer, "d_state": d_state, "d_conv": d_conv, "expand": expand,
            "norm": "rmsnorm", "norm_eps": "1e-5", "input": inp, "heads": heads,
            "conv_bias": "true" if conv_bias else "false",
            "proj_bias": "true" if proj_bias else "false"}
    for i, kind in enumerate(kinds):
        if kind != arch:
            meta[f"layers.{i}.kind"] = kind
    if "mamba2" in kinds:
        meta["mamba2.head_dim"] = head_dim
        meta["mamba2.n_groups"] = n_groups
        if m2_d_state:
            meta["mamba2.d_state"] = m2_d_state
        if m2_d_inner:
            meta["mamba2.d_inner"] = m2_d_inner
    if inp == "tokens" or "lm" in hs:
        meta["vocab_size"] = vocab
    if inp == "features":
        meta["n_features"] = n_features
    if "mask" in hs:
        meta["n_mask"] = n_mask
    meta.update(meta_extra or {})
    meta = {k: str(v) for k, v in meta.items()}
    ssmd_file.save(path, t, meta, dtype)
    return meta


# ------------------------------------------------------------- reference ----

# the elementwise functions and RMSNorm are the Mamba-1 reference's (tests/ref/mamba_ref.py)
from mamba_ref import rmsnorm, sigmoid, silu, softplus  # noqa: E402,F401


def causal_conv_silu(x, w, b, d_conv):
    """x {T, C}, w {C, d_conv} (tap d_conv-1 = newest), from a zero history."""
    T = x.shape[0]
    xp = np.concatenate([np.zeros((d_conv - 1, x.shape[1])), x], axis=0)
    out = np.zeros_like(x)
    for k in range(d_conv):
        out += xp[k:k + T] * w[:, k]
    return silu(out + b)


def layer_kinds(meta):
    n = int(meta["n_layer"])
    return [meta.get(f"layers.{i}.kind", meta["architecture"]) for i in range(n)]


def m2_geometry(meta):
    d_model = int(meta["d_model"])
    d_inner = int(meta.get("mamba2.d_inner", int(meta["expand"]) * d_model))
    P = int(meta.get("mamba2.head_dim", 64))
    G = int(meta.get("mamba2.n_groups", 1))
    N = int(meta.get("mamba2.d_state", meta["d_state"]))
    K = int(meta.get("mamba2.d_conv", meta["d_conv"]))
    eps = float(meta.get("mamba2.norm_eps", meta.get("norm_eps", "1e-5")))
    return d_inner, d_inner // P, P, G, N, K, eps


def norm_group_size(meta):
    d_inner, _, _, G, _, _, _ = m2_geometry(meta)
    return int(meta.get("mamba2.norm_group_size", d_inner // G))


def ssd_steps(S, x, dt, A, B, C, D):
    """Step (recurrent) form.  S {H, P, N} (updated copy returned), x {T, H, P},
    dt {T, H}, A {H}, B, C {T, G, N}, D {H}.  Returns y {T, H, P}, S."""
    T, H, P = x.shape
    G = B.shape[1]
    grp = np.arange(H) // (H // G)
    S = S.copy()
    y = np.empty_like(x)
    for t in range(T):
        Bh, Ch = B[t, grp], C[t, grp]                        # {H, N}
        S = np.exp(dt[t] * A)[:, None, None] * S + (dt[t][:, None] * x[t])[:, :, None] * Bh[:, None, :]
        y[t] = np.einsum("hpn,hn->hp", S, Ch) + D[:, None] * x[t]
    return y, S


def ssd_chunked(S, x, dt, A, B, C, D, chunk):
    """Chunked SSD form (arXiv:2405.21060 §6): within a chunk the quadratic
    (masked-attention-like) form, between chunks the state.  Same arguments
    and results as ssd_steps."""
    T, H, P = x.shape
    G = B.shape[1]
    grp = np.arange(H) // (H // G)
    S = S.copy()
    y = np.empty_like(x)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        L = t1 - t0
        a = np.cumsum(dt[t0:t1] * A, axis=0)                # {L, H}
        Bh, Ch = B[t0:t1][:, grp], C[t0:t1][:, grp]          # {L, H, N}
        seg = a[:, None, :] - a[None, :, :]                  # {t, s, H}
        mask = np.tril(np.ones((L, L), dtype=bool))
        Lmat = np.where(mask[:, :, None], np.exp(np.where(mask[:, :, None], seg, 0.0)), 0.0)
        CB = np.einsum("thn,shn->tsh", Ch, Bh)
        M = Lmat * CB * dt[t0:t1][None, :, :]                # {t, s, H}
        xc = x[t0:t1]
        y_in = np.einsum("tsh,shp->thp", M, xc)
        y_st = np.exp(a)[:, :, None] * np.einsum("hpn,thn->thp", S, Ch)
        y[t0:t1] = y_in + y_st + D[None, :, None] * xc
        w = np.exp(a[-1][None, :] - a) * dt[t0:t1]           # {s, H}
        S = np.exp(a[-1])[:, None, None] * S + np.einsum("sh,shp,shn->hpn", w, xc, Bh)
    return y, S


def mamba2_mixer(g, p, h, meta, chunk=None):
    """One Mamba-2 mixer over T frames from a zero state: h {T, d_model} -> {T, d_model}."""
    d_inner, H, P, G, N, K, eps = m2_geometry(meta)
    T = h.shape[0]
    zxbcdt = h @ g[p + "in_proj.weight"].T
    if p + "in_proj.bias" in g:
        zxbcdt = zxbcdt + g[p + "in_proj.bias"]
    conv_dim = d_inner + 2 * G * N
    z = zxbcdt[:, :d_inner]
    xBC = zxbcdt[:, d_inner:d_inner + conv_dim]
    dt = zxbcdt[:, d_inner + conv_dim:]
    xBC = causal_conv_silu(xBC, g[p + "conv1d.weight"][:, 0, :], g.get(p + "conv1d.bias", 0.0), K)
    x = xBC[:, :d_inner].reshape(T, H, P)
    B = xBC[:, d_inner:d_inner + G * N].reshape(T, G, N)
    C = xBC[:, d_inner + G * N:].reshape(T, G, N)
    dt = softplus(dt + g[p + "dt_bias"])
    A = -np.exp(g[p + "A_log"])
    S0 = np.zeros((H, P, N))
    if chunk:
        y, _ = ssd_chunked(S0, x, dt, A, B, C, g[p + "D"], chunk)
    else:
        y, _ = ssd_steps(S0, x, dt, A, B, C, g[p + "D"])
    y = y.reshape(T, d_inner) * silu(z)
    gs = norm_group_size(meta)
    y = np.concatenate([rmsnorm(y[:, k * gs:(k + 1) * gs], 1.0, eps) for k in range(d_inner // gs)],
                       axis=1)
    y = y * g[p + "norm.weight"]
    o = y @ g[p + "out_proj.weight"].T
    if p + "out_proj.bias" in g:
        o = o + g[p + "out_proj.bias"]
    return o


def mamba1_mixer(g, p, h, meta):
    """One Mamba-1 mixer (DESIGN.md §4) over T frames from a zero state."""
    d_model = int(meta["d_model"])
    d_inner = int(meta.get("d_inner", int(meta["expand"]) * d_model))
    N, K = int(meta["d_state"]), int(meta["d_conv"])
    dtr = meta.get("dt_rank", "auto")
    R = math.ceil(d_model / 16) if dtr == "auto" else int(dtr)
    T = h.shape[0]
    xz = h @ g[p + "in_proj.weight"].T
    if p + "in_proj.bias" in g:
        xz = xz + g[p + "in_proj.bias"]
    x, z = xz[:, :d_inner], xz[:, d_inner:]
    xc = causal_conv_silu(x, g[p + "conv1d.weight"][:, 0, :], g.get(p + "conv1d.bias", 0.0), K)
    dbc = xc @ g[p + "x_proj.weight"].T
    dt = softplus(dbc[:, :R] @ g[p + "dt_proj.weight"].T + g[p + "dt_proj.bias"])
    B, C = dbc[:, R:R + N], dbc[:, R + N:]
    A = -np.exp(g[p + "A_log"])
    s = np.zeros((d_inner, N))
    y = np.empty((T, d_inner))
    for t in range(T):
        s = np.exp(dt[t][:, None] * A) * s + (dt[t] * xc[t])[:, None] * B[t][None, :]
        y[t] = s @ C[t]
    y = (y + g[p + "D"] * xc) * silu(z)
    o = y @ g[p + "out_proj.weight"].T
    if p + "out_proj.bias" in g:
        o = o + g[p + "out_proj.bias"]
    return o


def reference(path, inputs, chunk=None):
    """One stream over inputs (tokens {T} or features {T, n_features}) in
    float64; rows in model_run's order (embedding, mask, vad, logits).
    chunk: run the Mamba-2 layers in the chunked SSD form."""
    t, meta = ssmd_file.load(path)
    g = {k: v.astype(np.float64) for k, v in t.items()}
    eps = float(meta["norm_eps"])
    hs = meta.get("heads", "").split(",")
    if meta["input"] == "tokens":
        r = g["backbone.embedding.weight"][np.asarray(inputs)]
    else:
        u = np.where(np.isfinite(inputs), inputs, 0.0).astype(np.float64)
        r = u @ g["frontend.proj.weight"].T + g["frontend.proj.bias"]
    for i, kind in enumerate(layer_kinds(meta)):
        h = rmsnorm(r, g[f"backbone.layers.{i}.norm.weight"], eps)
        p = f"backbone.layers.{i}.mixer."
        r = r + (mamba2_mixer(g, p, h, meta, chunk) if kind == "mamba2" else mamba1_mixer(g, p, h, meta))
    hf = rmsnorm(r, g["backbone.norm_f.weight"], eps)
    cols = [hf]
    if "mask" in hs:
        cols.append(sigmoid(hf @ g["head.mask.weight"].T + g["head.mask.bias"]))
    if "vad" in hs:
        cols.append(sigmoid(hf @ g["head.vad.weight"].T + g["head.vad.bias"]))
    if "lm" in hs:
        cols.append(hf @ g.get("lm_head.weight", g.get("backbone.embedding.weight")).T)
    return np.concatenate(cols, axis=1)


def head_slices(meta):
    d = int(meta["d_model"])
    hs = meta.get("heads", "").split(",")
    out, o = [("embedding", 0, d)], d
    for name, n in (("mask", int(meta.get("n_mask", 0))), ("vad", 1),
                    ("lm", int(meta.get("vocab_size", 0)))):
        if name in hs:
            out.append((name, o, o + n))
            o += n
    return out, o


def rel_err(a, ref, meta):
    """Worst over heads of max|a - ref| / max|ref| (normwise, per head)."""
    worst, name = 0.0, ""
    for h, lo, hi in head_slices(meta)[0]:
        e = np.max(np.abs(a[..., lo:hi] - ref[..., lo:hi])) / max(np.max(np.abs(ref[..., lo:hi])), 1e-30)
        if e > worst:
            worst, name = e, h
    return worst, name


# ---------------------------------------------------------------- driver ----

def run_c(helper, model, mode, arg, inputs, work, tag, extra=()):
    """inputs: tokens {T, B} int32 or features {T, B, n}.  Returns flat float32."""
    fin = os.path.join(work, tag + ".in")
    fout = os.path.join(work, tag + ".out")
    T = inputs.shape[0]
    inputs.astype("<i4" if inputs.dtype.kind in "iu" else "<f4").tofile(fin)
    res = subprocess.run([helper, model, mode, str(arg), str(T), fin, fout, *extra],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tag}: model_run failed: {res.stderr.strip()}")
    return np.fromfile(fout, dtype="<f4"), res.stdout.strip()


M2, M1 = "mamba2", "mamba1"
SHAPES = [
    # name, make_model kwargs (H = expand·d_model / head_dim)
    ("m2_h1_p1_g1_n1", dict(d_model=8, m2_d_inner=1, kinds=[M2, M2], head_dim=1, d_state=1)),
    ("m2_h3_p7_g1_n16", dict(d_model=21, expand=1, kinds=[M2, M2], head_dim=7, d_state=16)),
    ("m2_h17_p1_g1_n64", dict(d_model=16, m2_d_inner=17, kinds=[M2], head_dim=1, d_state=64,
                              d_conv=3, inp="tokens", heads="lm", vocab=13)),
    ("m2_h2_p64_g2_n128", dict(d_model=64, kinds=[M2, M2], head_dim=64, n_groups=2,
                               d_state=128, proj_bias=True)),
    ("m2_h6_p16_g2_n16_f16", dict(d_model=48, kinds=[M2, M2, M2], head_dim=16, n_groups=2,
                                  d_state=16, dtype="F16", dt_max=0.5)),
    ("m2_g2_fullnorm", dict(d_model=16, kinds=[M2], head_dim=8, n_groups=2, d_state=8,
                            meta_extra={"mamba2.norm_group_size": "32"})),
    ("mixed_m1_m2_m1", dict(d_model=32, kinds=[M1, M2, M1], head_dim=16, d_state=8,
                            m2_d_state=32, n_groups=2)),
    ("m2_h3_p64_g1_n16", dict(d_model=32, m2_d_inner=192, kinds=[M2], head_dim=64, d_state=16,
                              d_conv=2)),
    ("mixed_m2_m1_nobias", dict(d_model=24, kinds=[M2, M1], head_dim=12, d_state=4,
                                m2_d_state=16, conv_bias=False, inp="tokens", heads="lm,vad",
                                vocab=17, dtype="BF16")),
]


def make_inputs(meta, rng, T, B):
    if meta["input"] == "tokens":
        return rng.integers(0, int(meta["vocab_size"]), (T, B)).astype(np.int32)
    return rng.normal(0, 1, (T, B, int(meta["n_features"]))).astype(np.float32)


def cmd_check(helper, work):
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(2405)
    failures = []
    T, B = 150, 5
    # the reference's two forms agree (float64): chunked SSD vs steps
    path = os.path.join(work, "selfcheck.safetensors")
    meta = make_model(path, d_model=16, kinds=[M2, M1, M2], head_dim=4, n_groups=2, d_state=8, seed=1)
    inp = make_inputs(meta, rng, 37, 1)[:, 0]
    a, b = reference(path, inp), reference(path, inp, chunk=8)
    e_self = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    print(f"reference: chunked SSD (chunk 8) vs steps, float64: {e_self:.1e}  "
          f"{'ok' if e_self < 1e-12 else 'FAIL'}")
    if e_self >= 1e-12:
        failures.append("selfcheck")
    for i, (name, kw) in enumerate(SHAPES):
        path = os.path.join(work, name + ".safetensors")
        meta = make_model(path, seed=200 + i, **kw)
        _, n_out = head_slices(meta)
        inp = make_inputs(meta, rng, T, B)
        out_b, _ = run_c(helper, path, "step", B, inp, work, name + "_b")
        out_b = out_b.reshape(T, B, n_out)
        same = True       # batch invariance: each stream alone gives its bits in the batch
        for s in (0, B - 1):
            o1, _ = run_c(helper, path, "step", 1, inp[:, s:s + 1], work, name + f"_s{s}")
            same = same and o1.reshape(T, n_out).tobytes() == out_b[:, s].tobytes()
        refs = [reference(path, inp[:, s]) for s in range(B)]
        worst_ref, head_ref = max(rel_err(out_b[:, s].astype(np.float64), refs[s], meta)
                                  for s in range(B))
        worst_fw = 0.0    # chunked SSD forward in uneven chunks vs the steps
        fw_bits = True    # the default forward: the bits of the steps
        for chunk in (1, 7, T):  # T spans three SSD blocks (SSM_SSD_CHUNK 64)
            of, _ = run_c(helper, path, "forward", chunk, inp[:, :1], work, name + f"_f{chunk}")
            fw_bits = fw_bits and of.reshape(T, n_out).tobytes() == out_b[:, 0].tobytes()
            of, _ = run_c(helper, path, "forward", chunk, inp[:, :1], work, name + f"_s{chunk}",
                          ("ssd",))
            e, _ = rel_err(of.reshape(T, n_out).astype(np.float64),
                           out_b[:, 0].astype(np.float64), meta)
            worst_fw = max(worst_fw, e)
        orf, _ = run_c(helper, path, "step", B, inp, work, name + "_ref", ("ref",))
        orf = orf.reshape(T, B, n_out).astype(np.float64)
        worst_rk = max(rel_err(orf[:, s], refs[s], meta)[0] for s in range(B))
        off, _ = run_c(helper, path, "forward", 7, inp[:, :1], work, name + "_reff", ("ref",))
        e_rf, _ = rel_err(off.reshape(T, n_out).astype(np.float64), refs[0], meta)
        isa_same = True   # the ISA caps give the default's bits
        for isa in ("avx2", "scalar"):
            oi, _ = run_c(helper, path, "step", B, inp, work, name + "_" + isa, (isa,))
            isa_same = isa_same and oi.tobytes() == out_b.tobytes()
        tol = 1e-5
        ok = (same and worst_ref <= tol and worst_fw <= tol and worst_rk <= tol and e_rf <= tol
              and isa_same and fw_bits)
        print(f"{name:22s} {kw.get('dtype', 'F32'):4s} step-vs-numpy {worst_ref:.2e} ({head_ref})"
              f"  ref-kernels step {worst_rk:.2e} forward {e_rf:.2e}"
              f"  forward==step {'yes' if fw_bits else 'NO'}  SSD-forward-vs-step {worst_fw:.2e}"
              f"  batch{B}==single {'yes' if same else 'NO'}"
              f"  avx2==scalar==default {'yes' if isa_same else 'NO'}  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(name)
    print("error = max|c - ref| / max|ref| per head (worst head shown); tolerance 1e-5")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


def long_run(helper, work, path, meta, reference_fn, n_steps, seed, label, what):
    """n_steps single steps of the model at path in the C engine (helper) against
    reference_fn(path, inputs) in float64: all finite, worst relative error <= 1e-5,
    and no drift (the last 10 % no worse than 4 x the first 10 % + 1e-6).  Prints
    the figures; returns 0 or 1."""
    _, n_out = head_slices(meta)
    n_features = int(meta["n_features"])
    rng = np.random.default_rng(seed)
    tt = np.arange(n_steps)[:, None]
    inp = (rng.normal(0, 1, (n_steps, n_features)) + 2.0 * np.sin(tt * 2e-4 * (1 + np.arange(n_features)))
           ).astype(np.float32)
    out, info = run_c(helper, path, "step", 1, inp[:, None, :], work, label)
    out = out.reshape(n_steps, n_out).astype(np.float64)
    ref = reference_fn(path, inp)
    finite = bool(np.all(np.isfinite(out)))
    k = n_steps // 10
    e_first, _ = rel_err(out[:k], ref[:k], meta)
    e_last, _ = rel_err(out[-k:], ref[-k:], meta)
    e_all, h = rel_err(out, ref, meta)
    print(f"{n_steps} steps, {what} ({info}): all finite {finite}; worst error {e_all:.2e} ({h}); "
          f"first 10% {e_first:.2e}, last 10% {e_last:.2e} (no drift: last <= 4*first + 1e-6)")
    ok = finite and e_all <= 1e-5 and e_last <= 4 * e_first + 1e-6
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


def cmd_long(helper, work, n_steps):
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "long2.safetensors")
    meta = make_model(path, d_model=16, kinds=[M2, M1], head_dim=8, n_groups=2, d_state=16,
                      n_features=8, heads="mask,vad", n_mask=5, seed=7)
    return long_run(helper, work, path, meta, reference, n_steps, 99, "long2", "Mamba-2 + Mamba-1 stack")


# (metadata change, key the one-line error must name)
BAD = [
    ({"layers.1.kind": "mamba3"}, "layers.1.kind"),
    ({"layers.7.kind": "mamba1"}, "layers.7.kind"),          # 2 layers: names no layer
    ({"layers.-1.kind": "mamba1"}, "layers.-1.kind"),
    ({"layers.1.knd": "mamba1"}, "layers.1.knd"),
    ({"architecture": "transformer"}, "architecture"),
    ({"mamba2.head_dim": "5"}, "mamba2.head_dim"),           # 16 channels: 5 does not divide
    ({"mamba2.head_dim": "0"}, "mamba2.head_dim"),
    ({"mamba2.n_groups": "3"}, "mamba2.n_groups"),           # 4 heads: 3 does not divide
    ({"mamba2.d_state": "x"}, "mamba2.d_state"),
    ({"mamba2.norm_before_gate": "true"}, "mamba2.norm_before_gate"),
    ({"mamba2.norm_group_size": "3"}, "mamba2.norm_group_size"),
    ({"mamba2.d_state": "4"}, "in_proj.weight"),             # tensors then have the wrong shape
]


def cmd_bad(loader_check, work):
    """Malformed Mamba-2 metadata: loader_check exits 1 with one line naming the key and
    the status SSM_ERR_MODEL."""
    os.makedirs(work, exist_ok=True)
    failures = 0
    base = dict(d_model=8, kinds=[M2, M2], head_dim=4, n_groups=2, d_state=8)
    for k, (change, key) in enumerate(BAD):
        path = os.path.join(work, f"bad{k}.safetensors")
        make_model(path, seed=k, meta_extra=change, **base)
        res = subprocess.run([loader_check, path], capture_output=True, text=True)
        lines = res.stderr.strip().splitlines()
        # status SSM_ERR_MODEL ("invalid model", loader_check prints ssm_strerror), one line
        ok = (res.returncode == 1 and len(lines) == 1 and key in lines[0]
              and lines[0].endswith("(invalid model)"))
        print(f"{'ok  ' if ok else 'FAIL'} {change}: rc {res.returncode}: {res.stderr.strip()}")
        failures += not ok
    # and a truncated tensor list: a Mamba-2 layer without dt_bias
    path = os.path.join(work, "bad_missing.safetensors")
    meta = make_model(path, seed=9, **base)
    t, _ = ssmd_file.load(path)
    del t["backbone.layers.1.mixer.dt_bias"]
    ssmd_file.save(path, t, meta)
    res = subprocess.run([loader_check, path], capture_output=True, text=True)
    ok = (res.returncode == 1 and "layers.1.mixer.dt_bias: missing" in res.stderr
          and res.stderr.strip().endswith("(invalid model)"))
    print(f"{'ok  ' if ok else 'FAIL'} missing dt_bias: rc {res.returncode}: {res.stderr.strip()}")
    failures += not ok
    path = os.path.join(work, "good.safetensors")
    make_model(path, seed=10, **base)
    res = subprocess.run([loader_check, path], capture_output=True, text=True)
    ok = res.returncode == 0
    print(f"{'ok  ' if ok else 'FAIL'} the valid model loads: {res.stdout.strip()[:160]}")
    failures += not ok
    return 1 if failures else 0


def cmd_gen(work):
    """Models for test_model.c: a pure Mamba-2 stack and a mixed one."""
    os.makedirs(work, exist_ok=True)
    make_model(os.path.join(work, "m2.safetensors"), d_model=24, kinds=[M2, M2], head_dim=8,
               n_groups=3, d_state=16, n_features=6, heads="mask,vad", n_mask=5, seed=21)
    make_model(os.path.join(work, "mixed.safetensors"), d_model=24, kinds=[M1, M2], head_dim=12,
               d_state=8, m2_d_state=32, n_features=6, heads="mask,vad", n_mask=5, seed=22)
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3])
    if len(argv) >= 4 and argv[1] == "long":
        return cmd_long(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 100000)
    if len(argv) >= 4 and argv[1] == "bad":
        return cmd_bad(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "gen":
        rc = cmd_gen(argv[2])
        if len(argv) >= 4:
            open(argv[3], "w").close()
        return rc
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
