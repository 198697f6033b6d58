# SPDX-License-Identifier: MIT
"""train/export.py on mamba_ssm hybrid checkpoints (MambaLMHeadModel with
attn_layer_idx / attn_cfg: mamba_ssm/modules/mha.py MHA layers, mixed with
Mamba-1 or Mamba-2 (ssm_cfg.layer) layers, GatedMLP blocks with d_intermediate)
-> C model (step and forward) vs a float64 numpy reference computed from the
checkpoint's own state dict and config (not from the exported file), and the
refusals (no --attn-window, non-causal attention, a conv before attention).

The state dicts are random, written with mamba_ssm's names and shapes in
numpy (mamba_ssm itself is not needed): per layer norm.weight, the mixer's
tensors, and with d_intermediate norm2.weight, mlp.fc1.weight {2·hidden,
d_model} and mlp.fc2.weight {d_model, hidden} where hidden is d_intermediate
rounded up to 128 (GatedMLP).  With a window at least as long as the stream
the export computes mamba_ssm's full causal attention; with a shorter one the
reference applies the same window.

  test_export_attn.py MODEL_RUN WORKDIR
"""
import json
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import ssmd_file  # noqa: E402
import attn_ref  # noqa: E402
import mamba2_ref  # noqa: E402
from mamba_ref import rmsnorm  # noqa: E402
from mamba2_ref import run_c  # noqa: E402

EXPORT = os.path.join(HERE, "..", "..", "train", "export.py")


def checkpoint(rng, cfg):
    """Random mamba_ssm state dict for config cfg (names and shapes of
    MambaLMHeadModel with create_block's hybrid blocks)."""
    D, n, V = cfg["d_model"], cfg["n_layer"], cfg["vocab_size"]
    ssm = cfg.get("ssm_cfg", {})
    a = cfg.get("attn_cfg", {})

    def lin(o, i, s=1.0):
        return (rng.uniform(-1, 1, (o, i)) * s / math.sqrt(i)).astype(np.float32)

    sd = {"backbone.embedding.weight": rng.normal(0, 1, (V, D)).astype(np.float32),
          "backbone.norm_f.weight": rng.uniform(0.8, 1.2, D).astype(np.float32)}
    for i in range(n):
        p = f"backbone.layers.{i}."
        sd[p + "norm.weight"] = rng.uniform(0.8, 1.2, D).astype(np.float32)
        if i in cfg.get("attn_layer_idx", []):
            H = a["num_heads"]
            Hkv = a.get("num_heads_kv") or H
            P = a.get("head_dim") or D // H
            mlp = math.ceil(a.get("mlp_dim", 0) / 256) * 256
            n_in = (H + 2 * Hkv) * P + mlp
            sd[p + "mixer.in_proj.weight"] = lin(n_in, D, 2.0)
            if a.get("qkv_proj_bias", True):
                sd[p + "mixer.in_proj.bias"] = rng.uniform(-0.2, 0.2, n_in).astype(np.float32)
            sd[p + "mixer.out_proj.weight"] = lin(D, H * P + mlp // 2, 0.7)
            if a.get("out_proj_bias", True):
                sd[p + "mixer.out_proj.bias"] = rng.uniform(-0.1, 0.1, D).astype(np.float32)
        elif ssm.get("layer") == "Mamba2":
            di, N, K = 2 * D, ssm["d_state"], ssm.get("d_conv", 4)
            hd, G = ssm["headdim"], ssm.get("ngroups", 1)
            Hh, cd = di // hd, di + 2 * G * N
            sd[p + "mixer.in_proj.weight"] = lin(2 * di + 2 * G * N + Hh, D)
            sd[p + "mixer.conv1d.weight"] = rng.uniform(-0.5, 0.5, (cd, 1, K)).astype(np.float32)
            sd[p + "mixer.conv1d.bias"] = rng.uniform(-0.1, 0.1, cd).astype(np.float32)
            sd[p + "mixer.dt_bias"] = np.log(np.expm1(rng.uniform(1e-3, 0.1, Hh))).astype(np.float32)
            sd[p + "mixer.A_log"] = np.log(rng.uniform(1, 16, Hh)).astype(np.float32)
            sd[p + "mixer.D"] = rng.uniform(0.5, 1.5, Hh).astype(np.float32)
            sd[p + "mixer.norm.weight"] = rng.uniform(0.8, 1.2, di).astype(np.float32)
            sd[p + "mixer.out_proj.weight"] = lin(D, di, 0.7)
        else:
            di, N, K, R = 2 * D, ssm.get("d_state", 16), ssm.get("d_conv", 4), math.ceil(D / 16)
            sd[p + "mixer.in_proj.weight"] = lin(2 * di, D)
            sd[p + "mixer.conv1d.weight"] = rng.uniform(-0.5, 0.5, (di, 1, K)).astype(np.float32)
            sd[p + "mixer.conv1d.bias"] = rng.uniform(-0.1, 0.1, di).astype(np.float32)
            sd[p + "mixer.x_proj.weight"] = lin(R + 2 * N, di)
            sd[p + "mixer.dt_proj.weight"] = lin(di, R)
            sd[p + "mixer.dt_proj.bias"] = np.log(np.expm1(rng.uniform(1e-3, 0.1, di))).astype(np.float32)
            sd[p + "mixer.A_log"] = np.log(np.tile(np.arange(1, N + 1, dtype=np.float32), (di, 1)))
            sd[p + "mixer.D"] = rng.uniform(0.5, 1.5, di).astype(np.float32)
            sd[p + "mixer.out_proj.weight"] = lin(D, di, 0.7)
        if cfg.get("d_intermediate", 0):
            hid = (cfg["d_intermediate"] + 127) // 128 * 128
            sd[p + "norm2.weight"] = rng.uniform(0.8, 1.2, D).astype(np.float32)
            sd[p + "mlp.fc1.weight"] = lin(2 * hid, D)
            sd[p + "mlp.fc2.weight"] = lin(D, hid, 0.7)
    return sd


def reference(sd, cfg, tokens, window):
    """float64 logits of the checkpoint over tokens {T} (mamba_ssm's
    MambaLMHeadModel with tied lm_head; attention restricted to window)."""
    g = {k: v.astype(np.float64) for k, v in sd.items()}
    D, eps = cfg["d_model"], cfg.get("norm_epsilon", 1e-5)
    ssm, a = cfg.get("ssm_cfg", {}), cfg.get("attn_cfg", {})
    # the geometry each mixer of the reference reads, from the config itself
    meta = {"d_model": D, "expand": 2, "d_state": ssm.get("d_state", 16),
            "d_conv": ssm.get("d_conv", 4)}
    if ssm.get("layer") == "Mamba2":
        meta.update({"mamba2.head_dim": ssm["headdim"], "mamba2.n_groups": ssm.get("ngroups", 1),
                     "mamba2.norm_eps": "1e-5"})
    if a:
        meta.update({"attention.num_heads": a["num_heads"], "attention.window": window,
                     "attention.num_heads_kv": a.get("num_heads_kv") or a["num_heads"],
                     "attention.head_dim": a.get("head_dim") or D // a["num_heads"],
                     "attention.rotary_emb_dim": a.get("rotary_emb_dim", 0),
                     "attention.rotary_emb_base": a.get("rotary_emb_base", 10000.0),
                     "attention.rotary_emb_interleaved":
                         "true" if a.get("rotary_emb_interleaved") else "false",
                     "attention.mlp_dim": math.ceil(a.get("mlp_dim", 0) / 256) * 256})
        if a.get("softmax_scale") is not None:
            meta["attention.softmax_scale"] = a["softmax_scale"]
    meta = {k: str(v) for k, v in meta.items()}
    r = g["backbone.embedding.weight"][tokens]
    for i in range(cfg["n_layer"]):
        pre = f"backbone.layers.{i}."
        h = rmsnorm(r, g[pre + "norm.weight"], eps)
        if i in cfg.get("attn_layer_idx", []):
            r = r + attn_ref.attention_mixer(g, pre + "mixer.", h, meta)
        elif ssm.get("layer") == "Mamba2":
            r = r + mamba2_ref.mamba2_mixer(g, pre + "mixer.", h, meta)
        else:
            r = r + mamba2_ref.mamba1_mixer(g, pre + "mixer.", h, meta)
        if pre + "mlp.fc1.weight" in g:
            ab = rmsnorm(r, g[pre + "norm2.weight"], eps) @ g[pre + "mlp.fc1.weight"].T
            hid = ab.shape[1] // 2
            y = ab[:, :hid] * (ab[:, hid:] / (1 + np.exp(-ab[:, hid:])))
            r = r + y @ g[pre + "mlp.fc2.weight"].T
    hf = rmsnorm(r, g["backbone.norm_f.weight"], eps)
    return hf @ g["backbone.embedding.weight"].T


CASES = [
    ("mamba1_attn", dict(d_model=16, n_layer=3, vocab_size=11, rms_norm=True,
                         ssm_cfg={"d_state": 8}, attn_layer_idx=[1],
                         attn_cfg={"num_heads": 4, "num_heads_kv": 2, "rotary_emb_dim": 2,
                                   "causal": True})),
    ("mamba2_attn_mlp", dict(d_model=16, n_layer=4, vocab_size=13, rms_norm=True,
                             d_intermediate=40,
                             ssm_cfg={"layer": "Mamba2", "d_state": 16, "headdim": 8, "ngroups": 2},
                             attn_layer_idx=[0, 2],
                             attn_cfg={"num_heads": 3, "num_heads_kv": 1, "head_dim": 12,
                                       "rotary_emb_dim": 8, "rotary_emb_interleaved": True,
                                       "qkv_proj_bias": False, "mlp_dim": 100,
                                       "softmax_scale": 0.25, "causal": True})),
    ("attn_only", dict(d_model=8, n_layer=2, vocab_size=7, rms_norm=True, attn_layer_idx=[0, 1],
                       attn_cfg={"num_heads": 2, "rotary_emb_dim": 4, "out_proj_bias": False,
                                 "causal": True})),
]


def main(argv):
    helper, work = argv[1], argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(2017)
    failures = 0
    T = 90
    for name, cfg in CASES:
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        sd = checkpoint(rng, cfg)
        ssmd_file.save(os.path.join(d, "model.safetensors"), sd, {})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        tokens = rng.integers(0, cfg["vocab_size"], (T, 2)).astype(np.int32)
        for window in (T, 9):   # full context (mamba_ssm's function), then a window shorter than T
            out = os.path.join(work, f"{name}_w{window}.safetensors")
            res = subprocess.run([sys.executable, EXPORT, d, "-o", out, "--attn-window", str(window)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                print(f"FAIL {name}: export: {res.stderr.strip()}")
                failures += 1
                continue
            V, D = cfg["vocab_size"], cfg["d_model"]
            n_out = D + V
            step, _ = run_c(helper, out, "step", 2, tokens, work, f"{name}_{window}_b")
            step = step.reshape(T, 2, n_out)[..., D:].astype(np.float64)
            fw, _ = run_c(helper, out, "forward", 7, tokens[:, :1], work, f"{name}_{window}_f")
            fw = fw.reshape(T, n_out)[:, D:]
            worst = 0.0
            for s in range(2):
                ref = reference(sd, cfg, tokens[:, s], window)
                worst = max(worst, float(np.max(np.abs(step[:, s] - ref)) / np.max(np.abs(ref))))
            fw_bits = fw.astype(np.float32).tobytes() == step[:, 0].astype(np.float32).tobytes()
            ok = worst <= 1e-5 and fw_bits
            print(f"{'ok  ' if ok else 'FAIL'} {name:16s} window {window:3d}: logits vs float64 "
                  f"reference of the checkpoint {worst:.2e} (tolerance 1e-5), forward == step "
                  f"{'yes' if fw_bits else 'NO'}")
            failures += not ok
    # refusals: one line, exit 1
    d = os.path.join(work, CASES[0][0])
    base = CASES[0][1]
    for what, change, args, want in (
            ("no --attn-window", {}, [], "--attn-window"),
            ("non-causal", {"attn_cfg": dict(base["attn_cfg"], causal=False)}, ["--attn-window", "8"],
             "causal"),
            ("conv before attention", {"attn_cfg": dict(base["attn_cfg"], d_conv=4)},
             ["--attn-window", "8"], "d_conv")):
        cfgp = os.path.join(work, "refuse_config.json")
        with open(cfgp, "w") as f:
            json.dump(dict(base, **change), f)
        res = subprocess.run([sys.executable, EXPORT, d, "-o", os.path.join(work, "x.safetensors"),
                              "--config", cfgp, *args], capture_output=True, text=True)
        lines = res.stderr.strip().splitlines()
        ok = res.returncode == 1 and len(lines) == 1 and want in lines[0]
        print(f"{'ok  ' if ok else 'FAIL'} refused ({what}): {res.stderr.strip()}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
