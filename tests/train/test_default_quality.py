"""Guards the bundled default model's quality through the daemon (no torch).

  run_ref.sh test_default_quality.py SSMD MODEL WORKDIR

A held-out voice (espeak-ng, Dutch with the f4 variant: neither is used in
training, train/data.py) speaks two sentences; the clip is mixed with pink
noise at 0 dB SNR and with white noise at 5 dB (fixed seeds), and also kept
clean.  Each is denoised by `ssmd --model MODEL IN -o OUT` (the offline file
job); SI-SDR (scale-invariant SDR, Le Roux et al. 2019) is computed against
the clean speech with numpy.

Pass conditions (thresholds from the held-out evaluation in models/README.md,
with margin: the evaluation's per-condition means are several dB higher):
  - improvement >= MIN_IMPROVEMENT_DB on each noisy mixture;
  - on the clean clip, the output's SI-SDR against its input >= MIN_CLEAN_SISDR_DB
    and its active-speech level within CLEAN_LEVEL_DB of the input (the
    "no more than 0.5 dB degradation of clean speech" requirement).
Prints every figure measured.  Exits 77 (meson: skipped) only when espeak-ng
is not installed (scripts/setup.sh installs it).
"""
import os
import shutil
import subprocess
import sys

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

MIN_IMPROVEMENT_DB = 4.5
MIN_CLEAN_SISDR_DB = 30.0
CLEAN_LEVEL_DB = 0.5
SR = 16000
TEXT = "goed morgen, de trein naar de stad komt vandaag te laat. wij drinken water in de tuin."


def si_sdr(est, ref):
    est = est - est.mean()
    ref = ref - ref.mean()
    a = np.dot(est, ref) / np.dot(ref, ref)
    s = a * ref
    return 10 * np.log10(np.dot(s, s) / np.dot(est - s, est - s))


def active_power(x):
    m = len(x) // 256
    e = (x[:m * 256].reshape(m, 256) ** 2).mean(axis=1)
    return float(e[e > e.max() * 1e-3].mean())


def noise(kind, n, rng):
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    spec = np.fft.rfft(w)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def denoise(ssmd, model, x, work, name):
    src, dst = os.path.join(work, name + ".in.wav"), os.path.join(work, name + ".out.wav")
    wavfile.write(src, SR, x.astype(np.float32))
    r = subprocess.run([ssmd, "--model", model, src, "-o", dst, "--progress", "never"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"test_default_quality: ssmd failed: {r.stderr.strip()}")
    sr, y = wavfile.read(dst)
    y = y.astype(np.float64)
    if y.ndim > 1:
        y = y.mean(axis=1)
    if sr != SR or len(y) != len(x):
        sys.exit(f"test_default_quality: {dst}: {sr} Hz, {len(y)} samples, expected {SR} Hz, {len(x)}")
    return y


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: test_default_quality.py SSMD MODEL WORKDIR")
    ssmd, model, work = sys.argv[1:]
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (scripts/setup.sh): skipped")
        sys.exit(77)
    os.makedirs(work, exist_ok=True)
    raw = os.path.join(work, "speech.wav")
    subprocess.run(["espeak-ng", "-v", "nl+f4", "-s", "150", "-p", "55", "-w", raw, TEXT], check=True)
    sr, s = wavfile.read(raw)
    s = resample_poly(s.astype(np.float64) / 32768.0, SR, sr)
    s = np.concatenate([np.zeros(SR // 2), s, np.zeros(SR // 2)])
    s *= 0.1 / np.max(np.abs(s))
    rng = np.random.default_rng(606)
    ok = True
    for kind, snr in (("pink", 0.0), ("white", 5.0)):
        n = noise(kind, len(s), rng)
        n *= np.sqrt(active_power(s) / np.mean(n ** 2) / 10 ** (snr / 10))
        mix = s + n
        y = denoise(ssmd, model, mix, work, f"{kind}{int(snr)}")
        before, after = si_sdr(mix, s), si_sdr(y, s)
        good = after - before >= MIN_IMPROVEMENT_DB
        ok &= good
        print(f"{kind} noise at {snr:.0f} dB: SI-SDR {before:.2f} -> {after:.2f} dB "
              f"(improvement {after - before:+.2f} dB, need >= {MIN_IMPROVEMENT_DB}) {'ok' if good else 'FAIL'}")
    y = denoise(ssmd, model, s, work, "clean")
    c_sdr = si_sdr(y, s)
    c_lvl = 10 * np.log10(active_power(y) / active_power(s))
    good = c_sdr >= MIN_CLEAN_SISDR_DB and abs(c_lvl) <= CLEAN_LEVEL_DB
    ok &= good
    print(f"clean speech: output SI-SDR {c_sdr:.2f} dB (need >= {MIN_CLEAN_SISDR_DB}), active level "
          f"{c_lvl:+.2f} dB (need within ±{CLEAN_LEVEL_DB}) {'ok' if good else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
