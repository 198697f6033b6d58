#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Convert a Mamba-1 or Mamba-2 checkpoint into an ssmd model file
(docs/model-format.md).

Accepted inputs:
  * mamba_ssm's MambaLMHeadModel (config.json with d_model, n_layer,
    vocab_size, ssm_cfg, rms_norm, tie_embeddings, ...); ssm_cfg.layer
    "Mamba1" (default) or "Mamba2" (headdim, ngroups, d_state, ...), hybrid
    stacks with attention layers (attn_layer_idx, attn_cfg: mamba_ssm
    modules/mha.py MHA, causal; exported with a window of W frames,
    --attn-window W, because ssmd keeps memory per stream constant) and
    gated MLP blocks (d_intermediate: mamba_ssm GatedMLP), and
  * HuggingFace transformers' MambaForCausalLM (config.json with
    hidden_size, num_hidden_layers, state_size, conv_kernel, expand,
    time_step_rank, layer_norm_epsilon, use_bias, use_conv_bias, ...) and
    Mamba2ForCausalLM (model_type "mamba2": num_heads, head_dim, n_groups,
    state_size, ...; its gated norm spans the whole d_inner, written as
    mamba2.norm_group_size).
The weights are a state_dict in .safetensors (read with numpy; sharded HF
checkpoints with model.safetensors.index.json too) or .bin/.pt (read with
torch, when it is importable).  CHECKPOINT may be a directory holding
config.json and the weights.

  /usr/bin/python3 train/export.py CHECKPOINT -o model.safetensors [--dtype f32|f16|bf16]
      [--config config.json] [--meta key=value ...] [--attn-window W]

The output holds the tensors under mamba_ssm's names (HF's
backbone.embeddings.weight becomes backbone.embedding.weight; lm_head.weight
is dropped when equal to the embedding, i.e. tied) and the __metadata__ keys
the C loader reads.  Errors: one line "export: ..." on stderr, exit status 1.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssmd_file  # noqa: E402


class ExportError(Exception):
    pass


# ---- reading checkpoints ---------------------------------------------------

def _load_torch(path):
    try:
        import torch
    except ImportError as e:
        raise ExportError(f"{path}: reading .bin/.pt needs torch ({e}); "
                          "convert the state_dict to .safetensors first") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - torch raises many kinds
        raise ExportError(f"{path}: torch.load failed: {e}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ExportError(f"{path}: not a state_dict (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if not hasattr(v, "detach"):
            raise ExportError(f"{path}: entry {k} is not a tensor")
        out[k] = v.detach().to(torch.float32).cpu().numpy()
    return out


def _load_safetensors(path):
    try:
        tensors, _ = ssmd_file.load(path)
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: cannot read safetensors: {e}") from None
    return tensors


def load_state_dict(path):
    """Returns (name -> float32 array, directory holding the checkpoint)."""
    if os.path.isdir(path):
        d = path
        index = os.path.join(d, "model.safetensors.index.json")
        if os.path.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            sd = {}
            for s in shards:
                sd.update(_load_safetensors(os.path.join(d, s)))
            return sd, d
        for name in ("model.safetensors", "pytorch_model.bin", "model.pt"):
            if os.path.isfile(os.path.join(d, name)):
                return load_state_dict(os.path.join(d, name))[0], d
        raise ExportError(f"{path}: no model.safetensors, pytorch_model.bin or model.pt inside")
    if not os.path.isfile(path):
        raise ExportError(f"{path}: no such file")
    if path.endswith(".safetensors"):
        return _load_safetensors(path), os.path.dirname(path) or "."
    return _load_torch(path), os.path.dirname(path) or "."


# ---- configuration ---------------------------------------------------------

def _int(cfg, key, where):
    v = cfg.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ExportError(f"{where}: {key} must be a positive integer (got {v!r})")
    return v


def _mamba2_keys(where, d_model, d_inner, d_state, d_conv, head_dim, n_groups, n_heads=None):
    """The mamba2.* metadata of a Mamba-2 checkpoint, checked."""
    for key, v in (("head_dim", head_dim), ("n_groups", n_groups)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ExportError(f"{where}: {key} must be a positive integer (got {v!r})")
    if d_inner % head_dim:
        raise ExportError(f"{where}: head_dim {head_dim} does not divide d_inner {d_inner}")
    if n_heads is not None and n_heads * head_dim != d_inner:
        raise ExportError(f"{where}: num_heads {n_heads} x head_dim {head_dim} != "
                          f"intermediate_size {d_inner}")
    if (d_inner // head_dim) % n_groups:
        raise ExportError(f"{where}: n_groups {n_groups} does not divide the "
                          f"{d_inner // head_dim} heads")
    return {"mamba2.d_inner": d_inner, "mamba2.d_state": d_state, "mamba2.d_conv": d_conv,
            "mamba2.head_dim": head_dim, "mamba2.n_groups": n_groups}


def _attn_keys(cfg, where, sd, n_layer, d_model, window):
    """layers.{i}.kind / attention.* / d_intermediate metadata of a mamba_ssm
    hybrid (attn_layer_idx, attn_cfg, d_intermediate), checked."""
    meta = {}
    idx = cfg.get("attn_layer_idx") or []
    if not isinstance(idx, (list, tuple)) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_layer for i in idx):
        raise ExportError(f"{where}: attn_layer_idx must list layer indices in [0, {n_layer})")
    if idx:
        a = cfg.get("attn_cfg") or {}
        if not a.get("causal", False):
            raise ExportError(f"{where}: attn_cfg.causal is not true: ssmd streams causal "
                              "attention only")
        if a.get("d_conv", 0):
            raise ExportError(f"{where}: attn_cfg.d_conv={a['d_conv']}: a conv before "
                              "attention is not supported")
        if window is None:
            raise ExportError(f"{where}: attention layers need a window: pass --attn-window W "
                              "(frames); ssmd keeps the keys and values of the last W frames per "
                              "stream so that memory stays constant (mamba_ssm attends to the "
                              "whole context: results differ once a stream is longer than W)")
        H = a.get("num_heads")
        if isinstance(H, bool) or not isinstance(H, int) or H <= 0:
            raise ExportError(f"{where}: attn_cfg.num_heads must be a positive integer")
        Hkv = a.get("num_heads_kv") or H
        P = a.get("head_dim") or (d_model // H)
        if H % Hkv:
            raise ExportError(f"{where}: attn_cfg.num_heads_kv {Hkv} does not divide num_heads {H}")
        mlp = math.ceil(a.get("mlp_dim", 0) / 256) * 256   # mha.py rounds up to 256
        meta.update({"attention.window": window, "attention.num_heads": H,
                     "attention.num_heads_kv": Hkv, "attention.head_dim": P,
                     "attention.rotary_emb_dim": a.get("rotary_emb_dim", 0),
                     "attention.rotary_emb_base": repr(float(a.get("rotary_emb_base", 10000.0))),
                     "attention.rotary_emb_interleaved":
                         "true" if a.get("rotary_emb_interleaved", False) else "false",
                     "attention.qkv_proj_bias": "true" if a.get("qkv_proj_bias", True) else "false",
                     "attention.out_proj_bias": "true" if a.get("out_proj_bias", True) else "false",
                     "attention.mlp_dim": mlp})
        if a.get("softmax_scale") is not None:
            meta["attention.softmax_scale"] = repr(float(a["softmax_scale"]))
        for i in idx:
            meta[f"layers.{i}.kind"] = "attention"
    if cfg.get("d_intermediate", 0):
        fc1 = sd.get("backbone.layers.0.mlp.fc1.weight")
        if fc1 is None:
            raise ExportError(f"{where}: d_intermediate={cfg['d_intermediate']} but the "
                              "checkpoint has no backbone.layers.0.mlp.fc1.weight")
        # GatedMLP rounds hidden_features up to a multiple of 128: the rows are the truth
        meta["d_intermediate"] = int(fc1.shape[0]) // 2
        if meta["d_intermediate"] != int(cfg["d_intermediate"]):
            meta["source.d_intermediate"] = cfg["d_intermediate"]
    return meta


def read_config(cfg, where, sd, attn_window=None):
    """Returns (metadata dict, conv_bias, proj_bias, source kind)."""
    hf = "hidden_size" in cfg or cfg.get("model_type") in ("mamba", "mamba2")
    arch = "mamba1"
    m2 = {}
    if hf:
        d_model = _int(cfg, "hidden_size", where)
        n_layer = _int(cfg, "num_hidden_layers", where)
        d_state = cfg.get("state_size", 16)
        d_conv = cfg.get("conv_kernel", 4)
        expand = cfg.get("expand", 2)
        d_inner = cfg.get("intermediate_size", expand * d_model)
        dt_rank = cfg.get("time_step_rank", "auto")
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        proj_bias = bool(cfg.get("use_bias", False))
        conv_bias = bool(cfg.get("use_conv_bias", True))
        kind = "hf"
        if cfg.get("model_type") == "mamba2" or "num_heads" in cfg:
            # transformers Mamba2Config / Mamba2Mixer
            arch = "mamba2"
            eps = cfg.get("layer_norm_epsilon", 1e-6)  # Mamba2Config's default
            d_state = cfg.get("state_size", 128)
            head_dim = cfg.get("head_dim", 64)
            n_heads = cfg.get("num_heads")
            d_inner = cfg.get("intermediate_size", int(expand * d_model))
            if not cfg.get("rms_norm", True):
                raise ExportError(f"{where}: rms_norm=false: Mamba-2 without its gated norm "
                                  "is not supported")
            lim = cfg.get("time_step_limit", (0.0, float("inf")))
            if lim and (float(lim[0]) > 0.0 or float(lim[1]) != float("inf")):
                raise ExportError(f"{where}: time_step_limit={lim}: clamping Δ is not supported")
            m2 = _mamba2_keys(where, d_model, d_inner, d_state, d_conv, head_dim,
                              cfg.get("n_groups", 1), n_heads)
            # MambaRMSNormGated(intermediate_size): one group over all of d_inner
            m2["mamba2.norm_group_size"] = d_inner
            m2["mamba2.norm_eps"] = repr(float(eps))
            kind = "hf-mamba2"
    else:
        if "d_model" not in cfg:
            raise ExportError(f"{where}: neither mamba_ssm (d_model) nor HuggingFace "
                              "(hidden_size) config")
        d_model = _int(cfg, "d_model", where)
        n_layer = _int(cfg, "n_layer", where)
        hybrid = _attn_keys(cfg, where, sd, n_layer, d_model, attn_window)
        if not cfg.get("rms_norm", True):
            raise ExportError(f"{where}: rms_norm=false: LayerNorm models are not supported")
        ssm = cfg.get("ssm_cfg") or {}
        layer = ssm.get("layer", "Mamba1")
        if layer not in ("Mamba1", "Mamba2"):
            raise ExportError(f"{where}: ssm_cfg.layer={layer!r}: only Mamba1 and Mamba2 are "
                              "supported")
        d_state = ssm.get("d_state", 16 if layer == "Mamba1" else 128)
        d_conv = ssm.get("d_conv", 4)
        expand = ssm.get("expand", 2)
        d_inner = int(expand * d_model)
        dt_rank = ssm.get("dt_rank", "auto")
        eps = cfg.get("norm_epsilon", 1e-5)
        proj_bias = bool(ssm.get("bias", False))
        conv_bias = bool(ssm.get("conv_bias", True))
        kind = "mamba_ssm"
        if layer == "Mamba2":
            # mamba_ssm/modules/mamba2.py Mamba2 defaults; refuse what ssmd does not compute
            arch = "mamba2"
            for key, bad, why in (("rmsnorm", False, "Mamba-2 without its gated norm"),
                                  ("norm_before_gate", True, "norm_before_gate=True"),
                                  ("D_has_hdim", True, "D per channel (D_has_hdim=True)"),
                                  ("learnable_init_states", True, "learnable initial states")):
                if ssm.get(key, not bad) == bad:
                    raise ExportError(f"{where}: ssm_cfg.{key}={bad}: {why} is not supported")
            if ssm.get("d_ssm") not in (None, d_inner):
                raise ExportError(f"{where}: ssm_cfg.d_ssm={ssm['d_ssm']}: a gated MLP beside "
                                  "the SSM (d_ssm < d_inner) is not supported")
            lim = ssm.get("dt_limit", (0.0, float("inf")))
            if float(lim[0]) > 0.0 or float(lim[1]) != float("inf"):
                raise ExportError(f"{where}: ssm_cfg.dt_limit={lim}: clamping Δ is not supported")
            m2 = _mamba2_keys(where, d_model, d_inner, d_state, d_conv, ssm.get("headdim", 64),
                              ssm.get("ngroups", 1))
            m2["mamba2.norm_eps"] = "1e-05"  # Mamba2's RMSNormGated(eps=1e-5)
    for key, v in (("d_state", d_state), ("d_conv", d_conv), ("expand", expand),
                   ("d_inner", d_inner)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ExportError(f"{where}: {key} must be a positive integer (got {v!r})")
    if dt_rank == "auto":
        dt_rank = math.ceil(d_model / 16)
    if isinstance(dt_rank, bool) or not isinstance(dt_rank, int) or dt_rank <= 0:
        raise ExportError(f"{where}: dt_rank/time_step_rank must be 'auto' or a positive integer")
    emb = sd.get("backbone.embedding.weight")
    if emb is None:
        emb = sd.get("backbone.embeddings.weight")
    if emb is None:
        raise ExportError(f"{where}: checkpoint has no backbone.embedding(s).weight")
    # mamba_ssm pads the vocabulary (pad_vocab_size_multiple): the rows are the truth.
    vocab = int(emb.shape[0])
    meta = {
        "ssmd.format": "1", "architecture": arch,
        "d_model": d_model, "n_layer": n_layer, "d_state": d_state, "d_conv": d_conv,
        "expand": expand, "d_inner": d_inner, "dt_rank": dt_rank,
        "norm": "rmsnorm", "norm_eps": repr(float(eps)),
        "input": "tokens", "vocab_size": vocab, "heads": "lm,embedding",
        "conv_bias": "true" if conv_bias else "false",
        "proj_bias": "true" if proj_bias else "false",
        "source.format": kind,
    }
    meta.update(m2)
    if not hf:
        meta.update(hybrid)
        kinds = [meta.get(f"layers.{i}.kind", arch) for i in range(n_layer)]
        if all(k == "attention" for k in kinds):
            meta["architecture"] = "attention"
            for i in range(n_layer):
                del meta[f"layers.{i}.kind"]
    if "vocab_size" in cfg and cfg["vocab_size"] != vocab:
        meta["source.vocab_size"] = cfg["vocab_size"]
    return meta, conv_bias, proj_bias, kind


# ---- tensors ---------------------------------------------------------------

_LAYER_PARTS = ("norm.weight", "mixer.in_proj.weight", "mixer.in_proj.bias",
                "mixer.conv1d.weight", "mixer.conv1d.bias", "mixer.x_proj.weight",
                "mixer.dt_proj.weight", "mixer.dt_proj.bias", "mixer.A_log", "mixer.D",
                "mixer.out_proj.weight", "mixer.out_proj.bias")
_LAYER_PARTS2 = ("norm.weight", "mixer.in_proj.weight", "mixer.in_proj.bias",
                 "mixer.conv1d.weight", "mixer.conv1d.bias", "mixer.dt_bias", "mixer.A_log",
                 "mixer.D", "mixer.norm.weight", "mixer.out_proj.weight", "mixer.out_proj.bias")


_LAYER_PARTS_ATTN = ("norm.weight", "mixer.in_proj.weight", "mixer.in_proj.bias",
                     "mixer.out_proj.weight", "mixer.out_proj.bias")
_MLP_PARTS = ("norm2.weight", "mlp.fc1.weight", "mlp.fc2.weight")


def rename(sd, n_layer, where, arch="mamba1", kinds=None, mlp=False):
    """mamba_ssm names, HF aliases folded, tied lm_head dropped; unknown names refused.
    kinds: each layer's kind (default arch); mlp: every layer has a GatedMLP."""
    out = {}
    for k, v in sd.items():
        if k.startswith("_orig_mod."):  # torch.compile wrapper
            k = k[len("_orig_mod."):]
        if k == "backbone.embeddings.weight":
            k = "backbone.embedding.weight"
        if k.endswith(".mixer.rotary_emb.inv_freq"):
            continue  # flash_attn's buffer: ssmd computes the frequencies from the base
        if k in out:
            raise ExportError(f"{where}: tensor {k} appears twice (also under its HF alias)")
        out[k] = np.asarray(v, dtype=np.float32)
    known = {"backbone.embedding.weight", "backbone.norm_f.weight", "lm_head.weight"}
    kinds = kinds or [arch] * n_layer
    table = {"mamba1": _LAYER_PARTS, "mamba2": _LAYER_PARTS2, "attention": _LAYER_PARTS_ATTN}
    known |= {f"backbone.layers.{i}.{p}" for i in range(n_layer) for p in table[kinds[i]]}
    if mlp:
        known |= {f"backbone.layers.{i}.{p}" for i in range(n_layer) for p in _MLP_PARTS}
    unknown = sorted(set(out) - known)
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        name = ("hybrid" if len(set(kinds)) > 1 or mlp else
                "Mamba-2" if arch == "mamba2" else "attention" if arch == "attention" else "Mamba-1")
        raise ExportError(f"{where}: tensors not part of a {n_layer}-layer {name} LM: "
                          f"{', '.join(unknown[:3])}{more}")
    lm = out.get("lm_head.weight")
    emb = out.get("backbone.embedding.weight")
    if lm is not None and emb is not None and lm.shape == emb.shape and np.array_equal(lm, emb):
        del out["lm_head.weight"]  # tied: the loader reuses the embedding
    return out


def export(checkpoint, out_path, dtype="f32", config_path=None, extra_meta=None, attn_window=None):
    sd, d = load_state_dict(checkpoint)
    config_path = config_path or os.path.join(d, "config.json")
    try:
        with open(config_path) as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{config_path}: cannot read config: {e}") from None
    if not isinstance(cfg, dict):
        raise ExportError(f"{config_path}: not a JSON object")
    meta, conv_bias, proj_bias, _ = read_config(cfg, config_path, sd, attn_window)
    kinds = [meta.get(f"layers.{i}.kind", meta["architecture"]) for i in range(meta["n_layer"])]
    tensors = rename(sd, meta["n_layer"], checkpoint, meta["architecture"], kinds,
                     "d_intermediate" in meta)
    for i in range(meta["n_layer"]):
        p = f"backbone.layers.{i}.mixer."
        if kinds[i] == "attention":
            for b, key in (("in_proj.bias", "attention.qkv_proj_bias"),
                           ("out_proj.bias", "attention.out_proj_bias")):
                on = meta[key] == "true"
                if (p + b in tensors) != on:
                    raise ExportError(f"{checkpoint}: {p}{b} {'missing' if on else 'present'} "
                                      f"but attn_cfg says {key.split('.')[1]}={on}")
            continue
        if (p + "conv1d.bias" in tensors) != conv_bias:
            raise ExportError(f"{checkpoint}: {p}conv1d.bias "
                              f"{'missing' if conv_bias else 'present'} but the config says "
                              f"conv bias {'on' if conv_bias else 'off'}")
        for b in ("in_proj.bias", "out_proj.bias"):
            if (p + b in tensors) != proj_bias:
                raise ExportError(f"{checkpoint}: {p}{b} "
                                  f"{'missing' if proj_bias else 'present'} but the config "
                                  f"says projection bias {'on' if proj_bias else 'off'}")
    for kv in extra_meta or ():
        if "=" not in kv:
            raise ExportError(f"--meta {kv!r}: expected key=value")
        k, v = kv.split("=", 1)
        meta[k] = v
    bad = [k for k, a in tensors.items() if not np.all(np.isfinite(a))]
    if bad:
        raise ExportError(f"{checkpoint}: non-finite values in {', '.join(sorted(bad)[:3])}")
    st_dtype = {"f32": "F32", "f16": "F16", "bf16": "BF16"}[dtype]
    if st_dtype == "F16":
        big = [k for k, a in tensors.items() if np.any(np.abs(a) > 65504)]
        if big:
            raise ExportError(f"{checkpoint}: {', '.join(sorted(big)[:3])} exceed the float16 "
                              "range (use --dtype bf16 or f32)")
    tmp = out_path + ".tmp"
    ssmd_file.save(tmp, tensors, {k: str(v) for k, v in meta.items()}, st_dtype)
    os.replace(tmp, out_path)  # never leave a half-written model behind
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="directory, .safetensors, .bin or .pt")
    ap.add_argument("-o", "--output", required=True, help="ssmd model file to write")
    ap.add_argument("--config", help="config.json (default: next to the checkpoint)")
    ap.add_argument("--dtype", choices=("f32", "f16", "bf16"), default="f32",
                    help="storage dtype (compute in ssmd is always fp32)")
    ap.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                    help="extra __metadata__ entry (repeatable)")
    ap.add_argument("--attn-window", type=int, metavar="W",
                    help="frames an attention layer sees (required with attn_layer_idx): "
                         "ssmd keeps a ring of the last W frames' keys and values per stream")
    a = ap.parse_args(argv)
    if a.attn_window is not None and a.attn_window < 1:
        print("export: --attn-window must be >= 1", file=sys.stderr)
        return 1
    try:
        meta = export(a.checkpoint, a.output, a.dtype, a.config, a.meta, a.attn_window)
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 1
    print(f"export: wrote {a.output} ({meta['source.format']}, d_model={meta['d_model']}, "
          f"n_layer={meta['n_layer']}, vocab_size={meta['vocab_size']}, dtype={a.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
