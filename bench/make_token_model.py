#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A random mu-law token model for the generation benchmark (bench/gen_bench.sh):
Mamba-1 initialised the way mamba_ssm does (tests/ref/mamba_ref.py make_model),
vocabulary 256, an LM head, and the mu-law front-end metadata the daemon's
generator needs (16 kHz, mu 255).  The default shape, d_model 256 × 2 layers ×
d_state 16, has 1 007 360 parameters: issue 8's "model of about 1 M parameters".

    bench/make_token_model.py OUT [D_MODEL N_LAYER D_STATE]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
sys.path.insert(0, os.path.join(HERE, "..", "train"))

import mamba_ref  # noqa: E402
import ssmd_file  # noqa: E402


def main(argv):
    if len(argv) not in (2, 5):
        sys.exit(__doc__)
    path = argv[1]
    d_model, n_layer, d_state = (int(a) for a in argv[2:5]) if len(argv) == 5 else (256, 2, 16)
    mamba_ref.make_model(path, d_model, n_layer, d_state, inp="tokens", vocab=256, heads="lm",
                         delta_A_min=-6.0, seed=1)
    t, meta = ssmd_file.load(path)
    meta.update({"frontend.features": "mulaw", "frontend.mulaw_mu": "255",
                 "frontend.sample_rate_hz": "16000", "name": f"random-token-{d_model}x{n_layer}"})
    ssmd_file.save(path, t, meta)
    print(f"{path}: {sum(v.size for v in t.values())} parameters", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
