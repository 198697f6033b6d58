# SPDX-License-Identifier: MIT
"""Training data for the default denoiser: synthesized clean speech and numpy noise.

Clean speech comes from espeak-ng (voices of several languages, each with the
espeak variants m1..m7/f1..f5/croak/klatt, random speed and pitch) and flite
(its built-in voices kal, kal16, awb, rms, slt).  Everything is resampled to
16 kHz and cached as float32 .npy in train/cache/speech/{train,val}/ (the cache
is gitignored; `make_bank` rebuilds it deterministically from a seed).

Held out for validation/evaluation (never seen in training): the espeak
variants f4 and m6, the language nl, and the flite voice slt; noise seeds of
the validation set come from a separate generator stream.

Noise (numpy, `make_noise`): white, pink, brown, mains hum (50 or 60 Hz with
harmonics over a little broadband noise), babble (3-6 other voices summed),
clicks and bursts, band-limited noise, and non-stationary (amplitude-modulated)
noise.  `make_mixture` mixes clean speech and noise at a given SNR (speech
power measured over active frames) with a random overall level.

Run `/usr/bin/python3 train/data.py` to build the speech bank (about 2 min).
"""
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly, butter, sosfilt

SR = 16000
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")

NOISE_TYPES = ["white", "pink", "brown", "hum", "babble", "clicks", "band", "nonstationary"]

WORDS = {
    "en": ("the a of and to in is you that it he was for on are as with his they at be this have from "
           "or one had by word but not what all were we when your can said there use an each which she do "
           "how their if will up other about out many then them these so some her would make like him into "
           "time has look two more write go see number no way could people my than first water been call who "
           "oil its now find long down day did get come made may part morning evening window garden music "
           "quickly slowly yesterday tomorrow seven eleven twenty hundred station computer weather river "
           "mountain telephone kitchen yellow purple orange remember understand question answer important").split(),
    "de": ("der die das und ist nicht ich du wir sie ein eine zu mit auf für heute morgen abend gut schnell "
           "langsam Haus Wasser Zeit Stadt Auto Fenster Garten Musik sieben elf zwanzig hundert Frage Antwort "
           "wichtig verstehen erinnern Bahnhof Wetter Fluss Berg Telefon Küche gelb").split(),
    "fr": ("le la les et est pas je tu nous vous un une avec pour sur aujourd'hui demain soir bien vite "
           "lentement maison eau temps ville voiture fenêtre jardin musique sept onze vingt cent question "
           "réponse important comprendre souvenir gare météo rivière montagne téléphone cuisine jaune").split(),
    "es": ("el la los y es no yo tú nosotros un una con para sobre hoy mañana noche bien rápido despacio "
           "casa agua tiempo ciudad coche ventana jardín música siete once veinte cien pregunta respuesta "
           "importante entender recordar estación clima río montaña teléfono cocina amarillo").split(),
    "it": ("il la gli e è non io tu noi un una con per su oggi domani sera bene presto piano casa acqua "
           "tempo città macchina finestra giardino musica sette undici venti cento domanda risposta "
           "importante capire ricordare stazione tempo fiume montagna telefono cucina giallo").split(),
    "nl": ("de het een en is niet ik jij wij zij met voor op vandaag morgen avond goed snel langzaam huis "
           "water tijd stad auto raam tuin muziek zeven elf twintig honderd vraag antwoord belangrijk "
           "begrijpen herinneren station weer rivier berg telefoon keuken geel").split(),
}
# espeak-ng voice names per language (several accents of English)
ESPEAK_LANGS = {"en": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd"],
                "de": ["de"], "fr": ["fr"], "es": ["es"], "it": ["it"], "nl": ["nl"]}
ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak", "klatt"]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
HELD_OUT_VARIANTS = {"f4", "m6"}
HELD_OUT_LANGS = {"nl"}
HELD_OUT_FLITE = {"slt"}


def _sentence(rng, lang):
    w = WORDS[lang]
    n = int(rng.integers(5, 16))
    return " ".join(w[int(i)] for i in rng.integers(0, len(w), n)) + "."


def _read16k(path):
    sr, x = wavfile.read(path)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != SR:
        x = resample_poly(x, SR, sr).astype(np.float32)
    return x


def _synth(job):
    kind, voice, text, speed, pitch = job
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "s.wav")
        if kind == "espeak":
            cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", out, text]
        else:
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={speed}",
                   "--setf", f"int_f0_target_mean={pitch}", "-t", text, "-o", out]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        x = _read16k(out)
    # trim leading/trailing silence to 50 ms
    e = np.abs(x) > 1e-3
    if e.any():
        i0, i1 = np.argmax(e), len(x) - np.argmax(e[::-1])
        x = x[max(0, i0 - 800):min(len(x), i1 + 800)]
    return x / (np.max(np.abs(x)) + 1e-9) * 0.5


def _jobs(rng, n, split):
    jobs = []
    for _ in range(n):
        if rng.random() < 0.2:
            pool = [v for v in FLITE_VOICES if (v in HELD_OUT_FLITE) == (split == "val")]
            voice = pool[int(rng.integers(len(pool)))]
            lang = "en"
            jobs.append(("flite", voice, _sentence(rng, lang), round(float(rng.uniform(0.8, 1.3)), 2),
                         int(rng.integers(80, 200))))
            continue
        while True:
            lang = list(ESPEAK_LANGS)[int(rng.integers(len(ESPEAK_LANGS)))]
            var = ESPEAK_VARIANTS[int(rng.integers(len(ESPEAK_VARIANTS)))]
            held = lang in HELD_OUT_LANGS or var in HELD_OUT_VARIANTS
            if held == (split == "val"):
                break
        base = ESPEAK_LANGS[lang][int(rng.integers(len(ESPEAK_LANGS[lang])))]
        jobs.append(("espeak", f"{base}+{var}", _sentence(rng, lang), int(rng.integers(110, 230)),
                     int(rng.integers(15, 85))))
    return jobs


def make_bank(n_train=900, n_val=120, seed=1):
    """Synthesizes the speech bank into train/cache/speech/{train,val}.npz."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(CACHE, "speech"), exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        jobs = _jobs(rng, n, split)
        with ThreadPoolExecutor(2) as ex:
            utts = list(ex.map(_synth, jobs))
        utts = [u for u in utts if len(u) > SR // 2]
        path = os.path.join(CACHE, "speech", f"{split}.npz")
        np.savez(path, *utts, voices=np.array([f"{j[0]}:{j[1]}" for j in jobs]))
        print(f"{path}: {len(utts)} utterances, {sum(map(len, utts)) / SR / 60:.1f} min", flush=True)


def load_bank(split):
    z = np.load(os.path.join(CACHE, "speech", f"{split}.npz"))
    return [z[f"arr_{i}"] for i in range(len(z.files) - 1)]


# ---------------------------------------------------------------- noise
def _colored(n, rng, exponent):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def make_noise(kind, n, rng, bank=None, sr=SR):
    """One noise signal of n samples at sr Hz (unit-free; the mixer sets its level).
    babble sums 3-6 utterances of `bank` (which must be at sr)."""
    t = np.arange(n) / sr
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        x = _colored(n, rng, 1.0)
    elif kind == "brown":
        x = _colored(n, rng, 2.0)
    elif kind == "hum":
        f0 = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3))
                for k in range(1, int(rng.integers(3, 9))))
        x = x + 0.05 * np.std(x) * _colored(n, rng, 1.0) / (np.std(_colored(64, rng, 1.0)) + 1)
    elif kind == "babble":
        x = np.zeros(n)
        for _ in range(int(rng.integers(3, 7))):
            u = bank[int(rng.integers(len(bank)))]
            while len(u) < n:
                u = np.concatenate([u, bank[int(rng.integers(len(bank)))]])
            o = int(rng.integers(0, len(u) - n + 1))
            x += u[o:o + n] * rng.uniform(0.5, 1.0)
    elif kind == "clicks":
        x = 0.02 * rng.standard_normal(n)
        for _ in range(int(rng.integers(5, 40))):
            p = int(rng.integers(0, n))
            ln = int(rng.integers(5, 2000))
            seg = rng.standard_normal(min(ln, n - p)) * np.exp(-np.arange(min(ln, n - p)) / (ln / 4))
            x[p:p + len(seg)] += seg * rng.uniform(1, 10)
    elif kind == "band":
        lo = rng.uniform(80, 4000)
        lo = lo * rng.uniform(1, 4) if sr > SR else lo
        hi = min(lo * rng.uniform(1.3, 3.0), 0.49 * sr)
        sos = butter(4, [lo, hi], btype="band", fs=sr, output="sos")
        x = sosfilt(sos, rng.standard_normal(n))
    elif kind == "nonstationary":
        base = _colored(n, rng, rng.uniform(0, 2))
        fm = rng.uniform(0.2, 4.0)
        env = 0.55 + 0.45 * np.sin(2 * np.pi * fm * t + rng.uniform(0, 6.3))
        env *= np.exp(np.cumsum(rng.standard_normal(n)) / np.sqrt(n) * 1.5)
        x = base * env
    else:
        raise ValueError(kind)
    x = np.asarray(x, dtype=np.float64)
    return x / (np.std(x) + 1e-12)


def active_power(speech, frame=256):
    """Mean power of the speech over frames (of `frame` samples) within 30 dB of its loudest frame."""
    m = len(speech) // frame
    e = (speech[:m * frame].reshape(m, frame) ** 2).mean(axis=1)
    act = e > e.max() * 1e-3
    return float(e[act].mean()) if act.any() else float(np.mean(speech ** 2) + 1e-12)


def make_mixture(speech, noise, snr_db, rng, level_db=None):
    """Returns (mix, clean) scaled together: SNR over active speech, random level
    (RMS of the mixture between -42 and -12 dBFS unless level_db), peak <= 0.99."""
    p = active_power(speech)
    noise = noise * np.sqrt(p / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr_db / 10))
    mix = speech + noise
    lvl = rng.uniform(-42, -12) if level_db is None else level_db
    g = 10 ** (lvl / 20) / (np.sqrt(np.mean(mix ** 2)) + 1e-12)
    g = min(g, 0.99 / (np.max(np.abs(mix)) + 1e-12))
    return (mix * g).astype(np.float32), (speech * g).astype(np.float32)


def make_clip(bank, n, rng):
    """n samples of clean speech: 1-3 utterances at random places with silences."""
    x = np.zeros(n, dtype=np.float64)
    pos = int(rng.integers(0, n // 4))
    while pos < n - SR // 4:
        u = bank[int(rng.integers(len(bank)))] * rng.uniform(0.3, 1.0)
        ln = min(len(u), n - pos)
        x[pos:pos + ln] += u[:ln]
        pos += ln + int(rng.integers(SR // 10, SR))
    return x


def vad_labels(clean, hop=256, n_fft=512):
    """Per frame (the daemon's causal framing: frame m = samples
    [(m+1)hop - n_fft, (m+1)hop)) 1 when the clean frame's energy is within
    35 dB of the loudest frame and above -70 dBFS, else 0."""
    pad = np.concatenate([np.zeros(n_fft - hop), clean])
    m = len(clean) // hop
    fr = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop][:m]
    e = 10 * np.log10((fr ** 2).mean(axis=1) + 1e-20)
    return ((e > e.max() - 35) & (e > -70)).astype(np.float32)


if __name__ == "__main__":
    make_bank(*(int(a) for a in sys.argv[1:3]))
