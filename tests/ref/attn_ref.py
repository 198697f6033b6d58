# SPDX-License-Identifier: MIT
"""Independent float64 numpy reference of sliding-window attention layers and
of hybrid stacks that mix them with Mamba-1 and Mamba-2 layers (and gated MLP
blocks), written from the equations, and the tests that hold ssmd's C model
to it.

Source of the math: causal softmax attention (Vaswani et al. 2017,
arXiv:1706.03762) with grouped KV heads (GQA, arXiv:2305.13245) and rotary
position embedding (RoPE, Su et al. 2021, arXiv:2104.09864), laid out as
state-spaces/mamba mamba_ssm/modules/mha.py `MHA` lays it out, and the hybrid
block of mamba_ssm/models/mixer_seq_simple.py `create_block` (GatedMLP when
d_intermediate > 0).  What ssmd adds is the window: a query at frame t sees
the frames max(0, t - W + 1) .. t only.

One attention layer, for frames t (r: the residual, D = d_model):
  h = RMSNorm(r) * norm
  [q | k | v | up | gate] = W_in h (+ b_in)   q {H, P}, k, v {Hkv, P}, up, gate {mlp_dim/2}
  q_t, k_t <- RoPE at position t on the first rot_dim channels of each head:
     angle_i = t * base^(-2i/rot_dim);  pairs (i, i + rot_dim/2) or (2i, 2i+1) (interleaved)
     x_i' = x_i cos - x_pair sin,  x_pair' = x_pair cos + x_i sin
  per query head h (KV head g = h // (H / Hkv)), window J_t = [max(0, t-W+1), t]:
     y_t,h = softmax_j(scale q_t,h . k_j,g) . v_j,g      scale = 1/sqrt(P) by default
  y_t = [y_t | up * silu(gate)];  r <- r + W_out y (+ b_out)
Gated MLP block (every layer when d_intermediate > 0), after the mixer:
  [a | b] = fc1 RMSNorm(r) * norm2;  r <- r + fc2 (a * silu(b))

Usage:
  attn_ref.py check  MODEL_RUN WORKDIR        step/forward/batch/snapshot tests vs float64
  attn_ref.py long   MODEL_RUN WORKDIR [N]    N steps (default 1e5): no drift
  attn_ref.py bad    LOADER_CHECK WORKDIR     malformed attention metadata: one line each
  attn_ref.py gen    WORKDIR [STAMP]          models for tests/model/test_model.c
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
import mamba2_ref  # noqa: E402
from mamba_ref import rmsnorm, sigmoid, silu  # noqa: E402
from mamba2_ref import head_slices, make_inputs, rel_err, run_c  # noqa: E402

AT, M1, M2 = "attention", "mamba1", "mamba2"


# ---------------------------------------------------------------- models ----

def make_model(path, d_model, kinds, attn=None, d_intermediate=0, dtype="F32", seed=0, **kw):
    """Random model whose layer i is kinds[i] (mamba1, mamba2 or attention).
    attn: num_heads, num_heads_kv, head_dim, window, rotary_emb_dim,
    rotary_emb_interleaved, rotary_emb_base, qkv_proj_bias, out_proj_bias,
    mlp_dim, softmax_scale (missing: the format's defaults; window None: no
    key).  kw go to mamba2_ref.make_model (the Mamba layers, heads, input).
    Returns the metadata (strings)."""
    attn = dict(attn or {})
    rng = np.random.default_rng(seed + 1000)
    # the Mamba layers, heads and input from the Mamba-2 reference's generator;
    # an attention layer is generated there as a Mamba-1 placeholder and replaced
    placeholder = [M1 if k == AT else k for k in kinds]
    meta = mamba2_ref.make_model(path, d_model=d_model, kinds=placeholder, seed=seed, **kw)
    t, _ = ssmd_file.load(path)
    t = {k: v.astype(np.float64) for k, v in t.items()}
    n_layer = len(kinds)

    def lin(o, i, scale=1.0):
        return rng.uniform(-1, 1, (o, i)) * scale / math.sqrt(i)

    H = attn.get("num_heads", 2)
    Hkv = attn.get("num_heads_kv", H)
    P = attn.get("head_dim", d_model // H)
    mlp = attn.get("mlp_dim", 0)
    qkv_bias = attn.get("qkv_proj_bias", True)
    out_bias = attn.get("out_proj_bias", True)
    for i, kind in enumerate(kinds):
        p = f"backbone.layers.{i}."
        if kind == AT:
            for k in [k for k in t if k.startswith(p + "mixer.")]:
                del t[k]
            n_in = (H + 2 * Hkv) * P + mlp
            t[p + "mixer.in_proj.weight"] = lin(n_in, d_model, 2.0)
            if qkv_bias:
                t[p + "mixer.in_proj.bias"] = rng.uniform(-0.2, 0.2, n_in)
            t[p + "mixer.out_proj.weight"] = lin(d_model, H * P + mlp // 2, 1.0 / math.sqrt(n_layer))
            if out_bias:
                t[p + "mixer.out_proj.bias"] = rng.uniform(-0.1, 0.1, d_model)
        if d_intermediate:
            t[p + "norm2.weight"] = rng.uniform(0.8, 1.2, d_model)
            t[p + "mlp.fc1.weight"] = lin(2 * d_intermediate, d_model)
            t[p + "mlp.fc2.weight"] = lin(d_model, d_intermediate, 1.0 / math.sqrt(n_layer))
    meta = {k: v for k, v in meta.items() if not k.startswith("layers.")}
    meta["architecture"] = kinds[0]
    for i, kind in enumerate(kinds):
        if kind != kinds[0]:
            meta[f"layers.{i}.kind"] = kind
    if AT in kinds:
        keys = {"num_heads": H, "num_heads_kv": attn.get("num_heads_kv"),
                "head_dim": attn.get("head_dim"), "window": attn.get("window"),
                "rotary_emb_dim": attn.get("rotary_emb_dim"),
                "rotary_emb_base": attn.get("rotary_emb_base"), "mlp_dim": attn.get("mlp_dim"),
                "softmax_scale": attn.get("softmax_scale")}
        for k, v in keys.items():
            if v is not None:
                meta["attention." + k] = str(v)
        if "rotary_emb_interleaved" in attn:
            meta["attention.rotary_emb_interleaved"] = "true" if attn["rotary_emb_interleaved"] else "false"
        if not qkv_bias:
            meta["attention.qkv_proj_bias"] = "false"
        if not out_bias:
            meta["attention.out_proj_bias"] = "false"
    if d_intermediate:
        meta["d_intermediate"] = str(d_intermediate)
    meta.update({k: str(v) for k, v in (kw.get("meta_extra") or {}).items()})
    meta = {k: str(v) for k, v in meta.items()}
    ssmd_file.save(path, t, meta, dtype)
    return meta


# ------------------------------------------------------------- reference ----

def attn_geometry(meta):
    d_model = int(meta["d_model"])
    H = int(meta["attention.num_heads"])
    Hkv = int(meta.get("attention.num_heads_kv", H))
    P = int(meta.get("attention.head_dim", d_model // H))
    W = int(meta["attention.window"])
    rd = int(meta.get("attention.rotary_emb_dim", 0))
    inter = meta.get("attention.rotary_emb_interleaved", "false") == "true"
    base = float(meta.get("attention.rotary_emb_base", 10000.0))
    scale = float(meta.get("attention.softmax_scale", 1.0 / math.sqrt(P)))
    mlp = int(meta.get("attention.mlp_dim", 0))
    return H, Hkv, P, W, rd, inter, base, scale, mlp


def rope(x, pos, rd, inter, base):
    """x {T, heads, P} at positions pos {T}: the first rd channels of each head rotated."""
    if rd == 0:
        return x
    inv = base ** (-np.arange(0, rd, 2, dtype=np.float64) / rd)      # {rd/2}
    ang = pos[:, None].astype(np.float64) * inv[None, :]             # {T, rd/2}
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = x.copy()
    if inter:
        x1, x2 = x[..., 0:rd:2], x[..., 1:rd:2]
        out[..., 0:rd:2] = x1 * c - x2 * s
        out[..., 1:rd:2] = x2 * c + x1 * s
    else:
        h = rd // 2
        x1, x2 = x[..., :h], x[..., h:rd]
        out[..., :h] = x1 * c - x2 * s
        out[..., h:rd] = x2 * c + x1 * s
    return out


def attention_mixer(g, p, h, meta, pos0=0):
    """One attention mixer over T frames from an empty ring: h {T, d_model} -> {T, d_model}."""
    H, Hkv, P, W, rd, inter, base, scale, mlp = attn_geometry(meta)
    T = h.shape[0]
    qkv = h @ g[p + "in_proj.weight"].T
    if p + "in_proj.bias" in g:
        qkv = qkv + g[p + "in_proj.bias"]
    nq, nkv = H * P, Hkv * P
    pos = pos0 + np.arange(T)
    q = rope(qkv[:, :nq].reshape(T, H, P), pos, rd, inter, base)
    k = rope(qkv[:, nq:nq + nkv].reshape(T, Hkv, P), pos, rd, inter, base)
    v = qkv[:, nq + nkv:nq + 2 * nkv].reshape(T, Hkv, P)
    k = np.repeat(k, H // Hkv, axis=1)      # query head h reads KV head h // (H / Hkv)
    v = np.repeat(v, H // Hkv, axis=1)
    y = np.empty((T, H, P))
    for t in range(T):
        lo = max(0, t - W + 1)
        s = np.einsum("hp,jhp->hj", q[t], k[lo:t + 1]) * scale
        e = np.exp(s - s.max(axis=1, keepdims=True))
        y[t] = np.einsum("hj,jhp->hp", e / e.sum(axis=1, keepdims=True), v[lo:t + 1])
    y = y.reshape(T, nq)
    if mlp:
        up = qkv[:, nq + 2 * nkv:nq + 2 * nkv + mlp // 2]
        gate = qkv[:, nq + 2 * nkv + mlp // 2:]
        y = np.concatenate([y, up * silu(gate)], axis=1)
    o = y @ g[p + "out_proj.weight"].T
    if p + "out_proj.bias" in g:
        o = o + g[p + "out_proj.bias"]
    return o


def layer_kinds(meta):
    return [meta.get(f"layers.{i}.kind", meta["architecture"]) for i in range(int(meta["n_layer"]))]


def reference(path, inputs):
    """One stream over inputs (tokens {T} or features {T, n_features}) in
    float64; rows in model_run's order (embedding, mask, vad, logits)."""
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
        pre = f"backbone.layers.{i}."
        h = rmsnorm(r, g[pre + "norm.weight"], eps)
        p = pre + "mixer."
        if kind == AT:
            r = r + attention_mixer(g, p, h, meta)
        elif kind == M2:
            r = r + mamba2_ref.mamba2_mixer(g, p, h, meta)
        else:
            r = r + mamba2_ref.mamba1_mixer(g, p, h, meta)
        if pre + "mlp.fc1.weight" in g:
            dh = int(meta["d_intermediate"])
            ab = rmsnorm(r, g[pre + "norm2.weight"], eps) @ g[pre + "mlp.fc1.weight"].T
            r = r + (ab[:, :dh] * silu(ab[:, dh:])) @ g[pre + "mlp.fc2.weight"].T
    hf = rmsnorm(r, g["backbone.norm_f.weight"], eps)
    cols = [hf]
    if "mask" in hs:
        cols.append(sigmoid(hf @ g["head.mask.weight"].T + g["head.mask.bias"]))
    if "vad" in hs:
        cols.append(sigmoid(hf @ g["head.vad.weight"].T + g["head.vad.bias"]))
    if "lm" in hs:
        cols.append(hf @ g.get("lm_head.weight", g.get("backbone.embedding.weight")).T)
    return np.concatenate(cols, axis=1)


def state_bytes(meta):
    """ssm_state_bytes from the metadata (docs/model-format.md)."""
    d_model = int(meta["d_model"])
    total = 64
    for kind in layer_kinds(meta):
        if kind == AT:
            H, Hkv, P, W, *_ = attn_geometry(meta)
            total += (2 * W * Hkv * P + 2) * 4
        elif kind == M2:
            d_inner, H2, P2, G, N, K, _ = mamba2_ref.m2_geometry(meta)
            total += ((d_inner + 2 * G * N) * K + d_inner * N) * 4
        else:
            di = int(meta.get("d_inner", int(meta["expand"]) * d_model))
            total += di * (int(meta["d_conv"]) + int(meta["d_state"])) * 4
    return total


# ---------------------------------------------------------------- driver ----

def A(**kw):
    return kw


SHAPES = [
    # name, make_model kwargs; T = 150 frames, 5 streams
    ("at_h1_p1_w1", dict(d_model=8, kinds=[AT, AT], attn=A(num_heads=1, head_dim=1, window=1))),
    ("at_h3_p7_w3_rope6", dict(d_model=21, kinds=[AT, AT],
                               attn=A(num_heads=3, head_dim=7, window=3, rotary_emb_dim=6))),
    ("at_h6_kv3_p64_w64_inter", dict(d_model=32, kinds=[AT],
                                     attn=A(num_heads=6, num_heads_kv=3, head_dim=64, window=64,
                                            rotary_emb_dim=32, rotary_emb_interleaved=True))),
    ("at_h5_p7_w64_nobias", dict(d_model=16, kinds=[AT, AT],
                                 attn=A(num_heads=5, head_dim=7, window=64, rotary_emb_dim=4,
                                        qkv_proj_bias=False, out_proj_bias=False))),
    ("at_h10_kv5_w200_tokens_f16", dict(d_model=20, kinds=[AT, AT], inp="tokens", heads="lm",
                                        vocab=13, dtype="F16",
                                        attn=A(num_heads=10, num_heads_kv=5, head_dim=4,
                                               window=200, rotary_emb_dim=4,
                                               rotary_emb_base=500.0))),
    ("at_h2_kv1_mlpdim_dint", dict(d_model=12, kinds=[AT, AT], d_intermediate=24,
                                   attn=A(num_heads=2, num_heads_kv=1, head_dim=6, window=5,
                                          mlp_dim=10, softmax_scale=0.3, rotary_emb_dim=2))),
    ("mixed_m1_m2_at_dint", dict(d_model=32, kinds=[M1, M2, AT], head_dim=16, d_state=8,
                                 m2_d_state=16, n_groups=2, d_intermediate=40,
                                 attn=A(num_heads=4, num_heads_kv=2, window=16,
                                        rotary_emb_dim=8))),
    ("mixed_at_m1_at_m2_bf16", dict(d_model=24, kinds=[AT, M1, AT, M2], head_dim=12, d_state=4,
                                    dtype="BF16", inp="tokens", heads="lm,vad", vocab=17,
                                    attn=A(num_heads=3, num_heads_kv=1, window=7,
                                           rotary_emb_dim=8, rotary_emb_interleaved=True))),
]


def cmd_check(helper, work):
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(1706)
    failures = []
    T, B = 150, 5
    # the reference's own consistency: a window longer than the stream is full causal attention,
    # and RoPE leaves q.k depending on the position difference only
    x = rng.normal(size=(4, 2, 8))
    a = rope(x, np.array([3, 5, 7, 9]), 6, False, 10000.0)
    b = rope(x, np.array([103, 105, 107, 109]), 6, False, 10000.0)
    e_rel = abs(np.einsum("p,p->", a[0, 0], a[2, 1]) - np.einsum("p,p->", b[0, 0], b[2, 1]))
    print(f"reference: RoPE q.k at positions (3, 7) vs (103, 107): difference {e_rel:.1e}  "
          f"{'ok' if e_rel < 1e-12 else 'FAIL'}")
    if e_rel >= 1e-12:
        failures.append("rope-relative")
    for i, (name, kw) in enumerate(SHAPES):
        path = os.path.join(work, name + ".safetensors")
        meta = make_model(path, seed=300 + i, **kw)
        _, n_out = head_slices(meta)
        inp = make_inputs(meta, rng, T, B)
        out_b, info = run_c(helper, path, "step", B, inp, work, name + "_b")
        out_b = out_b.reshape(T, B, n_out)
        sb = int(info.split("state_bytes=")[1].split()[0])
        sb_ok = sb == state_bytes(meta)
        same = True       # batch invariance: each stream alone gives its bits in the batch
        for s in (0, B - 1):
            o1, _ = run_c(helper, path, "step", 1, inp[:, s:s + 1], work, name + f"_s{s}")
            same = same and o1.reshape(T, n_out).tobytes() == out_b[:, s].tobytes()
        refs = [reference(path, inp[:, s]) for s in range(B)]
        worst_ref, head_ref = max(rel_err(out_b[:, s].astype(np.float64), refs[s], meta)
                                  for s in range(B))
        fw_bits = True    # the forward in uneven chunks: the bits of the steps
        for chunk in (1, 7, T):
            of, _ = run_c(helper, path, "forward", chunk, inp[:, :1], work, name + f"_f{chunk}")
            fw_bits = fw_bits and of.reshape(T, n_out).tobytes() == out_b[:, 0].tobytes()
        # snapshot -> restore into a new state -> continue == uninterrupted (step and forward)
        snap_k = 70
        os_, _ = run_c(helper, path, "step", B, inp, work, name + "_snap", (f"snap={snap_k}",))
        snap_ok = os_.tobytes() == out_b.tobytes()
        of, _ = run_c(helper, path, "forward", 7, inp[:, :1], work, name + "_fsnap", ("snap=70",))
        snap_ok = snap_ok and of.reshape(T, n_out).tobytes() == out_b[:, 0].tobytes()
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
        ok = (same and worst_ref <= tol and worst_rk <= tol and e_rf <= tol and isa_same
              and fw_bits and snap_ok and sb_ok)
        print(f"{name:28s} {kw.get('dtype', 'F32'):4s} step-vs-numpy {worst_ref:.2e} ({head_ref})"
              f"  ref-kernels step {worst_rk:.2e} forward {e_rf:.2e}"
              f"  forward==step {'yes' if fw_bits else 'NO'}"
              f"  batch{B}==single {'yes' if same else 'NO'}"
              f"  snapshot@{snap_k}==uninterrupted {'yes' if snap_ok else 'NO'}"
              f"  avx2==scalar==default {'yes' if isa_same else 'NO'}"
              f"  state_bytes {sb}{'' if sb_ok else ' (expected %d)' % state_bytes(meta)}"
              f"  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(name)
    print("error = max|c - ref| / max|ref| per head (worst head shown); tolerance 1e-5")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


def cmd_long(helper, work, n_steps):
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "long_attn.safetensors")
    meta = make_model(path, d_model=16, kinds=[AT, M1, M2], head_dim=8, n_groups=2, d_state=8,
                      n_features=8, heads="mask,vad", n_mask=5, seed=11, d_intermediate=16,
                      attn=A(num_heads=4, num_heads_kv=2, window=24, rotary_emb_dim=4))
    return mamba2_ref.long_run(helper, work, path, meta, reference, n_steps, 98, "long_attn",
                               "attention (window 24, RoPE) + Mamba-1 + Mamba-2 stack with MLPs")


# (metadata change, key the one-line error must name)
BAD = [
    ({"attention.window": None}, "attention.window"),   # missing: constant memory
    ({"attention.window": "0"}, "attention.window"),
    ({"attention.num_heads_kv": "3"}, "attention.num_heads_kv"),   # 4 heads
    ({"attention.rotary_emb_dim": "5"}, "attention.rotary_emb_dim"),
    ({"attention.rotary_emb_dim": "10"}, "attention.rotary_emb_dim"),   # head_dim 8
    ({"attention.rotary_emb_base": "0"}, "attention.rotary_emb_base"),
    ({"attention.rotary_emb_interleaved": "yes"}, "attention.rotary_emb_interleaved"),
    ({"attention.softmax_scale": "-1"}, "attention.softmax_scale"),
    ({"attention.mlp_dim": "3"}, "attention.mlp_dim"),
    ({"attention.num_heads": "3", "attention.head_dim": None}, "attention.head_dim"),
    ({"attention.qkv_proj_bias": "false"}, "attention.qkv_proj_bias"),   # the bias is present
    ({"attention.head_dim": "4"}, "in_proj.weight"),   # tensors then have the wrong shape
    ({"layers.1.kind": "attn"}, "layers.1.kind"),
    ({"d_intermediate": "x"}, "d_intermediate"),
    ({"d_intermediate": "8"}, "norm2.weight"),           # MLP tensors missing
]


def cmd_bad(loader_check, work):
    """Malformed attention metadata: loader_check exits 1 with one line naming the key
    and the status SSM_ERR_MODEL."""
    os.makedirs(work, exist_ok=True)
    failures = 0
    base = dict(d_model=16, kinds=[M1, AT], attn=A(num_heads=4, head_dim=8, window=8,
                                                    rotary_emb_dim=4))
    for k, (change, key) in enumerate(BAD):
        path = os.path.join(work, f"bad{k}.safetensors")
        make_model(path, seed=k, **base)
        t, meta = ssmd_file.load(path)
        for mk, mv in change.items():
            if mv is None:
                meta.pop(mk, None)
            else:
                meta[mk] = mv
        ssmd_file.save(path, t, meta)
        res = subprocess.run([loader_check, path], capture_output=True, text=True)
        lines = res.stderr.strip().splitlines()
        ok = (res.returncode == 1 and len(lines) == 1 and key in lines[0]
              and lines[0].endswith("(invalid model)"))
        if change == {"attention.window": None}:   # says why, and which key sets the window
            ok = ok and "constant" in lines[0] and "set attention.window" in lines[0]
        print(f"{'ok  ' if ok else 'FAIL'} {change}: rc {res.returncode}: {res.stderr.strip()}")
        failures += not ok
    path = os.path.join(work, "bad_missing.safetensors")
    make_model(path, seed=20, d_intermediate=8, **base)
    t, meta = ssmd_file.load(path)
    del t["backbone.layers.1.mlp.fc2.weight"]
    ssmd_file.save(path, t, meta)
    res = subprocess.run([loader_check, path], capture_output=True, text=True)
    ok = (res.returncode == 1 and "layers.1.mlp.fc2.weight: missing" in res.stderr
          and res.stderr.strip().endswith("(invalid model)"))
    print(f"{'ok  ' if ok else 'FAIL'} missing mlp.fc2: rc {res.returncode}: {res.stderr.strip()}")
    failures += not ok
    path = os.path.join(work, "good.safetensors")
    make_model(path, seed=21, d_intermediate=8, **base)
    res = subprocess.run([loader_check, path], capture_output=True, text=True)
    ok = res.returncode == 0
    print(f"{'ok  ' if ok else 'FAIL'} the valid model loads: {res.stdout.strip()[:160]}")
    failures += not ok
    return 1 if failures else 0


def cmd_gen(work):
    """Models for tests/model/test_model.c (d_model 24, 6 features, mask {5} +
    vad like its other models): attn.safetensors, two attention layers (4
    heads, 2 KV heads of 6, window 8, RoPE 4); hybrid.safetensors, Mamba-1 +
    attention (3 heads, 1 KV head of 8, window 5) + Mamba-2 (4 heads of 12,
    1 group, d_state 16) with gated MLPs (d_intermediate 32)."""
    os.makedirs(work, exist_ok=True)
    make_model(os.path.join(work, "attn.safetensors"), d_model=24, kinds=[AT, AT], n_features=6,
               heads="mask,vad", n_mask=5, seed=31,
               attn=A(num_heads=4, num_heads_kv=2, head_dim=6, window=8, rotary_emb_dim=4))
    make_model(os.path.join(work, "hybrid.safetensors"), d_model=24, kinds=[M1, AT, M2],
               head_dim=12, d_state=8, m2_d_state=16, n_groups=1, n_features=6, heads="mask,vad",
               n_mask=5, seed=32, d_intermediate=32,
               attn=A(num_heads=3, num_heads_kv=1, head_dim=8, window=5, rotary_emb_dim=4))
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "gen":
        rc = cmd_gen(argv[2])
        if len(argv) >= 4:
            open(argv[3], "w").close()
        return rc
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3])
    if len(argv) >= 4 and argv[1] == "long":
        return cmd_long(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 100000)
    if len(argv) >= 4 and argv[1] == "bad":
        return cmd_bad(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
