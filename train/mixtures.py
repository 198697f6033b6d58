# SPDX-License-Identifier: MIT
"""Training and evaluation mixtures for the full-band denoiser (48 kHz).

A clip is n samples of speech (1-4 utterances of one split's bank with pauses,
or nothing: noise-only clips), optionally reverberated by a generated room
impulse response, plus one noise family at an SNR measured over active speech,
then coloured by a random microphone response and set to a random level.

Noise families (`FAMILIES`):
  generated  data.make_noise at 48 kHz: white, pink, brown, mains hum, band-limited,
             clicks, amplitude-modulated coloured noise
  real       recordings of the split's noise bank (train/banks.py), short ones
             chained with random gaps so impulsive sounds recur
  babble     3-7 other utterances of the split's speech bank at once (real voices)

Targets: the clean speech after the early part (50 ms) of the room response and
the same microphone colour as the mixture, so the model removes noise and late
reverberation but not the colour.  `cutoff_hz` is the lowest bandwidth of the
utterances in the clip (the loss ignores bins above it); noise-only clips have
cutoff = Nyquist.  VAD labels come from the clean target's frame energy.
"""
import numpy as np
from scipy.signal import fftconvolve, lfilter

import data
from banks import SR

FAMILIES = ("generated", "real", "babble")
GENERATED = ("white", "pink", "brown", "hum", "band", "clicks", "nonstationary")


def speech_clip(bank, n, rng, max_utts=4):
    """(clean {n}, cutoff_hz): 1-max_utts utterances at random places with 0.1-1 s pauses."""
    x = np.zeros(n)
    pos = int(rng.integers(0, n // 4))
    cut = SR / 2
    k = 0
    while pos < n - SR // 4 and k < max_utts:
        i = int(rng.integers(bank.n))
        u = bank.item(i) * rng.uniform(0.3, 1.0)
        ln = min(len(u), n - pos)
        x[pos:pos + ln] += u[:ln]
        cut = min(cut, float(bank.cutoff_hz[i]))
        pos += ln + int(rng.integers(SR // 10, SR))
        k += 1
    return x, cut


def _speed(u, rng):
    """u played 2^±0.5 times faster or slower (linear interpolation): pitch and tempo together,
    so one recording of a machine, a crowd or the wind stands for several."""
    f = 2.0 ** rng.uniform(-0.5, 0.5)
    return np.interp(np.arange(0.0, len(u) - 1, f), np.arange(len(u)), u)


def real_noise(nbank, n, rng, p_speed=0.0, uniform_sources=False):
    """n samples of one recorded source: files of that source chained with random gaps;
    each file is speed-perturbed (_speed) with probability p_speed (training only).
    The source is drawn in proportion to its number of files, or, with uniform_sources
    (training only), uniformly over the bank's sources."""
    if uniform_sources:
        present = np.unique(nbank.source)
        src = int(present[int(rng.integers(len(present)))])
    else:
        src = int(nbank.source[int(rng.integers(nbank.n))])
    pool = np.flatnonzero(nbank.source == src)
    out = np.zeros(n)
    pos = -int(rng.integers(0, SR))
    while pos < n:
        u = nbank.item(int(pool[int(rng.integers(len(pool)))])) * rng.uniform(0.3, 1.0)
        if p_speed and rng.random() < p_speed:
            u = _speed(u, rng)
        a, b = max(pos, 0), min(pos + len(u), n)
        if b > a:
            out[a:b] += u[a - pos:b - pos]
        pos += len(u) + (int(rng.integers(0, SR)) if len(u) < 2 * SR else 0)
    return out


def babble(sbank, n, rng):
    x = np.zeros(n)
    for _ in range(int(rng.integers(3, 8))):
        c, _ = speech_clip(sbank, n, rng, max_utts=8)
        x += c * rng.uniform(0.5, 1.0)
    return x


def make_noise(family, n, rng, sbank, nbank, kind=None, p_speed=0.0, uniform_sources=False):
    if family == "generated":
        kind = kind or GENERATED[int(rng.integers(len(GENERATED)))]
        x = data.make_noise(kind, n, rng, sr=SR)
    elif family == "real":
        x = real_noise(nbank, n, rng, p_speed, uniform_sources)
    elif family == "babble":
        x = babble(sbank, n, rng)
    else:
        raise ValueError(f"noise family {family!r}: expected one of {', '.join(FAMILIES)}")
    return x / (np.std(x) + 1e-12)


def room_response(rng):
    """(full, early): an exponentially decaying noise tail (RT60 0.15-0.9 s) after a direct path."""
    rt60 = rng.uniform(0.15, 0.9)
    ln = int(rt60 * SR)
    t = np.arange(ln) / SR
    h = rng.standard_normal(ln) * np.exp(-6.9 * t / rt60) * rng.uniform(0.1, 0.5)
    pre = int(rng.integers(0, int(0.004 * SR)))  # first reflections after 0-4 ms
    h[:pre] = 0
    h[0] = 1.0
    early = h.copy()
    early[int(0.05 * SR):] = 0
    return h, early


def _biquad_peak(f0, gain_db, q):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / SR
    al = np.sin(w) / (2 * q)
    b = np.array([1 + al * a, -2 * np.cos(w), 1 - al * a])
    d = np.array([1 + al / a, -2 * np.cos(w), 1 - al / a])
    return b / d[0], d / d[0]


def _biquad_highpass(f0, q=0.707):
    w = 2 * np.pi * f0 / SR
    al = np.sin(w) / (2 * q)
    b = np.array([(1 + np.cos(w)) / 2, -(1 + np.cos(w)), (1 + np.cos(w)) / 2])
    d = np.array([1 + al, -2 * np.cos(w), 1 - al])
    return b / d[0], d / d[0]


def mic_colour(rng):
    """A random microphone response: high-pass 20-150 Hz and two peaking bands of ±6 dB."""
    fs = [_biquad_highpass(rng.uniform(20, 150))]
    for lo, hi in ((150, 3000), (3000, 16000)):
        fs.append(_biquad_peak(np.exp(rng.uniform(np.log(lo), np.log(hi))), rng.uniform(-6, 6), rng.uniform(0.5, 2)))
    return fs


def noise_colour(rng):
    """A random colour for a noise recording alone (training augmentation): a tilt made of two
    wide peaking bands of opposite gain, ±0-6 dB at 4 kHz and ∓ the same at 250 Hz, and, half of
    the time, a second-order low-pass at 2-20 kHz, so one recording stands for the same sound
    heard through other rooms, distances and microphones."""
    fs = []
    t = rng.uniform(-6, 6)
    if abs(t) > 0.5:
        fs.append(_biquad_peak(4000.0, t, 0.3))
        fs.append(_biquad_peak(250.0, -t, 0.3))
    if rng.random() < 0.5:
        f0 = np.exp(rng.uniform(np.log(2000), np.log(20000)))
        w = 2 * np.pi * f0 / SR
        al = np.sin(w) / (2 * 0.707)
        b = np.array([(1 - np.cos(w)) / 2, 1 - np.cos(w), (1 - np.cos(w)) / 2])
        d = np.array([1 + al, -2 * np.cos(w), 1 - al])
        fs.append((b / d[0], d / d[0]))
    return fs


def _apply(fs, x):
    for b, a in fs:
        x = lfilter(b, a, x)
    return x


def active_power(x, frame=480):
    """data.active_power over 10 ms frames at 48 kHz."""
    return data.active_power(x, frame)


# the labels of the training data, at this front end's hop and n_fft
vad_labels = data.vad_labels


def make_example(n, rng, sbank, nbank, hop, n_fft, snr_db=None, family=None, kind=None,
                 p_noise_only=0.12, p_clean=0.05, p_reverb=0.3, p_colour=0.7, level_db=None,
                 family_p=(0.4, 0.4, 0.2), p_speed=0.0, p_noise_colour=0.0, p_second_noise=0.0,
                 uniform_sources=False, snr_range=(-5.0, 25.0)):
    """One training example: dict(mix, clean, vad, cutoff_hz, family, snr_db).
    family_p: probabilities of FAMILIES (generated, real, babble) when `family` is not given;
    p_speed: share of recorded noise files speed-perturbed (training augmentation; 0 keeps the
    evaluation mixtures as they were); p_noise_colour: share of noises coloured alone
    (noise_colour); p_second_noise: share of noises with a second one of another family
    added 0-15 dB below it (training augmentations; 0 keeps evaluation mixtures unchanged);
    uniform_sources: recorded noise sources drawn uniformly, not by file count (training);
    snr_range: (low, high) dB of the uniform SNR when snr_db is not given."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"noise family {family!r}: expected one of {', '.join(FAMILIES)}")
    noise_only = snr_db is None and rng.random() < p_noise_only
    clean_only = snr_db is None and not noise_only and rng.random() < p_clean
    if noise_only:
        s, cut = np.zeros(n), SR / 2
    else:
        s, cut = speech_clip(sbank, n, rng)
    tgt = s
    if not noise_only and rng.random() < p_reverb:
        h, early = room_response(rng)
        tgt = fftconvolve(s, early)[:n]
        s = fftconvolve(s, h)[:n]
    family = family or FAMILIES[int(rng.choice(3, p=list(family_p)))]
    if clean_only:
        noise = np.zeros(n)
    else:
        noise = make_noise(family, n, rng, sbank, nbank, kind, p_speed, uniform_sources)
        if p_noise_colour and rng.random() < p_noise_colour:
            noise = _apply(noise_colour(rng), noise)
            noise = noise / (np.std(noise) + 1e-12)
        if p_second_noise and rng.random() < p_second_noise:
            other = [f for f in FAMILIES if f != family]
            f2 = other[int(rng.integers(len(other)))]
            noise = noise + make_noise(f2, n, rng, sbank, nbank, None, p_speed,
                                       uniform_sources) * 10 ** (-rng.uniform(0, 15) / 20)
            noise = noise / (np.std(noise) + 1e-12)
        if noise_only:
            pass
        else:
            snr = snr_db if snr_db is not None else rng.uniform(*snr_range)
            p = active_power(tgt)
            noise = noise * np.sqrt(p / 10 ** (snr / 10))
    mix = s + noise
    if rng.random() < p_colour:
        fs = mic_colour(rng)
        mix, tgt = _apply(fs, mix), _apply(fs, tgt)
    lvl = rng.uniform(-45, -10) if level_db is None else level_db
    g = 10 ** (lvl / 20) / (np.sqrt(np.mean(mix ** 2)) + 1e-12)
    g = min(g, 0.99 / (np.max(np.abs(mix)) + 1e-12))
    mix, tgt = (mix * g).astype(np.float32), (tgt * g).astype(np.float32)
    vad = vad_labels(tgt, hop, n_fft) if not noise_only else np.zeros(n // hop, np.float32)
    return dict(mix=mix, clean=tgt, vad=vad, cutoff_hz=np.float32(cut), family=family,
                snr_db=None if noise_only else (snr_db if snr_db is not None else (99.0 if clean_only else None)))
