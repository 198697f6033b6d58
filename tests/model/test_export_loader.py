# SPDX-License-Identifier: MIT
"""train/export.py → C loader round trip (suite 'model').

Usage: test_export_loader.py LOADER_CHECK WORKDIR

Builds small synthetic checkpoints with numpy — HuggingFace MambaForCausalLM
style (config.json with hidden_size..., backbone.embeddings.weight) and
mamba_ssm MambaLMHeadModel style (config.json with d_model, ssm_cfg...; also
as a torch .pt state_dict when torch is importable) — exports them with
--dtype f32/f16/bf16, loads the result with the C loader (loader_check) and
compares the configuration and every fp32 tensor the loader produced with the
checkpoint: exact for f32, exactly numpy's float16 / bfloat16 rounding for
f16 / bf16, A = -exp(A_log) within 2 ulp of numpy.  Also checks that export
refuses unsupported checkpoints with one "export: ..." line.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "..", "..", "train")
sys.path.insert(0, TRAIN)
import ssmd_file  # noqa: E402

EXPORT = os.path.join(TRAIN, "export.py")
failures = []
worst = {"A_rel": 0.0}


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def make_checkpoint(rng, d_model, n_layer, vocab, d_state, d_conv, expand, dt_rank,
                    hf, conv_bias=True, proj_bias=False, tied=True):
    di = expand * d_model
    sd = {}
    emb = rng.standard_normal((vocab, d_model)).astype(np.float32)
    sd["backbone.embeddings.weight" if hf else "backbone.embedding.weight"] = emb
    sd["lm_head.weight"] = emb.copy() if tied else rng.standard_normal((vocab, d_model))
    sd["backbone.norm_f.weight"] = 1 + 0.1 * rng.standard_normal(d_model)
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        sd[p + "norm.weight"] = 1 + 0.1 * rng.standard_normal(d_model)
        m = p + "mixer."
        sd[m + "in_proj.weight"] = rng.standard_normal((2 * di, d_model)) * 0.3
        sd[m + "conv1d.weight"] = rng.standard_normal((di, 1, d_conv))
        if conv_bias:
            sd[m + "conv1d.bias"] = rng.standard_normal(di)
        if proj_bias:
            sd[m + "in_proj.bias"] = rng.standard_normal(2 * di)
            sd[m + "out_proj.bias"] = rng.standard_normal(d_model)
        sd[m + "x_proj.weight"] = rng.standard_normal((dt_rank + 2 * d_state, di))
        sd[m + "dt_proj.weight"] = rng.standard_normal((di, dt_rank))
        sd[m + "dt_proj.bias"] = rng.standard_normal(di)
        sd[m + "A_log"] = np.log(np.tile(np.arange(1, d_state + 1, dtype=np.float64), (di, 1))
                                 + 0.01 * rng.random((di, d_state)))
        sd[m + "D"] = rng.standard_normal(di)
        sd[m + "out_proj.weight"] = rng.standard_normal((d_model, di)) * 0.3
    return {k: np.asarray(v, np.float32) for k, v in sd.items()}


def rounded(a, dtype):
    if dtype == "f32":
        return a
    if dtype == "f16":
        return a.astype(np.float16).astype(np.float32)
    return ssmd_file.bf16_to_f32(ssmd_file._bf16_bytes(a)).reshape(a.shape)


def run_export(args):
    return subprocess.run([sys.executable, EXPORT] + args, capture_output=True, text=True)


def roundtrip(loader, work, tag, ckpt, sd, expect, dtype, config=None):
    out = os.path.join(work, f"{tag}_{dtype}.safetensors")
    args = [ckpt, "-o", out, "--dtype", dtype] + (["--config", config] if config else [])
    r = run_export(args)
    check(r.returncode == 0, f"{tag}/{dtype}: export failed: {r.stderr.strip()}")
    if r.returncode:
        return
    dump = os.path.join(work, f"{tag}_{dtype}_dump")
    shutil.rmtree(dump, ignore_errors=True)
    os.makedirs(dump)
    r = subprocess.run([loader, out, "--dump", dump], capture_output=True, text=True)
    check(r.returncode == 0, f"{tag}/{dtype}: C loader refused the export: {r.stderr.strip()}")
    if r.returncode:
        return
    cfg = json.loads(r.stdout)
    for k, v in expect.items():
        check(cfg.get(k) == v, f"{tag}/{dtype}: {k} = {cfg.get(k)!r}, expected {v!r}")
    emb = sd.get("backbone.embedding.weight", sd.get("backbone.embeddings.weight"))
    pairs = {"embedding": emb, "norm_f": sd["backbone.norm_f.weight"],
             "lm_head": emb if expect.get("lm_head_tied") else sd["lm_head.weight"]}
    names = {"norm": "norm.weight", "in_proj": "mixer.in_proj.weight",
             "in_proj_bias": "mixer.in_proj.bias", "conv1d": "mixer.conv1d.weight",
             "conv1d_bias": "mixer.conv1d.bias", "x_proj": "mixer.x_proj.weight",
             "dt_proj": "mixer.dt_proj.weight", "dt_proj_bias": "mixer.dt_proj.bias",
             "D": "mixer.D", "out_proj": "mixer.out_proj.weight",
             "out_proj_bias": "mixer.out_proj.bias"}
    for i in range(cfg["n_layer"]):
        for short, full in names.items():
            key = f"backbone.layers.{i}.{full}"
            if key in sd:
                pairs[f"layers.{i}.{short}"] = sd[key]
    n_exact = 0
    for name, ref in pairs.items():
        path = os.path.join(dump, name + ".f32")
        check(os.path.isfile(path), f"{tag}/{dtype}: loader produced no {name}")
        if not os.path.isfile(path):
            continue
        got = np.fromfile(path, dtype="<f4")
        want = rounded(ref, dtype).ravel()
        same = got.shape == want.shape and np.array_equal(got.view("<u4"), want.view("<u4"))
        check(same, f"{tag}/{dtype}: {name} differs from the checkpoint")
        n_exact += same
    # A = -exp(A_log) from the stored (rounded) A_log, computed in float64 by numpy.
    for i in range(cfg["n_layer"]):
        a_log = rounded(sd[f"backbone.layers.{i}.mixer.A_log"], dtype).astype(np.float64)
        want = -np.exp(a_log).ravel()
        got = np.fromfile(os.path.join(dump, f"layers.{i}.A.f32"), dtype="<f4")
        rel = float(np.max(np.abs(got - want) / np.abs(want)))
        worst["A_rel"] = max(worst["A_rel"], rel)
        check(rel < 2.5e-7, f"{tag}/{dtype}: layer {i} A relative error {rel:.3g}")
    # no lingering temporary file
    check(not os.path.exists(out + ".tmp"), f"{tag}/{dtype}: {out}.tmp left behind")
    print(f"{tag}/{dtype}: {n_exact}/{len(pairs)} tensors bitwise as expected")


def refuse(work, tag, sd, cfg, fragment):
    d = os.path.join(work, "bad_" + tag)
    os.makedirs(d, exist_ok=True)
    ssmd_file.save(os.path.join(d, "model.safetensors"), sd)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    out = os.path.join(work, f"bad_{tag}.safetensors")
    r = run_export([d, "-o", out])
    err = r.stderr.strip()
    ok = (r.returncode == 1 and err.startswith("export: ") and fragment in err
          and "\n" not in err and not os.path.exists(out))
    check(ok, f"refuse {tag}: rc={r.returncode} stderr={err!r} (wanted {fragment!r})")
    print(f"refuse {tag}: {err}")


def main():
    loader, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = np.random.default_rng(42)

    # HuggingFace MambaForCausalLM: tied, conv bias, no projection bias.
    hf_cfg = {"model_type": "mamba", "hidden_size": 24, "num_hidden_layers": 2,
              "state_size": 5, "conv_kernel": 4, "expand": 2, "intermediate_size": 48,
              "time_step_rank": "auto", "layer_norm_epsilon": 1e-5, "use_bias": False,
              "use_conv_bias": True, "vocab_size": 37, "tie_word_embeddings": True}
    hf_sd = make_checkpoint(rng, 24, 2, 37, 5, 4, 2, 2, hf=True)
    d = os.path.join(work, "hf")
    os.makedirs(d)
    ssmd_file.save(os.path.join(d, "model.safetensors"), hf_sd)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_cfg, f)
    exp = {"d_model": 24, "n_layer": 2, "d_state": 5, "d_conv": 4, "d_inner": 48,
           "dt_rank": 2, "vocab_size": 37, "input": "tokens", "lm_head_tied": True,
           "conv1d_bias": True, "proj_bias": False, "heads": ["lm", "embedding"]}
    for dt in ("f32", "f16", "bf16"):
        roundtrip(loader, work, "hf", d, hf_sd, exp, dt)

    # HuggingFace with projection biases, no conv bias, explicit dt rank, untied.
    hf2_cfg = dict(hf_cfg, use_bias=True, use_conv_bias=False, time_step_rank=3,
                   tie_word_embeddings=False, layer_norm_epsilon=1e-6)
    hf2_sd = make_checkpoint(rng, 24, 1, 37, 5, 4, 2, 3, hf=True, conv_bias=False,
                             proj_bias=True, tied=False)
    hf2_cfg["num_hidden_layers"] = 1
    ssmd_file.save(os.path.join(work, "hf2.safetensors"), hf2_sd)
    with open(os.path.join(work, "hf2.json"), "w") as f:
        json.dump(hf2_cfg, f)
    roundtrip(loader, work, "hf2", os.path.join(work, "hf2.safetensors"), hf2_sd,
              dict(exp, n_layer=1, dt_rank=3, lm_head_tied=False, conv1d_bias=False,
                   proj_bias=True), "f32", config=os.path.join(work, "hf2.json"))

    # mamba_ssm MambaLMHeadModel (vocab padded to a multiple of 8: 40 rows).
    ms_cfg = {"d_model": 16, "d_intermediate": 0, "n_layer": 3, "vocab_size": 37,
              "ssm_cfg": {"d_state": 4, "d_conv": 3, "expand": 2}, "attn_layer_idx": [],
              "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
              "pad_vocab_size_multiple": 8, "tie_embeddings": True}
    ms_sd = make_checkpoint(rng, 16, 3, 40, 4, 3, 2, 1, hf=False)
    d = os.path.join(work, "ms")
    os.makedirs(d)
    ssmd_file.save(os.path.join(d, "model.safetensors"), ms_sd)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(ms_cfg, f)
    ms_exp = {"d_model": 16, "n_layer": 3, "d_state": 4, "d_conv": 3, "d_inner": 32,
              "dt_rank": 1, "vocab_size": 40, "lm_head_tied": True, "conv1d_bias": True}
    for dt in ("f32", "bf16"):
        roundtrip(loader, work, "ms", d, ms_sd, ms_exp, dt)

    try:
        import torch
    except ImportError:
        torch = None
        print("torch not importable: .pt path not exercised (safetensors paths were)")
    if torch is not None:
        d = os.path.join(work, "ms_pt")
        os.makedirs(d)
        torch.save({k: torch.from_numpy(v.copy()) for k, v in ms_sd.items()},
                   os.path.join(d, "model.pt"))
        shutil.copy(os.path.join(work, "ms", "config.json"), d)
        roundtrip(loader, work, "ms_pt", os.path.join(d, "model.pt"), ms_sd, ms_exp, "f16")

    # Refusals.
    small = make_checkpoint(rng, 16, 1, 8, 4, 3, 2, 1, hf=False)
    base = {"d_model": 16, "n_layer": 1, "vocab_size": 8,
            "ssm_cfg": {"d_state": 4, "d_conv": 3, "expand": 2}}
    refuse(work, "layernorm", small, dict(base, rms_norm=False), "LayerNorm")
    refuse(work, "mamba3", small, dict(base, ssm_cfg={"layer": "Mamba3"}),
           "only Mamba1 and Mamba2")
    # Mamba-1 tensors under a Mamba-2 config (tests/model/test_export_mamba2.py
    # converts real Mamba-2 checkpoints)
    refuse(work, "mamba2_names", small,
           dict(base, ssm_cfg=dict(base["ssm_cfg"], layer="Mamba2", headdim=8)),
           "not part of a 1-layer Mamba-2 LM")
    # d_intermediate without the GatedMLP tensors (test_export_attn.py converts real ones)
    refuse(work, "mlp", small, dict(base, d_intermediate=64), "no backbone.layers.0.mlp.fc1.weight")
    refuse(work, "unknown", dict(small, **{"extra.weight": np.zeros(2, np.float32)}), base,
           "extra.weight")
    refuse(work, "no_config_kind", small, {"foo": 1}, "neither mamba_ssm")
    refuse(work, "conv_bias", small, dict(base, ssm_cfg=dict(base["ssm_cfg"], conv_bias=False)),
           "conv1d.bias present")
    big = dict(small)
    big["backbone.layers.0.mixer.D"] = np.full(32, 1e5, np.float32)
    d = os.path.join(work, "bad_f16range")
    os.makedirs(d)
    ssmd_file.save(os.path.join(d, "model.safetensors"), big)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(base, f)
    r = run_export([d, "-o", os.path.join(work, "x.safetensors"), "--dtype", "f16"])
    check(r.returncode == 1 and "float16 range" in r.stderr, f"f16 range: {r.stderr!r}")
    print(f"refuse f16 range: {r.stderr.strip()}")

    print(f"worst A = -exp(A_log) relative error vs numpy: {worst['A_rel']:.3g}")
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
