# SPDX-License-Identifier: MIT
"""Guards the bundled default model's quality through the daemon (no torch).

  run_ref.sh test_default_quality.py SSMD MODEL WORKDIR

Input: the real human voice recordings alsa-utils installs
(/usr/share/sounds/alsa/Front_Center, Front_Left, Rear_Right; 48 kHz, never
used in training: train/banks.py), joined with pauses, at 48 kHz.  Each case is
denoised by `ssmd --model MODEL IN -o OUT` (the offline file job); figures are
computed with numpy against the clean speech:
  - pink noise at 0 dB and white noise at 5 dB SNR (fixed seeds): SI-SDR
    improvement (Le Roux et al. 2019) >= MIN_IMPROVEMENT_DB, full band;
  - the speech above 8 kHz is kept: on the clean input, the 9-16 kHz band of the
    output against that band of the input has SI-SDR >= MIN_HF_SISDR_DB (a
    band-limited model, or one that removes high frequencies, fails);
  - clean speech: output SI-SDR against the input >= MIN_CLEAN_SISDR_DB and the
    active-speech level within ±CLEAN_LEVEL_DB ("clean speech damaged by less
    than 0.5 dB");
  - 5 s of pink noise alone: turned down by >= MIN_NOISE_ATTEN_DB (first 0.1 s
    ignored) and the job's mean voice activity <= MAX_NOISE_VAD.
Thresholds come from the held-out evaluation in models/README.md, with margin.
Prints every figure measured.  Exits 77 (meson: skipped) only when alsa-utils'
recordings are missing (scripts/setup.sh installs alsa-utils).
"""
import os
import re
import subprocess
import sys

import numpy as np
from scipy.io import wavfile

MIN_IMPROVEMENT_DB = 6.0
MIN_HF_SISDR_DB = 10.0
MIN_CLEAN_SISDR_DB = 20.0
CLEAN_LEVEL_DB = 0.5
MIN_NOISE_ATTEN_DB = 30.0
MAX_NOISE_VAD = 0.1
SR = 48000
ALSA = "/usr/share/sounds/alsa"
VOICES = ["Front_Center.wav", "Front_Left.wav", "Rear_Right.wav"]


def si_sdr(est, ref):
    est = est - est.mean()
    ref = ref - ref.mean()
    a = np.dot(est, ref) / np.dot(ref, ref)
    s = a * ref
    return 10 * np.log10(np.dot(s, s) / np.dot(est - s, est - s))


def active_power(x):
    m = len(x) // 480
    e = (x[:m * 480].reshape(m, 480) ** 2).mean(axis=1)
    return float(e[e > e.max() * 1e-3].mean())


def noise(kind, n, rng):
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def band(x, lo, hi):
    """x restricted to lo..hi Hz (FFT brick-wall)."""
    X = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    X[(f <= lo) | (f >= hi)] = 0
    return np.fft.irfft(X, len(x))


def band_energy(x, lo, hi):
    S = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return S[(f > lo) & (f < hi)].sum()


def denoise(ssmd, model, x, work, name):
    src, dst = os.path.join(work, name + ".in.wav"), os.path.join(work, name + ".out.wav")
    wavfile.write(src, SR, x.astype(np.float32))
    r = subprocess.run([ssmd, "--model", model, src, "-o", dst, "--progress", "never"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"test_default_quality: ssmd failed: {r.stderr.strip()}")
    sr, y = wavfile.read(dst)
    y = y.astype(np.float64) / (32768.0 if y.dtype == np.int16 else 1.0)
    if y.ndim > 1:
        y = y.mean(axis=1)
    if sr != SR or len(y) != len(x):
        sys.exit(f"test_default_quality: {dst}: {sr} Hz, {len(y)} samples, expected {SR} Hz, {len(x)}")
    return y, r.stderr


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: test_default_quality.py SSMD MODEL WORKDIR")
    ssmd, model, work = sys.argv[1:]
    if not all(os.path.isfile(os.path.join(ALSA, v)) for v in VOICES):
        print(f"{ALSA}: alsa-utils' recordings are not installed (scripts/setup.sh): skipped")
        sys.exit(77)
    os.makedirs(work, exist_ok=True)
    parts = [np.zeros(SR // 4)]
    for v in VOICES:
        sr, x = wavfile.read(os.path.join(ALSA, v))
        x = x.astype(np.float64) / 32768.0
        x = x.mean(axis=1) if x.ndim > 1 else x
        if sr != SR:
            sys.exit(f"test_default_quality: {v}: {sr} Hz, expected {SR}")
        parts += [x, np.zeros(SR // 3)]
    s = np.concatenate(parts)
    s *= 0.2 / np.max(np.abs(s))
    rng = np.random.default_rng(606)
    ok = True
    for kind, snr in (("pink", 0.0), ("white", 5.0)):
        n = noise(kind, len(s), rng)
        n *= np.sqrt(active_power(s) / np.mean(n ** 2) / 10 ** (snr / 10))
        mix = s + n
        y, _ = denoise(ssmd, model, mix, work, f"{kind}{int(snr)}")
        before, after = si_sdr(mix, s), si_sdr(y, s)
        good = after - before >= MIN_IMPROVEMENT_DB
        print(f"{kind} noise at {snr:.0f} dB: SI-SDR {before:.2f} -> {after:.2f} dB "
              f"(improvement {after - before:+.2f} dB, need >= {MIN_IMPROVEMENT_DB}) {'ok' if good else 'FAIL'}")
        ok &= good
    y, _ = denoise(ssmd, model, s, work, "clean")
    c_sdr = si_sdr(y, s)
    c_lvl = 10 * np.log10(active_power(y) / active_power(s))
    good = c_sdr >= MIN_CLEAN_SISDR_DB and abs(c_lvl) <= CLEAN_LEVEL_DB
    ok &= good
    print(f"clean speech: output SI-SDR {c_sdr:.2f} dB (need >= {MIN_CLEAN_SISDR_DB}), active level "
          f"{c_lvl:+.2f} dB (need within ±{CLEAN_LEVEL_DB}) {'ok' if good else 'FAIL'}")
    hf_sdr = si_sdr(band(y, 9000, 16000), band(s, 9000, 16000))
    good = hf_sdr >= MIN_HF_SISDR_DB
    ok &= good
    print(f"clean speech above 8 kHz: 9-16 kHz band SI-SDR {hf_sdr:.2f} dB (need >= {MIN_HF_SISDR_DB}; "
          f"band energy {10 * np.log10(band_energy(y, 9000, 16000) / band_energy(s, 9000, 16000)):+.2f} dB) "
          f"{'ok' if good else 'FAIL'}")
    pink = noise("pink", 5 * SR, np.random.default_rng(5))
    pink *= 0.05 / np.sqrt(np.mean(pink ** 2))
    y, log = denoise(ssmd, model, pink, work, "pink_only")
    att = 10 * np.log10(np.mean(pink[4800:] ** 2) / max(np.mean(y[4800:] ** 2), 1e-30))
    m = re.search(r"mean voice activity ([0-9.]+)", log)
    vad = float(m.group(1)) if m else float("nan")
    good = att >= MIN_NOISE_ATTEN_DB and vad <= MAX_NOISE_VAD
    ok &= good
    print(f"pink noise alone: turned down by {att:.1f} dB (need >= {MIN_NOISE_ATTEN_DB}), mean voice activity "
          f"{vad:.3f} (need <= {MAX_NOISE_VAD}) {'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
