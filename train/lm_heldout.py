# SPDX-License-Identifier: MIT
"""The held-out codes of the mu-law model's NLL figure (models/mulaw_lm.md).

  /usr/bin/python3 train/lm_heldout.py [OUT]    (default train/cache/lm/heldout60.u8)
  build/tests/model/test_lm_nll --eval MODEL train/cache/lm/heldout60.u8

60 s of train/cache/lm/val.npy: 10 excerpts of 96 000 codes (6 s) starting at
evenly spaced offsets (numpy linspace over [0, len − 96 000]), concatenated
as raw uint8 (959 999 predictions).
"""
import os
import sys

import numpy as np

CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache", "lm")
N, LEN = 10, 96000


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "heldout60.u8")
    val = np.load(os.path.join(CACHE, "val.npy"))
    starts = np.linspace(0, len(val) - LEN, N).astype(np.int64)
    np.concatenate([val[s:s + LEN] for s in starts]).astype(np.uint8).tofile(out)
    print(f"{out}: {N} excerpts of {LEN} codes from {len(val)} held-out codes, starts {starts.tolist()}")


if __name__ == "__main__":
    main()
