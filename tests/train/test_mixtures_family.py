# SPDX-License-Identifier: MIT
"""train/mixtures.py refuses a noise family it does not know (make_example, make_noise) with
one line naming it and the known ones, before it reads a bank: "recorded" (what the docs call
the real family) used to fall through to babble silently, so a diagnostic asking for it
measured babble.

Usage: test_mixtures_family.py
Needs numpy and scipy (train/mixtures.py's imports).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import mixtures  # noqa: E402

WANT = "noise family 'recorded': expected one of generated, real, babble"
bad = 0
for name, call in (("make_example", lambda: mixtures.make_example(4800, np.random.default_rng(0), None, None, 480,
                                                                   960, snr_db=0, family="recorded")),
                   ("make_noise", lambda: mixtures.make_noise("recorded", 4800, np.random.default_rng(0), None,
                                                               None))):
    try:
        call()
        got = "no error"
    except ValueError as e:
        got = str(e)
    except Exception as e:  # noqa: BLE001 (what the old code raised reading a None bank)
        got = f"{type(e).__name__}: {e}"
    ok = got == WANT
    print(f"{'ok  ' if ok else 'FAIL'} {name}(family='recorded'): {got}")
    bad += not ok
sys.exit(1 if bad else 0)
