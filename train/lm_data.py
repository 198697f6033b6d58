# SPDX-License-Identifier: MIT
"""Training audio for the mu-law token model (models/mulaw_lm.md), made by scripts.

  /usr/bin/python3 train/lm_data.py          → train/cache/lm/{train,val}.npy (uint8 mu-law codes)

Speech: the espeak-ng + flite bank of train/data.py (train/cache/speech/*.npz;
made with data.make_bank when absent; validation voices/languages are held out
there).  Music: random General-MIDI pieces (a melody over chords in a random
key, tempo and pair of instruments) written as standard MIDI files by this
script and rendered with fluidsynth from the fluid-soundfont-gm soundfont at
16 kHz; the validation pieces use other seeds.  Each clip is normalised to a
peak of 0.5, and clips are joined with 0.1 s of silence, then mu-law encoded
(μ = 255, torchaudio's convention, as dsp/mulaw.h).  Nothing here is committed.
"""
import os
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.io import wavfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SR = 16000
MU = 255
CACHE = os.path.join(HERE, "cache", "lm")
SF2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
# GM programs (0-based): pianos, organ, guitars, bass, strings, brass, reeds, flutes
PROGRAMS = [0, 1, 4, 6, 16, 19, 24, 25, 32, 40, 42, 48, 56, 60, 64, 68, 71, 73, 46, 11]


def mulaw_encode(x):
    """torchaudio.functional.mu_law_encoding(x, 256) in float32."""
    x = np.clip(np.asarray(x, np.float32), -1, 1)
    mu = np.float32(MU)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return ((y + 1) / 2 * mu + np.float32(0.5)).astype(np.int64).astype(np.uint8)


def mulaw_decode(c):
    mu = np.float32(MU)
    y = np.asarray(c, np.float32) / mu * 2 - 1
    return (np.sign(y) * (np.exp(np.abs(y) * np.log1p(mu)) - 1) / mu).astype(np.float32)


def _vlq(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def make_midi(rng, seconds=8.0):
    """A format-0 standard MIDI file: melody (channel 0) over chords (channel 1)."""
    tpq = 480
    bpm = float(rng.uniform(70, 160))
    beat_s = 60.0 / bpm
    key = int(rng.integers(48, 60))
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
    p_mel, p_acc = (int(rng.choice(PROGRAMS)) for _ in range(2))
    ev = []  # (tick, bytes)
    ev.append((0, bytes([0xC0, p_mel])))
    ev.append((0, bytes([0xC1, p_acc])))
    n_beats = int(seconds / beat_s)
    # chords: one per bar of 4 beats
    degrees = [0, 3, 4, 5, 1, 2]
    for bar in range(0, n_beats, 4):
        d = degrees[int(rng.integers(len(degrees)))]
        notes = [key - 12 + scale[(d + k) % 7] + 12 * ((d + k) // 7) for k in (0, 2, 4)]
        vel = int(rng.integers(40, 80))
        for n in notes:
            ev.append((bar * tpq, bytes([0x91, n, vel])))
            ev.append(((bar + 4) * tpq - 10, bytes([0x81, n, 0])))
    # melody: random walk on the scale
    t, deg = 0, int(rng.integers(0, 7))
    while t < n_beats * tpq:
        dur = int(rng.choice([tpq // 4, tpq // 2, tpq, tpq * 2], p=[0.2, 0.4, 0.3, 0.1]))
        deg = int(np.clip(deg + rng.integers(-2, 3), -3, 12))
        n = key + 12 + scale[deg % 7] + 12 * (deg // 7)
        if rng.random() < 0.85:
            vel = int(rng.integers(60, 110))
            ev.append((t, bytes([0x90, n, vel])))
            ev.append((t + dur - 5, bytes([0x80, n, 0])))
        t += dur
    ev.sort(key=lambda e: (e[0], e[1][0] & 0xF0 == 0x90))
    tempo = int(beat_s * 1e6)
    body = b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    last = 0
    for tick, msg in ev:
        body += _vlq(tick - last) + msg
        last = tick
    body += b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) +
            b"MTrk" + struct.pack(">I", len(body)) + body)


def render(seed):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = os.path.join(tmp, "m.mid"), os.path.join(tmp, "m.wav")
        with open(mid, "wb") as f:
            f.write(make_midi(rng, float(rng.uniform(5, 10))))
        subprocess.run(["fluidsynth", "-ni", "-g", "0.6", "-r", str(SR), "-F", wav, SF2, mid],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sr, x = wavfile.read(wav)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    assert sr == SR, sr
    e = np.abs(x) > 1e-3
    if e.any():
        x = x[:len(x) - np.argmax(e[::-1]) + 1600]
    return x / (np.max(np.abs(x)) + 1e-9) * 0.5


def join(clips, rng):
    gap = np.zeros(SR // 10, np.float32)
    order = rng.permutation(len(clips))
    return np.concatenate([np.concatenate([clips[i], gap]) for i in order]).astype(np.float32)


def main():
    import data  # train/data.py: the speech bank
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(os.path.join(data.CACHE, "speech", "val.npz")):
        data.make_bank()
    for split, n_music, seed0 in (("train", 240, 1000), ("val", 24, 900000)):
        speech = [s.astype(np.float32) for s in data.load_bank(split)]
        with ThreadPoolExecutor(2) as ex:
            music = list(ex.map(render, range(seed0, seed0 + n_music)))
        x = join(speech + music, np.random.default_rng(seed0))
        codes = mulaw_encode(x)
        np.save(os.path.join(CACHE, f"{split}.npy"), codes)
        print(f"{split}: {len(speech)} speech clips ({sum(map(len, speech)) / SR / 60:.1f} min), "
              f"{len(music)} music clips ({sum(map(len, music)) / SR / 60:.1f} min) → "
              f"{len(codes) / SR / 60:.1f} min of mu-law codes", flush=True)


if __name__ == "__main__":
    main()
