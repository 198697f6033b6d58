# SPDX-License-Identifier: MIT
"""ssmd (unchanged daemon) runs a model that mixes Mamba-1 and Mamba-2 layers.

Usage: test_mamba2_file.py SSMD WORKDIR

Writes a random features model (tests/ref/mamba2_ref.py: layers mamba1,
mamba2, mamba2; the default denoiser's front end) and a 2 s noise file
(32-bit float WAV; --output-format float keeps every bit of the output),
transcodes it with --chunk-frames 1, 7, 32 and 1024 and checks: exit status
0; the reported state bytes equal the per-layer sum
64 + 4·Σ(conv_dim·d_conv + d_inner·d_state) computed here; the same output
bytes whatever the chunking (a Mamba-2 chunk gives the bits of its frames
stepped: DESIGN.md §3 chunk invariance); the output as long as the input and
not all zero.
"""
import os
import re
import subprocess
import sys
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
import mamba2_ref  # noqa: E402

FRONTEND = {"frontend.sample_rate_hz": "48000", "frontend.n_fft": "960", "frontend.hop": "480",
            "frontend.window": "sqrt_hann", "frontend.features": "log_power",
            "frontend.log_floor": "1e-10"}


def write_f32_wav(path, x, rate):
    """Mono IEEE-float WAV (format tag 3)."""
    data = np.asarray(x, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def read_wav_data(path):
    """(format tag, data bytes) of a WAV file (chunks walked, no conversion)."""
    b = open(path, "rb").read()
    o, tag, data = 12, None, None
    while o + 8 <= len(b):
        cid, size = b[o:o + 4], struct.unpack("<I", b[o + 4:o + 8])[0]
        if cid == b"fmt ":
            tag = struct.unpack("<H", b[o + 8:o + 10])[0]
        elif cid == b"data":
            data = b[o + 8:o + 8 + size]
        o += 8 + size + (size & 1)
    return tag, data


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    ssmd, work = argv[1], argv[2]
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "mixed_denoiser.safetensors")
    d_model, d_state, d_conv, head_dim, n_groups = 32, 16, 4, 16, 2
    mamba2_ref.make_model(model, d_model=d_model, kinds=["mamba1", "mamba2", "mamba2"],
                          head_dim=head_dim, n_groups=n_groups, d_state=d_state, d_conv=d_conv,
                          n_features=481, heads="mask,vad", n_mask=481, seed=3,
                          meta_extra=FRONTEND)
    d_inner = 2 * d_model
    m1 = d_inner * d_conv + d_inner * d_state
    m2 = (d_inner + 2 * n_groups * d_state) * d_conv + d_inner * d_state
    want_bytes = 64 + 4 * (m1 + 2 * m2)
    n = 48000 * 2
    src = os.path.join(work, "in.wav")
    write_f32_wav(src, np.random.default_rng(0).normal(0, 0.1, n), 48000)
    outs, ok = {}, True
    for chunk in (1, 7, 32, 1024):
        dst = os.path.join(work, f"out_{chunk}.wav")
        res = subprocess.run([ssmd, "--model", model, "--chunk-frames", str(chunk),
                              "--output-format", "float", src, "-o", dst],
                             capture_output=True, text=True, timeout=120)
        text = res.stdout + res.stderr
        m = re.search(r"state (\d+) bytes", text)
        got = int(m.group(1)) if m else -1
        if res.returncode != 0 or got != want_bytes:
            print(f"FAIL chunk {chunk}: rc {res.returncode}, state bytes {got} (want {want_bytes}): "
                  f"{text.strip()[-300:]}")
            ok = False
            continue
        tag, data = read_wav_data(dst)
        if tag not in (3, 0xFFFE):  # IEEE float (or extensible)
            print(f"FAIL chunk {chunk}: output WAV format tag {tag}, expected float")
            ok = False
            continue
        outs[chunk] = (len(data) // 4, data)
    if ok:
        frames = {k: v[0] for k, v in outs.items()}
        same = len({v[1] for v in outs.values()}) == 1
        nonzero = np.any(np.frombuffer(outs[32][1], dtype="<f4") != 0)
        ok = same and all(f == n for f in frames.values()) and nonzero
        print(f"{'ok' if ok else 'FAIL'}: Mamba-1 + 2 x Mamba-2 model through ssmd: state "
              f"{want_bytes} bytes as computed here; output {frames[32]} frames for {n} in; "
              f"identical for --chunk-frames 1, 7, 32, 1024: {'yes' if same else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
