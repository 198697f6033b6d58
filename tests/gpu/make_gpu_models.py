# SPDX-License-Identifier: MIT
"""Random models for tests/gpu/test_cuda.c and test_cuda_hybrid.c (numpy only,
tests/ref/mamba_ref.py, mamba2_ref.py, attn_ref.py): shapes chosen to reach
every path of the CUDA kernels, and the awkward sizes of issue 18 (n_heads
1/3/17, head_dim 1/7/64, n_groups 1/2, d_state 1/16/64/128, attention windows
shorter and longer than the test streams).

  make_gpu_models.py OUT_DIR [STAMP]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import mamba_ref  # noqa: E402
import attn_ref  # noqa: E402
import mamba2_ref  # noqa: E402

M1, M2, AT = "mamba1", "mamba2", "attention"
A = attn_ref.A

# Mamba-2, attention and mixed models for test_cuda_hybrid.c: name, generator, kwargs.
# Windows 1/3/16 are shorter than the 40-step test streams, 64 and 200 longer.
HYBRID = [
    ("m2_h1_p1_g1_n1", mamba2_ref.make_model,
     dict(d_model=8, m2_d_inner=1, kinds=[M2, M2], head_dim=1, d_state=1, seed=41)),
    ("m2_h3_p7_g1_n16", mamba2_ref.make_model,
     dict(d_model=21, expand=1, kinds=[M2, M2], head_dim=7, d_state=16, seed=42)),
    ("m2_h17_p7_g1_n64_tok", mamba2_ref.make_model,
     dict(d_model=16, m2_d_inner=119, kinds=[M2], head_dim=7, d_state=64, d_conv=3,
          inp="tokens", heads="lm", vocab=13, seed=43)),
    ("m2_h2_p64_g2_n128_bias", mamba2_ref.make_model,
     dict(d_model=64, kinds=[M2, M2], head_dim=64, n_groups=2, d_state=128, proj_bias=True,
          seed=44)),
    ("m2_h6_p1_g2_n16_fullnorm", mamba2_ref.make_model,
     dict(d_model=6, m2_d_inner=6, kinds=[M2], head_dim=1, n_groups=2, d_state=16,
          conv_bias=False, meta_extra={"mamba2.norm_group_size": "6"}, seed=45)),
    ("at_h1_p1_w1", attn_ref.make_model,
     dict(d_model=8, kinds=[AT, AT], attn=A(num_heads=1, head_dim=1, window=1), seed=46)),
    ("at_h3_p7_w3_rope6", attn_ref.make_model,
     dict(d_model=21, kinds=[AT, AT], attn=A(num_heads=3, head_dim=7, window=3,
                                             rotary_emb_dim=6), seed=47)),
    ("at_h6_kv3_p64_w64_inter", attn_ref.make_model,
     dict(d_model=32, kinds=[AT], attn=A(num_heads=6, num_heads_kv=3, head_dim=64, window=64,
                                         rotary_emb_dim=32, rotary_emb_interleaved=True),
          seed=48)),
    ("at_h17_kv1_p7_w200_mlp_tok", attn_ref.make_model,
     dict(d_model=17, kinds=[AT, AT], inp="tokens", heads="lm", vocab=13,
          attn=A(num_heads=17, num_heads_kv=1, head_dim=7, window=200, rotary_emb_dim=4,
                 rotary_emb_base=500.0, mlp_dim=10, qkv_proj_bias=False), seed=49)),
    ("mixed_m1_m2_at_dint", attn_ref.make_model,
     dict(d_model=32, kinds=[M1, M2, AT], head_dim=16, d_state=8, m2_d_state=16, n_groups=2,
          d_intermediate=40, attn=A(num_heads=4, num_heads_kv=2, window=16, rotary_emb_dim=8),
          seed=50)),
    ("mixed_at_m1_at_m2_tok", attn_ref.make_model,
     dict(d_model=24, kinds=[AT, M1, AT, M2], head_dim=12, d_state=4, inp="tokens",
          heads="lm,vad", vocab=17, attn=A(num_heads=3, num_heads_kv=1, window=7,
                                           rotary_emb_dim=8, rotary_emb_interleaved=True),
          seed=51)),
]
# beyond the CUDA kernels' limits (head_dim 300 > SSM_CUDA_MAX_HEAD_DIM): refused by name
REFUSED = [
    ("at_p300_refused", attn_ref.make_model,
     dict(d_model=8, kinds=[AT], attn=A(num_heads=1, head_dim=300, window=4), seed=52)),
]


def main(argv):
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    mk = mamba_ref.make_model
    # features in, mask + vad out; d_state 8 (8 lanes per channel)
    mk(os.path.join(out, "feat.safetensors"), d_model=24, n_layer=2, d_state=8,
       n_features=6, heads="mask,vad", n_mask=5, seed=1)
    # tokens in, LM out, in/out projection biases, tied embedding, d_state 4
    mk(os.path.join(out, "tok.safetensors"), d_model=16, n_layer=1, d_state=4,
       inp="tokens", vocab=11, heads="lm", proj_bias=True, tie=True, seed=3)
    # awkward: d_inner 2·53 = 106, d_state 33 (two state elements per lane),
    # d_conv 3, dt_rank 5, log-decay clamp
    mk(os.path.join(out, "odd.safetensors"), d_model=53, n_layer=3, d_state=33,
       d_conv=3, dt_rank=5, n_features=7, heads="mask,vad", n_mask=3,
       delta_A_min=-6.0, seed=4)
    # d_state 1, d_conv 1, one layer
    mk(os.path.join(out, "tiny.safetensors"), d_model=3, n_layer=1, d_state=1,
       d_conv=1, dt_rank=1, n_features=2, heads="vad", seed=5)
    for name, make, kw in HYBRID + REFUSED:
        make(os.path.join(out, name + ".safetensors"), **kw)
    if len(argv) > 2:
        open(argv[2], "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
