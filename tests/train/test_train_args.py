# SPDX-License-Identifier: MIT
"""train/train.py refuses bad options with one line naming the option, before it
reads any bank (so this runs without train/cache): --snr-range, --family-p,
--p-noise-only, --steps, --snapshot-every (the last line of stderr: a machine's
warnings may come before it).

Usage: test_train_args.py
Needs torch (train.py imports it; skips with exit status 77 when it is missing).
"""
import os
import subprocess
import sys

import needs_torch  # noqa: F401,E402  (exits 77 without torch)

TRAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "train", "train.py")
CASES = [
    (["--snr-range", "10,5"], "train: --snr-range '10,5' must be two numbers LOW,HIGH (dB) with LOW < HIGH"),
    (["--snr-range=-10"], "train: --snr-range '-10' must be two numbers LOW,HIGH (dB) with LOW < HIGH"),
    (["--snr-range", "a,b"], "train: --snr-range 'a,b' must be two numbers LOW,HIGH (dB) with LOW < HIGH"),
    (["--family-p", "0.5,0.5,0.5"], "train: --family-p '0.5,0.5,0.5' must be three probabilities summing to 1"),
    (["--p-noise-only", "1.0"], "train: --p-noise-only 1.0 must be in [0, 1)"),
    (["--steps", "0"], "train: --steps and --batch must be >= 1"),
    (["--snr-range=-inf,5"], "train: --snr-range '-inf,5' must be finite"),
    (["--snapshot-every", "50"], "train: --snapshot-every 50 must be 0 or a multiple of 100 (the checkpoint "
     "interval)"),
]
bad = 0
for args, want in CASES:
    r = subprocess.run([sys.executable, TRAIN, "--ckpt", "/nonexistent/ckpt.pt"] + args,
                       capture_output=True, text=True, timeout=120)
    got = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    ok = r.returncode != 0 and got == want
    print(f"{'ok  ' if ok else 'FAIL'} {' '.join(args)}: exit {r.returncode}, {got!r}")
    bad += not ok
print(f"{len(CASES) - bad} of {len(CASES)} refused as expected")
sys.exit(1 if bad else 0)
