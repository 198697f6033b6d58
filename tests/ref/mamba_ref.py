# SPDX-License-Identifier: MIT
"""Independent float64 numpy reference of the Mamba-1 model (DESIGN.md §4),
written from the equations, and the tests that hold ssmd's C model to it.

Equations (mamba_ssm modules/mamba_simple.py Mamba.step):
  r = E[token]  or  W_f u + b_f                         (input adapter)
  per layer:  h = r / sqrt(mean(r^2) + eps) * norm
              [x | z] = W_in h (+ b_in)
              conv window (oldest first) of x;  x = silu(sum_k win_k w_k + b_conv)
              [d | B | C] = W_x x ;  dt = softplus(W_dt d + b_dt)  (v > 20 -> v)
              dA = exp(max(dt A, dA_min));  s = dA * s + (dt x) B^T
              y = s C + D x ;  y = y * silu(z) ;  r = r + W_out y (+ b_out)
  h_f = RMSNorm(r) * norm_f;  mask = sigmoid(W_m h_f + b_m), vad = sigmoid(w_v h_f + b_v),
  logits = W_lm h_f (tied to E when lm_head is absent), embedding = h_f.

Usage (run through tests/ref/run_ref.sh):
  mamba_ref.py check MODEL_RUN WORKDIR    step/forward/batch tests on random models
  mamba_ref.py long  MODEL_RUN WORKDIR [N] 100k steps: no drift, no non-finite value
  mamba_ref.py gen   WORKDIR              models for the C tests (test_model.c)
"""
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssmd_file  # noqa: E402


# ---------------------------------------------------------------- models ----

def make_model(path, d_model, n_layer, d_state, dt_rank="auto", d_conv=4, expand=2,
               inp="features", n_features=13, vocab=11, heads="mask,vad", n_mask=9,
               dtype="F32", seed=0, proj_bias=False, delta_A_min=None, tie=False, mask_bands=0):
    """Random model initialised the way mamba_ssm does; returns the metadata.  mask_bands B > 0:
    a banded mask head (head.mask.weight {B, d_model}, head.mask.interp {n_mask, B}: each output
    interpolates one to three bands, one output none)."""
    rng = np.random.default_rng(seed)
    d_inner = expand * d_model
    R = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)

    def lin(o, i, scale=1.0):
        return rng.uniform(-1, 1, (o, i)) * scale / math.sqrt(i)

    t = {"backbone.norm_f.weight": rng.uniform(0.8, 1.2, d_model)}
    if inp == "tokens":
        t["backbone.embedding.weight"] = rng.normal(0, 1, (vocab, d_model))
    else:
        t["frontend.proj.weight"] = lin(d_model, n_features)
        t["frontend.proj.bias"] = rng.uniform(-0.1, 0.1, d_model)
    hs = heads.split(",") if heads else []
    if "mask" in hs and mask_bands:
        t["head.mask.weight"] = lin(mask_bands, d_model)
        t["head.mask.bias"] = rng.uniform(-1, 1, mask_bands)
        E = np.zeros((n_mask, mask_bands))
        for k in range(n_mask - 1):
            j = int(rng.integers(0, mask_bands))
            for jj in range(j, min(mask_bands, j + 1 + k % 3)):
                E[k, jj] = rng.uniform(0.1, 1.0)
        t["head.mask.interp"] = E
    elif "mask" in hs:
        t["head.mask.weight"] = lin(n_mask, d_model)
        t["head.mask.bias"] = rng.uniform(-1, 1, n_mask)
    if "vad" in hs:
        t["head.vad.weight"] = lin(1, d_model)
        t["head.vad.bias"] = rng.uniform(-1, 1, 1)
    if "lm" in hs and not tie:
        t["lm_head.weight"] = lin(vocab, d_model)
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(1e-1), d_inner))
        t[p + "norm.weight"] = rng.uniform(0.8, 1.2, d_model)
        t[p + "mixer.in_proj.weight"] = lin(2 * d_inner, d_model)
        t[p + "mixer.conv1d.weight"] = rng.uniform(-1, 1, (d_inner, 1, d_conv)) / math.sqrt(d_conv)
        t[p + "mixer.conv1d.bias"] = rng.uniform(-0.1, 0.1, d_inner)
        t[p + "mixer.x_proj.weight"] = lin(R + 2 * d_state, d_inner)
        t[p + "mixer.dt_proj.weight"] = lin(d_inner, R, R ** -0.5)
        t[p + "mixer.dt_proj.bias"] = dt + np.log(-np.expm1(-dt))  # softplus^-1(dt)
        t[p + "mixer.A_log"] = np.log(np.tile(np.arange(1, d_state + 1, dtype=np.float64),
                                              (d_inner, 1)))
        t[p + "mixer.D"] = rng.uniform(0.5, 1.5, d_inner)
        t[p + "mixer.out_proj.weight"] = lin(d_model, d_inner, 1.0 / math.sqrt(n_layer))
        if proj_bias:
            t[p + "mixer.in_proj.bias"] = rng.uniform(-0.1, 0.1, 2 * d_inner)
            t[p + "mixer.out_proj.bias"] = rng.uniform(-0.1, 0.1, d_model)
    meta = {"ssmd.format": "1", "architecture": "mamba1", "d_model": d_model,
            "n_layer": n_layer, "d_state": d_state, "d_conv": d_conv, "expand": expand,
            "dt_rank": dt_rank, "norm": "rmsnorm", "norm_eps": "1e-5", "input": inp,
            "heads": heads}
    if inp == "tokens" or "lm" in hs:
        meta["vocab_size"] = vocab
    if inp == "features":
        meta["n_features"] = n_features
    if "mask" in hs:
        meta["n_mask"] = n_mask
    if proj_bias:
        meta["proj_bias"] = "true"
    if delta_A_min is not None:
        meta["delta_A_min"] = repr(float(delta_A_min))
    ssmd_file.save(path, t, meta, dtype)
    return meta


# ------------------------------------------------------------- reference ----

def softplus(v):
    return np.where(v > 20.0, v, np.log1p(np.exp(np.minimum(v, 20.0))))


def silu(v):
    return v / (1.0 + np.exp(-v))


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def reference(path, inputs):
    """Runs one stream over inputs (tokens {T} or features {T, n_features}) in
    float64, layer by layer: projections for all T at once, only the conv and
    the scan walk time.  Returns the output rows {T, n_out} in model_run's
    order (embedding, mask, vad, logits)."""
    t, meta = ssmd_file.load(path)
    g = {k: v.astype(np.float64) for k, v in t.items()}
    d_model = int(meta["d_model"])
    n_layer = int(meta["n_layer"])
    d_state = int(meta["d_state"])
    d_conv = int(meta["d_conv"])
    d_inner = int(meta["expand"]) * d_model
    R = math.ceil(d_model / 16) if meta["dt_rank"] == "auto" else int(meta["dt_rank"])
    eps = float(meta["norm_eps"])
    dA_min = float(meta.get("delta_A_min", "-inf"))
    hs = meta.get("heads", "").split(",")
    T = len(inputs)
    if meta["input"] == "tokens":
        r = g["backbone.embedding.weight"][np.asarray(inputs)]
    else:
        u = np.where(np.isfinite(inputs), inputs, 0.0).astype(np.float64)
        r = u @ g["frontend.proj.weight"].T + g["frontend.proj.bias"]
    for i in range(n_layer):
        p = f"backbone.layers.{i}.mixer."
        h = rmsnorm(r, g[f"backbone.layers.{i}.norm.weight"], eps)
        xz = h @ g[p + "in_proj.weight"].T
        if p + "in_proj.bias" in g:
            xz = xz + g[p + "in_proj.bias"]
        x, z = xz[:, :d_inner], xz[:, d_inner:]
        w = g[p + "conv1d.weight"][:, 0, :]            # {d_inner, d_conv}, tap d_conv-1 newest
        xp = np.concatenate([np.zeros((d_conv - 1, d_inner)), x], axis=0)
        xc = np.zeros_like(x)
        for k in range(d_conv):                          # causal conv as shifted sums
            xc += xp[k:k + T] * w[:, k]
        xc = silu(xc + g.get(p + "conv1d.bias", 0.0))
        dbc = xc @ g[p + "x_proj.weight"].T
        delta, B, C = dbc[:, :R], dbc[:, R:R + d_state], dbc[:, R + d_state:]
        dt = softplus(delta @ g[p + "dt_proj.weight"].T + g[p + "dt_proj.bias"])
        A = -np.exp(g[p + "A_log"])
        s = np.zeros((d_inner, d_state))
        y = np.empty((T, d_inner))
        for t0 in range(0, T, 2048):                    # blocks bound the memory
            t1 = min(T, t0 + 2048)
            dA = np.exp(np.maximum(dt[t0:t1, :, None] * A[None], dA_min))  # {t, d_inner, d_state}
            dBx = (dt[t0:t1] * xc[t0:t1])[:, :, None] * B[t0:t1, None, :]
            for k in range(t1 - t0):
                s = dA[k] * s + dBx[k]
                y[t0 + k] = s @ C[t0 + k]
        y = (y + g[p + "D"] * xc) * silu(z)
        o = y @ g[p + "out_proj.weight"].T
        if p + "out_proj.bias" in g:
            o = o + g[p + "out_proj.bias"]
        r = r + o
    hf = rmsnorm(r, g["backbone.norm_f.weight"], eps)
    cols = [hf]
    if "mask" in hs:
        m = hf @ g["head.mask.weight"].T + g["head.mask.bias"]
        if "head.mask.interp" in g:
            m = m @ g["head.mask.interp"].T
        cols.append(sigmoid(m))
    if "vad" in hs:
        cols.append(sigmoid(hf @ g["head.vad.weight"].T + g["head.vad.bias"]))
    if "lm" in hs:
        cols.append(hf @ g.get("lm_head.weight", g.get("backbone.embedding.weight")).T)
    return np.concatenate(cols, axis=1)


def head_slices(meta):
    d = int(meta["d_model"])
    hs = meta.get("heads", "").split(",")
    out = [("embedding", 0, d)]
    o = d
    if "mask" in hs:
        out.append(("mask", o, o + int(meta["n_mask"])))
        o += int(meta["n_mask"])
    if "vad" in hs:
        out.append(("vad", o, o + 1))
        o += 1
    if "lm" in hs:
        out.append(("logits", o, o + int(meta["vocab_size"])))
        o += int(meta["vocab_size"])
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
    """inputs: tokens {T, B} int32 or features {T, B, n}.  Returns {T, B, n_out}."""
    fin = os.path.join(work, tag + ".in")
    fout = os.path.join(work, tag + ".out")
    T = inputs.shape[0]
    if inputs.dtype.kind in "iu":
        inputs.astype("<i4").tofile(fin)
    else:
        inputs.astype("<f4").tofile(fin)
    res = subprocess.run([helper, model, mode, str(arg), str(T), fin, fout, *extra],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tag}: model_run failed: {res.stderr.strip()}")
    return np.fromfile(fout, dtype="<f4"), res.stdout.strip()


SHAPES = [
    # name, kwargs
    ("d16_l1_n4_r1_tok", dict(d_model=16, n_layer=1, d_state=4, dt_rank=1, inp="tokens",
                              vocab=11, heads="lm")),
    ("d16_l3_n16_auto_feat", dict(d_model=16, n_layer=3, d_state=16, heads="mask,vad")),
    ("d24_l3_n4_auto_feat_bias", dict(d_model=24, n_layer=3, d_state=4, n_features=7,
                                      heads="vad", proj_bias=True, delta_A_min=-3.0)),
    ("d64_l3_n16_auto_tok_tied", dict(d_model=64, n_layer=3, d_state=16, inp="tokens",
                                      vocab=256, heads="lm", tie=True)),
    ("d64_l1_n16_r1_feat_f16", dict(d_model=64, n_layer=1, d_state=16, dt_rank=1,
                                    n_features=40, n_mask=33, dtype="F16")),
    ("d64_l3_n4_auto_tok_bf16", dict(d_model=64, n_layer=3, d_state=4, inp="tokens",
                                     vocab=37, heads="lm,vad", dtype="BF16")),
    ("d256_l1_n16_auto_feat", dict(d_model=256, n_layer=1, d_state=16, n_features=64,
                                   heads="mask,vad", n_mask=129)),
    ("d256_l3_n4_r1_feat", dict(d_model=256, n_layer=3, d_state=4, dt_rank=1, n_features=5,
                                heads="vad")),
    ("d16_l2_n16_auto_feat_banded", dict(d_model=16, n_layer=2, d_state=16, heads="mask,vad", n_mask=9,
                                         mask_bands=4)),
    ("d96_l1_n16_auto_feat_banded_f16", dict(d_model=96, n_layer=1, d_state=16, n_features=40,
                                             heads="mask,vad", n_mask=129, mask_bands=20, dtype="F16")),
]


def make_inputs(meta, rng, T, B):
    if meta["input"] == "tokens":
        return rng.integers(0, int(meta["vocab_size"]), (T, B)).astype(np.int32)
    return rng.normal(0, 1, (T, B, int(meta["n_features"]))).astype(np.float32)


def cmd_check(helper, work):
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(1234)
    failures = []
    f16_stats = []
    T = 48
    for i, (name, kw) in enumerate(SHAPES):
        path = os.path.join(work, name + ".safetensors")
        meta = make_model(path, seed=100 + i, **kw)
        meta = {k: str(v) for k, v in meta.items()}
        _, n_out = head_slices(meta)
        B = 7
        inp = make_inputs(meta, rng, T, B)
        # 1. batch of 7 streams, step by step
        out_b, _ = run_c(helper, path, "step", B, inp, work, name + "_b7")
        out_b = out_b.reshape(T, B, n_out)
        # 2. the same 7 streams alone: bit-identical
        same = True
        for s in range(B):
            o1, _ = run_c(helper, path, "step", 1, inp[:, s:s + 1], work, name + f"_s{s}")
            if o1.reshape(T, n_out).tobytes() != out_b[:, s].tobytes():
                same = False
        # 3. numpy reference per stream (step vs float64)
        worst_ref, head_ref = 0.0, ""
        for s in range(B):
            ref = reference(path, inp[:, s])
            e, h = rel_err(out_b[:, s].astype(np.float64), ref, meta)
            if e > worst_ref:
                worst_ref, head_ref = e, h
        # 4. chunked forward of stream 0 in uneven chunks vs its steps
        worst_fw = 0.0
        fw_bits = True
        for chunk in (1, 5, T):
            of, _ = run_c(helper, path, "forward", chunk, inp[:, :1], work, name + f"_f{chunk}")
            e, _ = rel_err(of.reshape(T, n_out).astype(np.float64),
                           out_b[:, 0].astype(np.float64), meta)
            worst_fw = max(worst_fw, e)
            # the forward runs the step's kernels row by row: same bits
            fw_bits = fw_bits and of.reshape(T, n_out).tobytes() == out_b[:, 0].tobytes()
        # 5. BLAS step mode agrees with the reference too (not bitwise)
        ob, _ = run_c(helper, path, "step", B, inp, work, name + "_blas", ("blas",))
        e_blas, _ = rel_err(ob.reshape(T, B, n_out).astype(np.float64),
                            out_b.astype(np.float64), meta)
        # 6. the plain reference kernels (libm exp) against numpy as well
        orf, _ = run_c(helper, path, "step", B, inp, work, name + "_ref", ("ref",))
        orf = orf.reshape(T, B, n_out).astype(np.float64)
        worst_rk = 0.0
        for s in range(B):
            e, _ = rel_err(orf[:, s], reference(path, inp[:, s]), meta)
            worst_rk = max(worst_rk, e)
        # 7. the projection kernels capped at AVX2+FMA and at plain C give the
        #    default's bits (one FMA chain per output on every ISA)
        isa_same = True
        for isa in ("avx2", "scalar"):
            oi, _ = run_c(helper, path, "step", B, inp, work, name + "_" + isa, (isa,))
            isa_same = isa_same and oi.tobytes() == out_b.tobytes()
        # 8. f16 weights (fp32 accumulation): error against numpy with the
        #    fp32 weights, stated tolerance 2e-3 (weights rounded to 2^-11
        #    relative), batch-invariant too; its forward equals its steps
        o16, _ = run_c(helper, path, "step", B, inp, work, name + "_f16", ("f16",))
        o16 = o16.reshape(T, B, n_out)
        worst_16 = 0.0
        for s in range(B):
            e, _ = rel_err(o16[:, s].astype(np.float64), reference(path, inp[:, s]), meta)
            worst_16 = max(worst_16, e)
        o16s, _ = run_c(helper, path, "step", 1, inp[:, 2:3], work, name + "_f16s", ("f16",))
        same16 = o16s.reshape(T, n_out).tobytes() == o16[:, 2].tobytes()
        o16f, _ = run_c(helper, path, "forward", 5, inp[:, :1], work, name + "_f16f", ("f16",))
        e16f, _ = rel_err(o16f.reshape(T, n_out).astype(np.float64),
                          o16[:, 0].astype(np.float64), meta)
        f16_stats.append(worst_16)
        ok = (same and worst_ref <= 1e-5 and worst_fw <= 1e-5 and e_blas <= 1e-5
              and worst_rk <= 1e-5 and isa_same and worst_16 <= 2e-3 and same16
              and e16f <= 1e-5 and fw_bits)
        print(f"{name:28s} {kw.get('dtype', 'F32'):4s} step-vs-numpy {worst_ref:.2e} ({head_ref})"
              f"  ref-kernels-vs-numpy {worst_rk:.2e}"
              f"  forward-vs-step {worst_fw:.2e} (bitwise {'yes' if fw_bits else 'NO'})"
              f"  blas-vs-step {e_blas:.2e}"
              f"  batch7==single {'yes' if same else 'NO'}"
              f"  avx2==scalar==default {'yes' if isa_same else 'NO'}"
              f"  f16-vs-numpy {worst_16:.2e} (f16 batch-invariant {'yes' if same16 else 'NO'},"
              f" forward {e16f:.1e})  {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(name)
    print("error = max|c - ref| / max|ref| per head (worst head shown); tolerance 1e-5 "
          "(f16 weights: 2e-3)")
    if f16_stats:
        print(f"f16 weights: worst error against numpy's fp32-weight model {max(f16_stats):.2e}, "
              f"median over models {sorted(f16_stats)[len(f16_stats) // 2]:.2e}")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


def cmd_long(helper, work, n_steps):
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, "long.safetensors")
    meta = make_model(path, d_model=16, n_layer=2, d_state=16, n_features=8,
                      heads="mask,vad", n_mask=5, seed=7)
    meta = {k: str(v) for k, v in meta.items()}
    _, n_out = head_slices(meta)
    rng = np.random.default_rng(99)
    # slowly varying input with bursts: exercises both fast and slow decays
    tt = np.arange(n_steps)[:, None]
    inp = (rng.normal(0, 1, (n_steps, 8)) + 2.0 * np.sin(tt * 2e-4 * (1 + np.arange(8)))
           ).astype(np.float32)
    out, info = run_c(helper, path, "step", 1, inp[:, None, :], work, "long")
    out = out.reshape(n_steps, n_out).astype(np.float64)
    ref = reference(path, inp)
    finite = bool(np.all(np.isfinite(out)))
    k = n_steps // 10
    e_first, _ = rel_err(out[:k], ref[:k], meta)
    e_last, _ = rel_err(out[-k:], ref[-k:], meta)
    e_all, h = rel_err(out, ref, meta)
    print(f"{n_steps} steps ({info}): all finite {finite}; worst error {e_all:.2e} ({h}); "
          f"first 10% {e_first:.2e}, last 10% {e_last:.2e} (no drift: last <= 4*first + 1e-6)")
    ok = finite and e_all <= 1e-5 and e_last <= 4 * e_first + 1e-6
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


def cmd_gen(work):
    """Models for test_model.c: two of the same shape with different weights
    (different hashes) and one of another shape."""
    os.makedirs(work, exist_ok=True)
    make_model(os.path.join(work, "a.safetensors"), d_model=24, n_layer=2, d_state=8,
               n_features=6, heads="mask,vad", n_mask=5, seed=1)
    make_model(os.path.join(work, "b.safetensors"), d_model=24, n_layer=2, d_state=8,
               n_features=6, heads="mask,vad", n_mask=5, seed=2)
    make_model(os.path.join(work, "c.safetensors"), d_model=16, n_layer=1, d_state=4,
               inp="tokens", vocab=11, heads="lm", seed=3)
    # m2.safetensors (pure Mamba-2) and mixed.safetensors (Mamba-1 + Mamba-2)
    import mamba2_ref  # noqa: E402 (tests/ref, next to this file)
    mamba2_ref.cmd_gen(work)
    # attn.safetensors (attention only) and hybrid.safetensors (Mamba-1 + attention + Mamba-2)
    import attn_ref  # noqa: E402
    attn_ref.cmd_gen(work)
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3])
    if len(argv) >= 4 and argv[1] == "long":
        return cmd_long(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 100000)
    if len(argv) >= 3 and argv[1] == "gen":
        rc = cmd_gen(argv[2])
        if len(argv) >= 4:  # stamp for meson custom_target
            open(argv[3], "w").close()
        return rc
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
