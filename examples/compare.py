#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Compares an ssmd output file with its input: length, best lag, and the
SNR of the output against the (gain-matched) input.  Used by scripts/demo.sh.
Usage: /usr/bin/python3 examples/compare.py IN OUT"""
import subprocess
import sys
import tempfile

import warnings

import numpy as np
from scipy.io import wavfile

warnings.filterwarnings("ignore", category=wavfile.WavFileWarning)


def read(path):
    with tempfile.NamedTemporaryFile(suffix=".wav") as t:
        subprocess.run(["sndfile-convert", "-float32", path, t.name], check=True)
        sr, x = wavfile.read(t.name)
    return sr, x.reshape(len(x), -1).mean(axis=1).astype(np.float64)


def main(a, b):
    sr_a, x = read(a)
    sr_b, y = read(b)
    lags = range(-8, 9)
    n = min(len(x), len(y)) - 16
    corr = [np.dot(x[8:8 + n], y[8 + k:8 + k + n]) for k in lags]
    lag = list(lags)[int(np.argmax(corr))]
    g = np.dot(x, y) / max(np.dot(y, y), 1e-30)
    snr = 10 * np.log10(np.sum(x ** 2) / max(np.sum((x - g * y) ** 2), 1e-30))
    print(f"compare: input {len(x)} samples at {sr_a} Hz, output {len(y)} samples at {sr_b} Hz, "
          f"best lag {lag} samples, output vs input SNR {snr:.1f} dB")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
