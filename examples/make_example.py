#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Makes examples/noisy_speech.flac, the bundled example input.

Speech synthesized with espeak-ng (en-us), resampled 22050 -> 16000 Hz, mixed
with pink noise and 50 Hz mains hum (3 harmonics) at 5 dB SNR, peak -3 dBFS,
16-bit FLAC.  Deterministic (fixed seed).  Needs espeak-ng, sndfile-programs,
python3-numpy, python3-scipy (Debian).  Run: /usr/bin/python3 examples/make_example.py
With --clean-ref OUT.wav it instead writes the clean speech, scaled exactly as
in the mixture (32-bit float WAV), leaving the FLAC alone: the reference for
measuring what the denoiser achieved (scripts/demo.sh).  It also reports how
far the regenerated mixture is from the shipped FLAC (espeak-ng must produce
the same audio for the reference to be valid).
"""
import sys
import os
import subprocess
import tempfile

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

TEXT = ("The state space model listens to every frame once, and keeps only a small "
        "memory of what it heard. Noise goes down, speech stays.")
HERE = os.path.dirname(os.path.abspath(__file__))


def pink(n, rng):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec)); f[0] = 1
    return np.fft.irfft(spec / np.sqrt(f), n)


def main():
    rng = np.random.default_rng(20261130)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, TEXT], check=True)
        sr, x = wavfile.read(raw)
        x = x.astype(np.float64) / 32768.0
        speech = resample_poly(x, 16000, sr)
        speech = np.concatenate([np.zeros(8000), speech, np.zeros(8000)])
        n = len(speech)
        t = np.arange(n) / 16000.0
        noise = pink(n, rng)
        noise += 3.0 * np.std(noise) * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
        snr_db = 5.0
        p_s = np.mean(speech[speech != 0] ** 2)
        noise *= np.sqrt(p_s / np.mean(noise ** 2) / 10 ** (snr_db / 10))
        mix = speech + noise
        gain = 10 ** (-3 / 20) / np.max(np.abs(mix))
        mix *= gain
        pcm = np.round(mix * 32767).astype(np.int16)
        if len(sys.argv) == 3 and sys.argv[1] == "--clean-ref":
            shipped = os.path.join(HERE, "noisy_speech.flac")
            dec = os.path.join(tmp, "shipped.wav")
            subprocess.run(["sndfile-convert", "-pcm16", shipped, dec], check=True)
            _, ref = wavfile.read(dec)
            same = len(ref) == len(pcm) and int(np.max(np.abs(ref.astype(np.int32) - pcm))) <= 1
            wavfile.write(sys.argv[2], 16000, (speech * gain).astype(np.float32))
            print(f"{sys.argv[2]}: clean reference, {n / 16000:.2f} s; regenerated mixture "
                  f"{'matches' if same else 'DIFFERS FROM'} {shipped}")
            return
        wav = os.path.join(tmp, "mix.wav")
        wavfile.write(wav, 16000, pcm)
        out = os.path.join(HERE, "noisy_speech.flac")
        subprocess.run(["sndfile-convert", "-pcm16", wav, out], check=True)
        print(f"{out}: {n / 16000:.2f} s, 16000 Hz, mono, SNR {snr_db} dB")


if __name__ == "__main__":
    main()
