# SPDX-License-Identifier: MIT
"""Writes the model files tests/model/test_loader.c reads (valid and malformed).

Usage: make_loader_models.py OUTDIR [STAMP]   (STAMP: file touched at the end, for meson)

Valid files are written with train/ssmd_file.py; malformed ones are built from
the same tensors with a raw writer so each breaks exactly one rule of
docs/model-format.md.  Reference values come from numpy, not from the C code:
  tok_f16_ref / tok_bf16_ref   F32 files holding numpy's float16 / bfloat16
                               rounding of tok_f32's values (the C test checks
                               the F16/BF16 files load to exactly these);
  f16_table.bin                numpy's float16 → float32 for all 65536 bit patterns;
  tok_expected.bin             float32: embedding, layers.0.in_proj, layers.1.x_proj,
                               norm_f, then A = -exp(A_log) of layer 0 and 1 (numpy).
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "train"))
import ssmd_file  # noqa: E402

DM, NL, DS, DC, E, V = 8, 2, 4, 3, 2, 11
DI = E * DM
DR = 1  # auto: ceil(8 / 16)


def base_meta(**over):
    m = {"ssmd.format": "1", "architecture": "mamba1", "d_model": DM, "n_layer": NL,
         "d_state": DS, "d_conv": DC, "expand": E, "input": "tokens", "vocab_size": V}
    m.update(over)
    return {k: str(v) for k, v in m.items() if v is not None}


def mamba_tensors(rng, hf=False, tie=True, proj_bias=False, conv_bias=True):
    t = {}
    emb = "backbone.embeddings.weight" if hf else "backbone.embedding.weight"
    t[emb] = rng.standard_normal((V, DM))
    t["backbone.norm_f.weight"] = 1 + 0.1 * rng.standard_normal(DM)
    if not tie:
        t["lm_head.weight"] = rng.standard_normal((V, DM))
    for i in range(NL):
        p = f"backbone.layers.{i}."
        t[p + "norm.weight"] = 1 + 0.1 * rng.standard_normal(DM)
        m = p + "mixer."
        # include values that are float16 subnormals and bfloat16 ties
        w = rng.standard_normal((2 * DI, DM))
        w[0, :4] = [3e-6, -4e-7, 6.1e-5, 1 + 2 ** -8]
        t[m + "in_proj.weight"] = w
        t[m + "conv1d.weight"] = rng.standard_normal((DI, 1, DC))
        if conv_bias:
            t[m + "conv1d.bias"] = rng.standard_normal(DI)
        if proj_bias:
            t[m + "in_proj.bias"] = rng.standard_normal(2 * DI)
            t[m + "out_proj.bias"] = rng.standard_normal(DM)
        t[m + "x_proj.weight"] = rng.standard_normal((DR + 2 * DS, DI))
        t[m + "dt_proj.weight"] = rng.standard_normal((DI, DR))
        t[m + "dt_proj.bias"] = rng.standard_normal(DI)
        t[m + "A_log"] = np.log(np.tile(np.arange(1, DS + 1, dtype=np.float64), (DI, 1)))
        t[m + "D"] = rng.standard_normal(DI)
        t[m + "out_proj.weight"] = rng.standard_normal((DM, DI))
    return {k: np.asarray(v, dtype=np.float32) for k, v in t.items()}


def bf16_round(a):
    raw = ssmd_file._bf16_bytes(a)
    return ssmd_file.bf16_to_f32(raw).reshape(a.shape)


def write_raw(path, header, data, pad=True, header_len=None):
    """header: dict or bytes; data: bytes.  header_len overrides the length field."""
    hj = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        hj += b" " * ((8 - len(hj) % 8) % 8)
    n = len(hj) if header_len is None else header_len
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n))
        f.write(hj)
        f.write(data)


def layout(tensors, meta, dtype="F32"):
    """(header dict, data bytes) as ssmd_file.save would write them."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        raw = a.astype("<f4").tobytes() if dtype == "F32" else a.astype("<f2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    return header, b"".join(blobs)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    P = lambda name: os.path.join(out, name)  # noqa: E731
    rng = np.random.default_rng(20261130)
    tok = mamba_tensors(rng)
    meta = base_meta()

    # ---- valid -------------------------------------------------------------
    ssmd_file.save(P("tok_f32.safetensors"), tok, meta, "F32")
    ssmd_file.save(P("tok_f16.safetensors"), tok, meta, "F16")
    ssmd_file.save(P("tok_bf16.safetensors"), tok, meta, "BF16")
    ssmd_file.save(P("tok_f16_ref.safetensors"),
                   {k: v.astype(np.float16).astype(np.float32) for k, v in tok.items()}, meta)
    ssmd_file.save(P("tok_bf16_ref.safetensors"), {k: bf16_round(v) for k, v in tok.items()}, meta)
    exp = [tok["backbone.embedding.weight"], tok["backbone.layers.0.mixer.in_proj.weight"],
           tok["backbone.layers.1.mixer.x_proj.weight"], tok["backbone.norm_f.weight"]]
    exp += [-np.exp(tok[f"backbone.layers.{i}.mixer.A_log"]) for i in range(NL)]
    np.concatenate([e.astype("<f4").ravel() for e in exp]).tofile(P("tok_expected.bin"))
    h = 0xCBF29CE484222325
    for byte in open(P("tok_f32.safetensors"), "rb").read():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    with open(P("tok_f32.fnv1a64"), "w") as f:
        f.write(f"{h:016x}\n")
    np.arange(65536, dtype=np.uint16).view(np.float16).astype("<f4").tofile(P("f16_table.bin"))

    # F32 data at an odd address: header length ≡ 2 (mod 4), no padding.
    h, d = layout(tok, meta)
    hj = json.dumps(h, separators=(",", ":")).encode()
    hj += b" " * ((2 - len(hj) % 4) % 4)
    write_raw(P("tok_unaligned.safetensors"), hj, d, pad=False)

    ssmd_file.save(P("tok_noheads.safetensors"), tok, base_meta(heads=""))
    untied = mamba_tensors(np.random.default_rng(5), tie=False)
    ssmd_file.save(P("tok_untied.safetensors"), untied, meta)
    hf = mamba_tensors(np.random.default_rng(6), hf=True, tie=False, proj_bias=True,
                       conv_bias=False)
    ssmd_file.save(P("hf.safetensors"), hf, base_meta(proj_bias="true", conv_bias="false"))

    feat = mamba_tensors(np.random.default_rng(7))
    del feat["backbone.embedding.weight"]
    feat["frontend.proj.weight"] = rng.standard_normal((DM, 5)).astype(np.float32)
    feat["frontend.proj.bias"] = rng.standard_normal(DM).astype(np.float32)
    feat["head.mask.weight"] = rng.standard_normal((5, DM)).astype(np.float32)
    feat["head.mask.bias"] = rng.standard_normal(5).astype(np.float32)
    feat["head.vad.weight"] = rng.standard_normal((1, DM)).astype(np.float32)
    feat["head.vad.bias"] = rng.standard_normal(1).astype(np.float32)
    fmeta = base_meta(input="features", vocab_size=None, n_features=5, heads="mask,vad,embedding",
                      dt_rank="auto", norm_eps="1e-6", delta_A_min="-20", **{
                          "frontend.sample_rate_hz": 16000, "frontend.n_fft": 8,
                          "frontend.hop": 4, "frontend.window": "sqrt_hann",
                          "frontend.features": "log_power", "frontend.log_floor": "1e-10"})
    ssmd_file.save(P("feat.safetensors"), feat, fmeta, "BF16")
    # a banded mask head: 2 band logits interpolated to the 5 outputs (one output reads none)
    band = dict(feat)
    band["head.mask.weight"] = rng.standard_normal((2, DM)).astype(np.float32)
    band["head.mask.bias"] = rng.standard_normal(2).astype(np.float32)
    band["head.mask.interp"] = np.array([[1, 0], [0.75, 0.25], [0.5, 0.5], [0, 1], [0, 0]], np.float32)
    ssmd_file.save(P("feat_banded.safetensors"), band, fmeta)
    b2 = dict(band)
    b2["head.mask.interp"] = np.ones(5, np.float32)
    ssmd_file.save(P("interp_ndim.safetensors"), b2, dict(fmeta, n_mask=5))
    b2 = dict(band)
    b2["head.mask.weight"] = feat["head.mask.weight"]
    ssmd_file.save(P("interp_weight_rows.safetensors"), b2, fmeta)
    b2 = dict(band)
    b2["head.mask.interp"] = band["head.mask.interp"][:4]
    ssmd_file.save(P("interp_rows.safetensors"), b2, dict(fmeta, n_mask=5))
    b2 = dict(band)
    e = band["head.mask.interp"].copy()
    e[2, 1] = np.inf
    b2["head.mask.interp"] = e
    ssmd_file.save(P("interp_inf.safetensors"), b2, fmeta)

    # ---- malformed container ---------------------------------------------
    open(P("empty.safetensors"), "wb").close()
    with open(P("short.safetensors"), "wb") as f:
        f.write(b"\x10\x00\x00")
    good = open(P("tok_f32.safetensors"), "rb").read()
    with open(P("trunc_data.safetensors"), "wb") as f:
        f.write(good[:-10])
    n_hdr = struct.unpack("<Q", good[:8])[0]
    with open(P("hdr_gt_file.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(good)) + good[8:])
    with open(P("hdr_2p63.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 1 << 63) + good[8:])
    with open(P("hdr_200mb.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 200_000_000) + good[8:])
    assert n_hdr < len(good)
    write_raw(P("not_json.safetensors"), b'{"a": [1, 2', b"")
    # jansson quotes the text near the error: here a raw newline after a backslash
    write_raw(P("json_newline.safetensors"), b'{"a": "s\\\n', b"")
    write_raw(P("root_array.safetensors"), b"[]", b"")
    write_raw(P("trailing_junk.safetensors"), b'{} x', b"")
    one = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    z16 = bytes(16)
    write_raw(P("dup_key.safetensors"),
              b'{"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
              b'"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', z16)
    write_raw(P("neg_offset.safetensors"), {"t": dict(one, data_offsets=[-16, 0])}, z16)
    write_raw(P("float_offset.safetensors"), {"t": dict(one, data_offsets=[0.0, 16])}, z16)
    write_raw(P("float_shape.safetensors"), {"t": dict(one, shape=[4.0])}, z16)
    write_raw(P("neg_shape.safetensors"), {"t": dict(one, shape=[-4])}, z16)
    write_raw(P("overlap.safetensors"), {"a": one, "b": dict(one, data_offsets=[8, 24])},
              bytes(24))
    write_raw(P("gap.safetensors"), {"a": one, "b": dict(one, data_offsets=[20, 36])}, bytes(36))
    write_raw(P("not_at_zero.safetensors"), {"a": dict(one, data_offsets=[4, 20])}, bytes(20))
    write_raw(P("out_of_file.safetensors"), {"a": one}, bytes(8))
    write_raw(P("trailing_data.safetensors"), {"a": one}, bytes(20))
    write_raw(P("end_before_begin.safetensors"), {"a": dict(one, data_offsets=[16, 0])}, z16)
    write_raw(P("dtype_f64.safetensors"), {"a": dict(one, dtype="F64", data_offsets=[0, 32])},
              bytes(32))
    write_raw(P("dtype_i8.safetensors"), {"a": dict(one, dtype="I8", data_offsets=[0, 4])},
              bytes(4))
    write_raw(P("size_mismatch.safetensors"), {"a": dict(one, shape=[3])}, z16)
    write_raw(P("shape_overflow.safetensors"),
              {"a": dict(one, shape=[1 << 62, 1 << 62])}, z16)
    write_raw(P("missing_field.safetensors"), {"a": {"shape": [4], "data_offsets": [0, 16]}}, z16)
    write_raw(P("extra_field.safetensors"), {"a": dict(one, extra=1)}, z16)
    write_raw(P("entry_not_object.safetensors"), {"a": [1, 2]}, b"")
    write_raw(P("too_many_dims.safetensors"), {"a": dict(one, shape=[1] * 9 + [4])}, z16)
    write_raw(P("meta_not_string.safetensors"), {"__metadata__": {"d_model": 8}}, b"")
    write_raw(P("meta_not_object.safetensors"), {"__metadata__": "x"}, b"")
    write_raw(P("ctrl_name.safetensors"), {"a\nb": one}, z16)

    # ---- valid container, invalid model ----------------------------------
    def bad(name, tensors=None, m=None, dtype="F32"):
        ssmd_file.save(P(name + ".safetensors"), tok if tensors is None else tensors,
                       meta if m is None else m, dtype)

    t = dict(tok)
    t["backbone.layers.0.mixer.in_proj.weight"] = np.zeros((2 * DI, DM + 1), np.float32)
    bad("wrong_shape", t)
    t = dict(tok)
    t["backbone.layers.0.mixer.conv1d.weight"] = np.zeros((DI, DC), np.float32)
    bad("wrong_ndim", t)
    t = dict(tok)
    del t["backbone.layers.1.mixer.D"]
    bad("missing_tensor", t)
    t = dict(tok)
    a = t["backbone.layers.0.mixer.A_log"].copy()
    a.flat[5] = np.nan
    t["backbone.layers.0.mixer.A_log"] = a
    bad("nan_a_log", t)
    t = dict(tok)
    a = t["backbone.layers.1.mixer.D"].copy()
    a.flat[3] = np.inf
    t["backbone.layers.1.mixer.D"] = a
    bad("inf_d", t)
    bad("inf_d_f16", t, dtype="F16")
    t = dict(tok)
    a = t["backbone.layers.0.mixer.A_log"].copy()
    a.flat[2] = 100.0
    t["backbone.layers.0.mixer.A_log"] = a
    bad("a_overflow", t)
    t = dict(tok)
    t["extra.weight"] = np.zeros(3, np.float32)
    bad("unknown_tensor", t)
    t = dict(tok)
    t["backbone.embeddings.weight"] = t["backbone.embedding.weight"]
    bad("alias_twice", t)
    bad("conv_bias_false_present", m=base_meta(conv_bias="false"))
    bad("proj_bias_missing", m=base_meta(proj_bias="true"))
    bad("meta_inconsistent", m=base_meta(d_model=16))
    bad("meta_d_state_wrong", m=base_meta(d_state=8))
    bad("missing_d_state", m=base_meta(d_state=None))
    bad("missing_format", m=base_meta(**{"ssmd.format": None}))
    bad("bad_format", m=base_meta(**{"ssmd.format": "2"}))
    bad("bad_arch", m=base_meta(architecture="mamba3"))
    bad("int_junk", m=base_meta(d_model="64x"))
    bad("int_neg", m=base_meta(d_model="-3"))
    bad("int_big", m=base_meta(d_model="99999999999"))
    bad("int_plus", m=base_meta(n_layer="+2"))
    bad("int_empty", m=base_meta(d_conv=""))
    bad("dt_rank_bad", m=base_meta(dt_rank="automatic"))
    bad("eps_bad", m=base_meta(norm_eps="abc"))
    bad("eps_nan", m=base_meta(norm_eps="nan"))
    bad("delta_pos", m=base_meta(delta_A_min="3"))
    bad("heads_dup", m=base_meta(heads="lm,lm"))
    bad("heads_empty_item", m=base_meta(heads="lm,"))
    bad("heads_unknown", m=base_meta(heads="lm,pitch"))
    bad("norm_layer", m=base_meta(norm="layernorm"))
    bad("input_bad", m=base_meta(input="audio"))
    bad("frontend_bad_int", m=base_meta(**{"frontend.n_fft": "512.0"}))
    bad("frontend_bad_float", m=base_meta(**{"frontend.log_floor": "1e-10dB"}))
    bad("vocab_missing", m=base_meta(vocab_size=None))
    t = dict(tok)
    del t["backbone.embedding.weight"]
    t["lm_head.weight"] = tok["backbone.embedding.weight"]
    bad("embedding_missing", t)


if __name__ == "__main__":
    main()
    if len(sys.argv) > 2:
        open(sys.argv[2], "w").close()
