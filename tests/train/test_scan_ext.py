# SPDX-License-Identifier: MIT
"""train/scan_ext.py (the C selective scan and its gradient that train.py uses on a CPU)
against model.scan_sequential in float64: outputs within 1e-5 and gradients within 1e-4
relative, at awkward sizes (5 channels × 3 states, 37 channels) and the denoiser's
(256 channels × 16 states × 300 frames), with and without the states kept for the
backward pass (scan_ext._check).

Usage: test_scan_ext.py
Needs torch (skips with exit status 77 when it is missing) and a C compiler.
"""
import os
import sys

import needs_torch  # noqa: F401,E402  (exits 77 without torch)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train"))
import scan_ext  # noqa: E402

if not scan_ext.available():
    print(f"FAIL train/scan_ext.c could not be built: {scan_ext._err}")
    sys.exit(1)
sys.exit(scan_ext._check())
