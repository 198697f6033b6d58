# SPDX-License-Identifier: MIT
"""train.grow_width: a Denoiser widened from d_model 32 to 48 (d_inner 64 -> 96, dt_rank 2 -> 3)
computes the source's function (mask and voice-activity logits within 1e-4 of the source's on
random audio: RMSNorm's eps is the only difference), and every new parameter gets a gradient
(none is stuck at a zero-gradient saddle); a source of another d_state, d_conv or expand is
refused with a ValueError naming the sizes.

Usage: test_grow_width.py
Needs torch (skips with exit status 77 when it is missing).
"""
import os
import sys

import needs_torch  # noqa: F401,E402  (exits 77 without torch)
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import model as M  # noqa: E402
import train as T  # noqa: E402

torch.manual_seed(3)
torch.set_num_threads(1)
bad = 0
for pitch, n_bands in ((False, 8), (True, 0)):
    small = M.Denoiser(d_model=32, n_layer=2, n_bands=n_bands, pitch=pitch)
    with torch.no_grad():  # a trained-looking source: no zero or identity blocks
        for p in small.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    big = M.Denoiser(d_model=48, n_layer=2, n_bands=n_bands, pitch=pitch)
    big.load_state_dict(T.grow_width(small.state_dict(), big, torch.Generator().manual_seed(1)))
    x = torch.randn(2, 48000) * 0.05
    with torch.no_grad():
        _, m0, v0 = small.run(x, sequential=True)
        _, m1, v1 = big.run(x, sequential=True)
    err = max(float((m0 - m1).abs().max()), float((v0 - v1).abs().max()))
    scale = float(m0.abs().max())
    ok = err < 1e-4 * max(1.0, scale)
    print(f"{'ok  ' if ok else 'FAIL'} pitch={pitch} n_bands={n_bands}: largest difference {err:.2e} "
          f"(logits up to {scale:.2f})")
    bad += not ok
    # every parameter tensor of the wide model receives a gradient somewhere
    _, m, v = big.run(x, sequential=True)
    (m.pow(2).mean() + v.pow(2).mean()).backward()
    dead = [n for n, p in big.named_parameters() if p.grad is None or float(p.grad.abs().max()) == 0.0]
    print(f"{'ok  ' if not dead else 'FAIL'} parameters without a gradient: {dead}")
    bad += bool(dead)
    # the new rows of the last block's out_proj (they write the new residual dims) learn
    g = big.layers[-1].mixer.out_proj.weight.grad[32:]
    okg = float(g.abs().max()) > 0
    print(f"{'ok  ' if okg else 'FAIL'} new residual dims get a gradient ({float(g.abs().max()):.2e})")
    bad += not okg
# a source of another d_state, d_conv or expand is refused with a line naming the sizes
for kw in (dict(d_state=8), dict(d_conv=3), dict(expand=4)):
    src = M.Denoiser(d_model=32, n_layer=2, n_bands=8, **kw)
    try:
        T.grow_width(src.state_dict(), M.Denoiser(d_model=48, n_layer=2, n_bands=8), torch.Generator())
        print(f"FAIL {kw}: accepted")
        bad += 1
    except ValueError as e:
        ok = "can only grow in d_model with the same d_state, d_conv and expand" in str(e)
        print(f"{'ok  ' if ok else 'FAIL'} {kw}: {e}")
        bad += not ok
print("grow_width:", "FAILED" if bad else "passed")
sys.exit(1 if bad else 0)
