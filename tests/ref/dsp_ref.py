#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""numpy reference for dsp/: windows, STFT, inverse STFT, mel filterbanks
(Slaney and HTK), log-mel of a chirp, pitch-correlation features, mu-law.

Usage: dsp_ref.py HELPER_EXE

Runs the C helper (tests/dsp/dsp_ref_helper.c), which writes what dsp/
computed plus its inputs as raw float32/uint8 files and a manifest into a
temporary directory, then recomputes everything here in float64 from the
defining equations (written from the formulas, not from the C code; no
librosa/torchaudio needed) and compares.  Prints the worst error of each
check and exits 1 if any exceeds its tolerance.

Conventions checked (dsp/include/dsp/*.h):
  periodic Hann      w[n] = 0.5 - 0.5 cos(2 pi n / N)     (torch.hann_window periodic=True)
  STFT               X = rfft(w * frame)                   (numpy.fft.rfft)
  inverse            y = g * irfft(X, N), g = s / mean(D), D[r] = sum_k a[r+kH] s[r+kH]
  Slaney mel         linear 200/3 Hz per mel below 1000 Hz (= 15 mel), then
                     log step ln(6.4)/27 per mel           (librosa htk=False)
  HTK mel            2595 log10(1 + f/700)                 (librosa htk=True)
  filterbank         triangles between n_mels+2 edges equally spaced in mel,
                     Slaney norm 2/(f_hi - f_lo)           (librosa.filters.mel)
  log                natural log with an absolute power floor
  mu-law             torchaudio mu_law_encoding/decoding, mu = 255
  pitch              r(T) = sum x_n x_(n-T) / sqrt(sum x_n^2 sum x_(n-T)^2 + 1e-20) over the frame
                     (0 where an energy is below 1e-12 of the history's, clamped to [-1, 1]);
                     coarse lag on means of 4 samples, then 4*tau-3..4*tau+3 at the full rate,
                     first maximum of r rounded to 2^-20; c_b = sum Re(X conj P) /
                     sqrt(sum|X|^2 sum|P|^2 + 1e-20) per band, P the STFT of the delayed frame
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

# Tolerances (stated here, reported with every check).
TOL_WINDOW = 1e-7          # absolute, float32 rounding of values in [0, 1]
TOL_STFT = 1e-5            # max |C - ref| / max |ref| per size
TOL_ISTFT = 1e-5           # max |C - ref| / max |ref| per configuration
TOL_MEL = 1e-6             # max |C - ref| / max |ref| per filterbank
TOL_LOGMEL_LOG = 1e-3      # |C - ref| in ln units where mel >= 1e-6 max
TOL_LOGMEL_LIN = 1e-5      # |exp(C) - max(ref, floor)| / max(ref) elsewhere
TOL_PITCH = 1e-4           # absolute, features in [-1, 1] (float32 FFTs in C)
TOL_MULAW_DEC = 1e-6       # absolute
TOL_MULAW_TORCH = 1e-7      # absolute, decode vs torch's float32 ops (expf ulps)
MULAW_BOUNDARY = 1e-4      # encode may differ by one code only this close to a code boundary

failures = []


def check(name, worst, tol):
    ok = worst <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name}: worst {worst:.3g} (tolerance {tol:g})")
    if not ok:
        failures.append(name)


def hann(n):
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def window(kind, n):
    if kind == "hann":
        return hann(n)
    if kind == "sqrt-hann":
        return np.sqrt(hann(n))
    if kind == "rect":
        return np.ones(n)
    raise ValueError(kind)


# --- mel scales from their definitions -------------------------------------
SLANEY_F_SP = 200.0 / 3.0          # Hz per mel in the linear part
SLANEY_BREAK_HZ = 1000.0           # start of the log part
SLANEY_BREAK_MEL = SLANEY_BREAK_HZ / SLANEY_F_SP
SLANEY_LOGSTEP = np.log(6.4) / 27.0  # 27 mels per factor 6.4 in frequency


def hz_to_mel(f, scale):
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    lin = f / SLANEY_F_SP
    with np.errstate(divide="ignore"):
        log = SLANEY_BREAK_MEL + np.log(np.maximum(f, 1e-300) / SLANEY_BREAK_HZ) / SLANEY_LOGSTEP
    return np.where(f >= SLANEY_BREAK_HZ, log, lin)


def mel_to_hz(m, scale):
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    lin = SLANEY_F_SP * m
    log = SLANEY_BREAK_HZ * np.exp(SLANEY_LOGSTEP * (m - SLANEY_BREAK_MEL))
    return np.where(m >= SLANEY_BREAK_MEL, log, lin)


def mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale, norm):
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2), scale)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    w = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        w[i] = np.maximum(0.0, np.minimum(rising, falling))
        if norm == "slaney":
            w[i] *= 2.0 / (hi - lo)
    return w


def self_check_scales():
    # Anchors of the definitions, independent of any implementation.
    assert abs(hz_to_mel(1000.0, "slaney") - 15.0) < 1e-12
    assert abs(hz_to_mel(6400.0, "slaney") - 42.0) < 1e-12
    assert abs(hz_to_mel(500.0, "slaney") - 7.5) < 1e-12
    assert abs(hz_to_mel(700.0, "htk") - 2595.0 * np.log10(2.0)) < 1e-9
    f = np.array([0.0, 300.0, 999.0, 1000.0, 4321.0, 11025.0])
    for s in ("slaney", "htk"):
        assert np.allclose(mel_to_hz(hz_to_mel(f, s), s), f, rtol=1e-12, atol=1e-9)


# --- mu-law (torchaudio's formulas, mu = 255) -------------------------------
MU = 255.0


def pitch_reference(x, n, hop, lag_min, lag_max, edges, n_frames):
    """Direct sums (float64) of the definitions in dsp/pitch.h → (features {n_frames, len(edges)}, lags)."""
    H = lag_max + 4
    xp = np.concatenate([np.zeros(H + n - hop), x, np.zeros(hop)])
    win = np.sqrt(hann(n))
    q = 2.0 ** 20

    def r(a, b, e_all):
        ea, eb = np.dot(a, a), np.dot(b, b)
        if ea < 1e-12 * e_all or eb < 1e-12 * e_all:   # energies below 1e-12 of the history's: 0
            return 0.0
        return float(np.clip(np.dot(a, b) / np.sqrt(ea * eb + 1e-20), -1.0, 1.0))

    feats, lags = np.zeros((n_frames, len(edges))), np.zeros(n_frames)
    for m in range(n_frames):
        seg = xp[m * hop:m * hop + H + n]                   # H samples of history, then the frame
        d = seg.reshape(-1, 4).mean(1)
        hd, nd = H // 4, n // 4
        cur = d[hd:]
        rc = [np.round(r(cur, d[hd - tau:hd - tau + nd], np.dot(d, d)) * q)
              for tau in range(lag_min // 4, lag_max // 4 + 1)]
        tau = lag_min // 4 + int(np.argmax(rc))
        fr = seg[H:]
        cands = [4 * tau + dl for dl in range(-3, 4)]
        rf = [r(fr, seg[H - T:H - T + n], np.dot(seg, seg)) for T in cands]
        i = int(np.argmax(np.round(np.array(rf) * q)))
        T = cands[i]
        X = np.fft.rfft(fr * win)
        P = np.fft.rfft(seg[H - T:H - T + n] * win)
        for b in range(len(edges) - 1):
            k = slice(edges[b], edges[b + 1])
            feats[m, b] = np.sum((X[k] * P[k].conj()).real) / np.sqrt(
                np.sum(np.abs(X[k]) ** 2) * np.sum(np.abs(P[k]) ** 2) + 1e-20)
        feats[m, -1] = rf[i]
        lags[m] = T
    return feats, lags


def mulaw_encode_value(x):
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)
    return (y + 1.0) / 2.0 * MU + 0.5        # code = trunc(this)


def mulaw_decode(c):
    y = np.asarray(c, dtype=np.float64) / MU * 2.0 - 1.0
    return np.sign(y) * (np.exp(np.abs(y) * np.log1p(MU)) - 1.0) / MU


def optional_torch():
    """torch when Debian's python3-torch is installed, else None (the checks
    against torch's float32 ops are then skipped, with a note)."""
    try:
        import torch
        return torch
    except ImportError:
        print("     torch not installed: skipping the bit-level comparison with torch's mu-law ops")
        return None


def main():
    if len(sys.argv) != 2:
        print("usage: dsp_ref.py HELPER_EXE", file=sys.stderr)
        return 2
    self_check_scales()
    with tempfile.TemporaryDirectory(prefix="ssmd_dsp_ref_") as d:
        rc = subprocess.run([sys.argv[1], d]).returncode
        if rc != 0:
            print(f"FAIL the helper {sys.argv[1]} exited with status {rc}")
            return 1
        # FFTW_ESTIMATE plans: a second process must write the same bytes.
        with tempfile.TemporaryDirectory(prefix="ssmd_dsp_ref2_") as d2:
            subprocess.run([sys.argv[1], d2], check=True)
            names = sorted(n for n in os.listdir(d) if n != "manifest.txt")
            differ = [n for n in names
                      if open(os.path.join(d, n), "rb").read() != open(os.path.join(d2, n), "rb").read()]
            print(f"     second process: {len(names)} output files compared byte for byte")
            check("files differing between two processes", float(len(differ)), 0.0)

        def f32(name, *shape):
            return np.fromfile(os.path.join(d, name), dtype="<f4").astype(np.float64).reshape(shape)

        def u8(name):
            return np.fromfile(os.path.join(d, name), dtype=np.uint8)

        seen = {}
        with open(os.path.join(d, "manifest.txt")) as fp:
            lines = [ln.split() for ln in fp if ln.strip()]
        for t in lines:
            kind = t[0]
            seen[kind] = seen.get(kind, 0) + 1
            if kind == "window":
                wk, n = t[1], int(t[2])
                got = f32(t[3], n)
                check(f"window {wk} N={n}", np.max(np.abs(got - window(wk, n))), TOL_WINDOW)
            elif kind == "stft":
                n, nf = int(t[1]), int(t[2])
                nb = n // 2 + 1
                x = f32(t[3], nf, n)
                got = f32(t[4], nf, nb, 2)
                ref = np.fft.rfft(x * hann(n), axis=1)
                ref = np.stack([ref.real, ref.imag], axis=-1)
                check(f"stft n_fft={n} vs numpy.fft.rfft", np.max(np.abs(got - ref)) / np.max(np.abs(ref)),
                      TOL_STFT)
            elif kind == "istft":
                n, hop, ak, sk, nf = int(t[1]), int(t[2]), t[3], t[4], int(t[5])
                nb = n // 2 + 1
                s = f32(t[6], nf, nb, 2)
                got = f32(t[7], nf, n)
                a, syn = window(ak, n), window(sk, n)
                env = np.array([np.sum((a * syn)[r::hop]) for r in range(hop)])
                assert np.ptp(env) <= 1e-4 * env.max(), "helper wrote a non-COLA pair"
                g = syn / env.mean()
                ref = np.fft.irfft(s[..., 0] + 1j * s[..., 1], n=n, axis=1) * g
                check(f"istft n_fft={n} hop={hop} {ak}/{sk} vs g*irfft",
                      np.max(np.abs(got - ref)) / np.max(np.abs(ref)), TOL_ISTFT)
            elif kind == "mel":
                scale, norm, sr, n_fft, n_mels = t[1], t[2], float(t[3]), int(t[4]), int(t[5])
                fmin, fmax = float(t[6]), float(t[7])
                got = f32(t[8], n_mels, n_fft // 2 + 1)
                ref = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, scale, norm)
                check(f"mel {scale}/{norm} sr={sr:g} n_fft={n_fft} n_mels={n_mels} f={fmin:g}..{fmax:g}",
                      np.max(np.abs(got - ref)) / np.max(np.abs(ref)), TOL_MEL)
            elif kind == "logmel":
                sr, n, hop, n_mels = float(t[1]), int(t[2]), int(t[3]), int(t[4])
                fmin, fmax, floor = float(t[5]), float(t[6]), float(t[7])
                length, nf = int(t[8]), int(t[10])
                x = f32(t[9], length)
                got = f32(t[11], nf, n_mels)
                # causal framing with zero history: frame m ends at sample (m+1)*hop - 1
                assert nf == length // hop, f"helper wrote {nf} frames, expected {length // hop}"
                xp = np.concatenate([np.zeros(n - hop), x])
                frames = np.stack([xp[m * hop:m * hop + n] for m in range(nf)])
                power = np.abs(np.fft.rfft(frames * hann(n), axis=1)) ** 2
                mel = power @ mel_filterbank(sr, n, n_mels, fmin, fmax, "slaney", "slaney").T
                ref = np.log(np.maximum(mel, floor))
                big = mel >= 1e-6 * mel.max()
                wl = np.max(np.abs(got - ref)[big])
                wlin = np.max(np.abs(np.exp(got) - np.maximum(mel, floor))[~big]) / mel.max() if (~big).any() else 0.0
                print(f"     log-mel of chirp: {nf} frames x {n_mels} mels, {big.mean():.0%} above 1e-6 of max")
                check("log-mel (ln) where mel >= 1e-6 max", wl, TOL_LOGMEL_LOG)
                check("log-mel (linear, rel. to max) elsewhere", wlin, TOL_LOGMEL_LIN)
            elif kind == "pitch":
                n, hop, lag_min, lag_max = int(t[2]), int(t[3]), int(t[4]), int(t[5])
                edges = [int(v) for v in t[6].split(",")]
                length, nf = int(t[7]), int(t[9])
                x = f32(t[8], length)
                got = f32(t[10], nf, len(edges))
                got_lag = f32(t[11], nf)
                assert nf == length // hop, f"helper wrote {nf} frames, expected {length // hop}"
                ref, ref_lag = pitch_reference(x, n, hop, lag_min, lag_max, edges, nf)
                voiced = slice(10, 55)   # frames inside the harmonic tone
                print(f"     pitch: {nf} frames; voicing in the tone {np.median(ref[voiced, -1]):.3f}, "
                      f"in white noise {np.median(np.abs(ref[65:115, -1])):.3f}; lag at 0.3 s "
                      f"{ref_lag[30]:.0f} samples (f0 {48000 / ref_lag[30]:.0f} Hz, tone {100 + 160 * 0.3 / 0.6:.0f})")
                check("pitch: frames whose lag differs", float(np.sum(got_lag != ref_lag)), 0.0)
                check("pitch: features |C - ref|", np.max(np.abs(got - ref)), TOL_PITCH)
            elif kind == "mulaw_enc":
                nx = int(t[1])
                x = np.fromfile(os.path.join(d, t[2]), dtype="<f4")[:nx]
                got = u8(t[3]).astype(np.int64)
                v = mulaw_encode_value(x.astype(np.float64))
                ref = np.floor(v).astype(np.int64)
                diff = got != ref
                near = np.abs(v - np.round(v)) < MULAW_BOUNDARY
                bad = diff & ~(near & (np.abs(got - ref) == 1))
                print(f"     mu-law encode: {nx} inputs, {diff.sum()} differ by one code at a boundary")
                check("mu-law encode codes off (beyond boundary rounding)", float(bad.sum()), 0.0)
                torch = optional_torch()
                if torch is not None:
                    # torchaudio.functional.mu_law_encoding's body, in float32 torch ops
                    tx = torch.from_numpy(np.clip(x, -1.0, 1.0))
                    mu = torch.tensor(MU)
                    ty = torch.sign(tx) * torch.log1p(mu * torch.abs(tx)) / torch.log1p(mu)
                    tcode = ((ty + 1) / 2 * mu + 0.5).to(torch.int64).numpy()
                    check("mu-law encode codes differing from torch float32", float((tcode != got).sum()), 0.0)
            elif kind == "mulaw_dec":
                c = u8(t[1])
                got = f32(t[2], c.size)
                check("mu-law decode of all 256 codes", np.max(np.abs(got - mulaw_decode(c))), TOL_MULAW_DEC)
                torch = optional_torch()
                if torch is not None:
                    # torchaudio.functional.mu_law_decoding's body, in float32 torch ops
                    mu = torch.tensor(MU)
                    ty = torch.from_numpy(c.astype(np.float32)) / mu * 2 - 1.0
                    tx = torch.sign(ty) * (torch.exp(torch.abs(ty) * torch.log1p(mu)) - 1.0) / mu
                    check("mu-law decode vs torch float32", float(np.max(np.abs(tx.numpy() - got))), TOL_MULAW_TORCH)
            else:
                print(f"FAIL unknown manifest entry {kind}")
                failures.append(kind)
        for need, count in (("window", 6), ("stft", 6), ("istft", 3), ("mel", 6), ("logmel", 1),
                            ("pitch", 1), ("mulaw_enc", 1), ("mulaw_dec", 1)):
            if seen.get(need, 0) < count:
                print(f"FAIL expected {count} '{need}' entries, helper wrote {seen.get(need, 0)}")
                failures.append(need)
    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        return 1
    print("all dsp reference checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
