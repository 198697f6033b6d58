#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Makes examples/real_voice_48k.flac (the demo's input) and its clean reference
examples/real_voice_48k_clean.flac.

Real recorded voices at 44.1 kHz, from 0ad-data (0 A.D.'s Napatan voice acting,
a male and a female actor; a source held out of training, train/banks.py), trimmed, joined
with pauses, resampled to 48 kHz, mixed with real recorded rain (megaglest-data,
tileset "autumn"; held out of training too) at 5 dB SNR over active speech;
peak −3 dBFS; 16-bit FLAC for the mixture, 24-bit FLAC for the reference, which
is scaled exactly as in the mixture.  Both packages are CC-BY-SA-3.0 (0 A.D. by
Wildfire Games; MegaGlest by the MegaGlest team): see examples/README.md.

  /usr/bin/python3 train/banks.py     # fetches the packages into train/cache (once)
  /usr/bin/python3 examples/make_real_example.py
Deterministic (fixed list of files, fixed noise offset).
"""
import io
import os
import sys
import zipfile

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.join(HERE, "..", "train", "cache", "pkgroot", "usr", "share", "games")
VOICES = ["civ_female_go_out_against_01.ogg", "civ_male_garrison_01.ogg", "civ_female_retreat_01.ogg",
          "civ_male_heal_01.ogg"]
SR, SNR_DB = 48000, 5.0


def main():
    zpath = os.path.join(PKG, "0ad", "mods", "public", "public.zip")
    rain = os.path.join(PKG, "megaglest", "tilesets", "autumn", "sounds", "rain.ogg")
    if not (os.path.isfile(zpath) and os.path.isfile(rain)):
        sys.exit("make_real_example: 0ad-data / megaglest-data not unpacked in train/cache (run train/banks.py)")
    parts = [np.zeros(SR // 2)]
    with zipfile.ZipFile(zpath) as z:
        names = set(z.namelist())
        for v in VOICES:
            n = f"audio/voice/napatan/civ/{v}"
            if n not in names:
                sys.exit(f"make_real_example: {n} not in {zpath}")
            x, sr = sf.read(io.BytesIO(z.read(n)), dtype="float64", always_2d=True)
            x = resample_poly(x.mean(1), SR // 300, sr // 300) if sr == 44100 else x.mean(1)
            a = np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)  # trim to 50 ms around the voice
            x = x[max(0, np.argmax(a) - 2400):len(x) - max(0, np.argmax(a[::-1]) - 2400)]
            parts += [x / np.max(np.abs(x)), np.zeros(int(0.6 * SR))]
    clean = np.concatenate(parts)
    r, sr = sf.read(rain, dtype="float64", always_2d=True)
    r = resample_poly(r.mean(1), SR // 300, sr // 300) if sr == 44100 else r.mean(1)
    while len(r) < len(clean) + SR:
        r = np.concatenate([r, r])
    noise = r[SR:SR + len(clean)]
    m = len(clean) // 480
    e = (clean[:m * 480].reshape(m, 480) ** 2).mean(1)
    p = e[e > e.max() * 1e-3].mean()
    noise *= np.sqrt(p / np.mean(noise ** 2) / 10 ** (SNR_DB / 10))
    mix = clean + noise
    g = 10 ** (-3 / 20) / np.max(np.abs(mix))
    sf.write(os.path.join(HERE, "real_voice_48k.flac"), mix * g, SR, subtype="PCM_16")
    sf.write(os.path.join(HERE, "real_voice_48k_clean.flac"), clean * g, SR, subtype="PCM_24")
    print(f"examples/real_voice_48k.flac: {len(mix) / SR:.2f} s at {SR} Hz, {SNR_DB} dB SNR (rain)")


if __name__ == "__main__":
    main()
