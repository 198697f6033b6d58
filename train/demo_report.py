# SPDX-License-Identifier: MIT
"""The demo's measurements (scripts/demo.sh): what the bundled default model
achieves through the daemon (`ssmd IN -o OUT`, no --model) on real voices.

  /usr/bin/python3 train/demo_report.py SSMD OUTDIR

(1) examples/real_voice_48k.flac: real recorded voices (0 A.D.'s Napatan voice
    actors, held out of training) with real recorded rain at 5 dB SNR, 48 kHz;
    clean reference examples/real_voice_48k_clean.flac.
(2) The real voice recordings alsa-utils installs (/usr/share/sounds/alsa/
    Front_Center, Front_Left, Rear_Right: a human speaker, 48 kHz) joined and
    mixed with pink noise and 50 Hz hum at 5 dB SNR and with white noise at
    0 dB SNR (fixed seeds).
(3) examples/noisy_speech.flac: espeak-ng speech with pink noise and hum at
    5 dB, a 16 kHz file (the daemon resamples to the model's 48 kHz and back).
(4) 5 s of pink noise alone at 48 kHz: how far it is turned down (first 0.1 s
    ignored) and the mean voice activity the job reports.
SI-SDR (dB) of input and output against the clean speech is printed at the full
band and in the 16 kHz band (everything resampled to 16 kHz), and the energy
of the output above 8 kHz relative to the clean speech's.  A PNG with the
spectrograms of noisy and denoised audio of (1) and (2) is written to
OUTDIR/demo_spectrograms.png (matplotlib, when installed).
"""
import os
import subprocess
import sys

import warnings

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ALSA = "/usr/share/sounds/alsa"
warnings.filterwarnings("ignore", category=wavfile.WavFileWarning)
VOICES = ["Front_Center.wav", "Front_Left.wav", "Rear_Right.wav"]


def si_sdr(est, ref):
    n = min(len(est), len(ref))
    est, ref = est[:n] - est[:n].mean(), ref[:n] - ref[:n].mean()
    a = np.dot(est, ref) / np.dot(ref, ref)
    s = a * ref
    return 10 * np.log10(np.dot(s, s) / np.dot(est - s, est - s))


def read(path):
    sr, x = wavfile.read(path)
    x = x.astype(np.float64) / (32768.0 if x.dtype == np.int16 else 1.0)
    return sr, (x.mean(axis=1) if x.ndim > 1 else x)


def to16k(x, sr):
    return x if sr == 16000 else resample_poly(x, 16000, sr)


def hf_db(y, c, sr):
    """Energy of y above 8 kHz over the clean reference's (dB)."""
    fy, fc = np.abs(np.fft.rfft(y[:len(c)])) ** 2, np.abs(np.fft.rfft(c)) ** 2
    f = np.fft.rfftfreq(len(c), 1 / sr)
    return 10 * np.log10(fy[f > 8000].sum() / max(fc[f > 8000].sum(), 1e-30))


def ssmd_run(ssmd, src, dst):
    r = subprocess.run([ssmd, src, "-o", dst, "--progress", "never"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"demo: ssmd failed: {r.stderr.strip()}")
    return r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


def active_power(x):
    m = len(x) // 256
    e = (x[:m * 256].reshape(m, 256) ** 2).mean(axis=1)
    return float(e[e > e.max() * 1e-3].mean())


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: demo_report.py SSMD OUTDIR")
    ssmd, out = sys.argv[1], sys.argv[2]
    if not (os.path.isfile(ssmd) and os.access(ssmd, os.X_OK)):
        sys.exit(f"demo: {ssmd}: not an executable file")
    missing = [v for v in VOICES if not os.path.isfile(os.path.join(ALSA, v))]
    if missing:
        sys.exit(f"demo: {ALSA}/{missing[0]} is missing (install alsa-utils: scripts/setup.sh)")
    os.makedirs(out, exist_ok=True)
    cases = []
    # (1) the bundled real-voice example
    ex = os.path.join(ROOT, "examples")
    for flac, label in (("real_voice_48k", "examples/real_voice_48k.flac (real voices + real rain, 5 dB)"),):
        dec, ref, den = (os.path.join(out, f"{flac}.{s}.wav") for s in ("noisy", "clean", "denoised"))
        subprocess.run(["sndfile-convert", "-float32", os.path.join(ex, f"{flac}.flac"), dec], check=True)
        subprocess.run(["sndfile-convert", "-float32", os.path.join(ex, f"{flac}_clean.flac"), ref], check=True)
        ssmd_run(ssmd, dec, den)
        cases.append((label, dec, den, ref))
    # (2) real recordings
    parts = []
    for v in VOICES:
        sr, x = read(os.path.join(ALSA, v))
        parts += [x, np.zeros(sr // 3)]
    clean48 = np.concatenate(parts)
    clean48 *= 0.1 / np.max(np.abs(clean48))
    rng = np.random.default_rng(48000)
    t = np.arange(len(clean48)) / sr
    for name, snr in (("pink noise + 50 Hz hum", 5.0), ("white noise", 0.0)):
        w = rng.standard_normal(len(clean48))
        if name.startswith("pink"):
            spec = np.fft.rfft(w)
            f = np.arange(len(spec), dtype=np.float64)
            f[0] = 1.0
            n = np.fft.irfft(spec / np.sqrt(f), len(w))
            n += 3.0 * np.std(n) * sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3))
        else:
            n = w
        n *= np.sqrt(active_power(clean48) / np.mean(n ** 2) / 10 ** (snr / 10))
        tag = "alsa_" + ("pink_hum" if name.startswith("pink") else "white")
        src, dst, cref = (os.path.join(out, f"{tag}.{s}.wav") for s in ("noisy", "denoised", "clean"))
        wavfile.write(src, sr, (clean48 + n).astype(np.float32))
        wavfile.write(cref, sr, clean48.astype(np.float32))
        ssmd_run(ssmd, src, dst)
        cases.append((f"real voice (alsa-utils, {sr // 1000} kHz), {name}, {snr:.0f} dB", src, dst, cref))
    # (3) the 16 kHz synthetic example
    ref = os.path.join(out, "noisy_speech.clean.wav")
    subprocess.run([sys.executable, os.path.join(ex, "make_example.py"), "--clean-ref", ref],
                   check=True, stdout=subprocess.DEVNULL)
    den = os.path.join(out, "noisy_speech.denoised.wav")
    ssmd_run(ssmd, os.path.join(ex, "noisy_speech.flac"), den)
    dec = os.path.join(out, "noisy_speech.in.wav")
    subprocess.run(["sndfile-convert", "-float32", os.path.join(ex, "noisy_speech.flac"), dec], check=True)
    cases.append(("examples/noisy_speech.flac (espeak-ng at 16 kHz, pink + hum, 5 dB)", dec, den, ref))
    rows = []
    for label, src, dst, cref in cases:
        (s1, x), (s2, y), (s3, c) = read(src), read(dst), read(cref)
        full = f"{si_sdr(x, c):.2f} -> {si_sdr(y, c):.2f} dB full band, " if s1 == 48000 else ""
        hf = f"; above 8 kHz the output has {hf_db(y, c, s1):+.1f} dB of the clean speech's energy" if s1 == 48000 else ""
        x16, y16, c16 = to16k(x, s1), to16k(y, s2), to16k(c, s3)
        a, b = si_sdr(x16, c16), si_sdr(y16, c16)
        if s1 == 48000:
            rows.append((label, si_sdr(x, c), si_sdr(y, c), x, y, dst))
        print(f"demo: {label}: SI-SDR {full}{a:.2f} -> {b:.2f} dB in the 0-8 kHz band ({b - a:+.2f} dB){hf}; "
              f"denoised: {os.path.relpath(dst)}")
    # (4) noise alone
    rng = np.random.default_rng(5)
    spec = np.fft.rfft(rng.standard_normal(48000 * 5))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), 48000 * 5)
    pink *= 0.05 / np.sqrt(np.mean(pink ** 2))
    src, dst = os.path.join(out, "pink_noise.wav"), os.path.join(out, "pink_noise.denoised.wav")
    wavfile.write(src, 48000, pink.astype(np.float32))
    summary = ssmd_run(ssmd, src, dst)
    _, y = read(dst)
    att = 10 * np.log10(np.mean(pink[4800:] ** 2) / max(np.mean(y[4800:] ** 2), 1e-30))
    vad = summary.split("mean voice activity")[-1].strip() if "mean voice activity" in summary else "?"
    print(f"demo: pink noise alone (48 kHz, -26 dBFS): turned down by {att:.1f} dB; mean voice activity {vad}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("demo: matplotlib not installed: no PNG")
        return
    fig, ax = plt.subplots(len(rows), 2, figsize=(12, 2.6 * len(rows)), squeeze=False)
    for i, (label, a, b, x, y, _) in enumerate(rows):
        for j, (sig, what) in enumerate(((x, f"noisy ({a:.1f} dB SI-SDR)"), (y, f"denoised by ssmd ({b:.1f} dB)"))):
            ax[i][j].specgram(sig + 1e-9, NFFT=1024, Fs=48000, noverlap=512, cmap="magma", vmin=-140, vmax=-40)
            ax[i][j].set_title(f"{label}\n{what}", fontsize=8)
            ax[i][j].set_ylabel("Hz")
    fig.tight_layout()
    png = os.path.join(out, "demo_spectrograms.png")
    fig.savefig(png, dpi=70)
    print(f"demo: spectrograms of noisy and denoised audio: {os.path.relpath(png)}")


if __name__ == "__main__":
    main()
