# SPDX-License-Identifier: MIT
"""Random models for tests/gpu/test_cuda.c (numpy only, tests/ref/mamba_ref.py):
shapes chosen to reach every path of the CUDA kernels.

  make_gpu_models.py OUT_DIR [STAMP]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import mamba_ref  # noqa: E402


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
    if len(argv) > 2:
        open(argv[2], "w").close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
