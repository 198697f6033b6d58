# SPDX-License-Identifier: MIT
"""Real speech and real noise banks at 48 kHz, made from Debian packages.

  /usr/bin/python3 train/banks.py          # → train/cache/banks/{speech,noise}_{train,val,test}.npz

Every source is a Debian package fetched by name with `apt-get download` into
train/cache/debs/ and unpacked with `dpkg -x` (no root needed, nothing installed
system-wide); archives inside packages (0 A.D.'s public.zip, Warzone 2100's
base.wz) are read with zipfile.  Audio is decoded with libsndfile (soundfile),
downmixed, resampled to 48 kHz (scipy resample_poly) and stored as int16 with
per-utterance offsets.  Nothing here is committed.

Bandwidth: each utterance gets `cutoff_hz`, the highest frequency its long-term
spectrum reaches within 60 dB of its peak, capped at 0.96 × its native Nyquist.
Band-limited sources (Warzone 2100 at 11 kHz, tuxpaint's Catalan and Greek
recordings ~8 kHz, the synthesized espeak-ng/flite bank at 16 kHz) may only
teach the bands they cover: train.py masks the loss above each clip's cutoff.

Splits are by source (speaker / recording set), never by utterance:
  speech  test  tuxpaint-stamps es, da; 0 A.D. napatan voices
          val   tuxpaint-stamps ro; 0 A.D. latin voices; data.py's held-out synthetic voices
          train tuxpaint-stamps fr ru bg be ca el lt nl en; 0 A.D. greek, persian voices;
                Warzone 2100 voice messages; klettres-data (letters and syllables read
                aloud, one speaker per language); fillets-ng-data-cs and -nl (the game's
                dialogues, Czech and Dutch voice acting); data.py's synthetic training voices
  noise   test  lincity-ng-data, wesnoth-1.16-data sounds, megaglest tileset sounds
          val   extremetuxracer-data sounds, megaglest common sounds, minetest-data sounds,
                redeclipse-data "morph" ambience, flightgear-data-base sounds (engines,
                propellers, wind, rain, thunder; its voice call-outs left out)
          train 0ad-data (ambient, actor and attack sounds), bucklespring-data (keyboard),
                supertux-data, frozen-bubble-data, xmoto-data, pingus-data,
                Warzone 2100 sound effects, fillets-ng-data effects, redeclipse-data
                ambience (wind, rain, water, fire, machines, traffic) and effects,
                supertuxkart-data effects (engines, rain, crowd, restaurant) and music,
                scorched3d-data sounds (supertuxkart's voices left out), widelands-data
                (animals, farms, saws, smithies, taverns; music), cube2-data,
                freedroidrpg-data, warmux-data, marsshooter-data and openarena-data effects
                and music (their voices and announcers left out); 7kaa-data ambience,
                lugaru-data, btanks-data, endless-sky-data, enigma-data, tuxpaint-data,
                boswars-data, alienblaster-data and foobillardplus-data effects;
                simutrans-pak64 (traffic, machinery, nature ambience), netpanzer-data,
                freeciv-data, gltron, stormbaancoureur-data, tuxfootball (crowd), freecol
                and ufoai-sound (ambience, footsteps, weapons) sounds (their spoken lines
                and music left out)
Identical recordings in two places (games share sound effects: lincity-ng's
Mill1.wav is supertux's saw.wav) are kept once: splits are filled train, val,
test, noise before speech, and an item whose samples were already taken is
dropped, so nothing of the validation or test banks was seen in training.
Only the packages of PACKAGES are fetched (packages set aside for independent
evaluation by others are not among them); alsa-utils' Front_Center.wav (the
demo's real voice) is not used either.
"""
import fnmatch
import glob
import io
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SR = 48000
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "cache")
DEBS = os.path.join(CACHE, "debs")
ROOT = os.path.join(CACHE, "pkgroot")
OUT = os.path.join(CACHE, "banks")

PACKAGES = ["tuxpaint-stamps-default", "0ad-data", "warzone2100-data", "bucklespring-data",
            "supertux-data", "frozen-bubble-data", "xmoto-data", "pingus-data", "extremetuxracer-data",
            "fillets-ng-data", "megaglest-data", "lincity-ng-data", "wesnoth-1.16-data",
            "redeclipse-data", "supertuxkart-data", "scorched3d-data", "minetest-data",
            "klettres-data", "widelands-data", "flightgear-data-base", "cube2-data", "freedroidrpg-data",
            "warmux-data", "marsshooter-data", "openarena-data", "7kaa-data", "lugaru-data", "btanks-data",
            "endless-sky-data", "enigma-data", "tuxpaint-data", "boswars-data", "alienblaster-data",
            "foobillardplus-data", "simutrans-pak64", "netpanzer-data", "freeciv-data", "gltron",
            "stormbaancoureur-data", "tuxfootball", "freecol", "ufoai-sound",
            "fillets-ng-data-cs", "fillets-ng-data-nl"]
AUDIO = ("*.ogg", "*.wav", "*.flac")

G = "usr/share/games/"
TUX = "usr/share/tuxpaint/stamps/"
# (name, split, kind, where): where is a glob under ROOT, or ("zip", archive, member pattern)
SOURCES = [
    *[(f"tuxpaint_{l}", "test", "speech", TUX + f"**/*_desc_{l}.ogg") for l in ("es", "da")],
    ("tuxpaint_ro", "val", "speech", TUX + "**/*_desc_ro.ogg"),
    *[(f"tuxpaint_{l}", "train", "speech", TUX + f"**/*_desc_{l}.ogg")
      for l in ("fr", "ru", "bg", "be", "ca", "el", "lt", "nl")],
    ("tuxpaint_en", "train", "speech", TUX + "**/*_desc.ogg"),
    ("0ad_napatan", "test", "speech", ("zip", G + "0ad/mods/public/public.zip", "audio/voice/napatan/civ/*.ogg")),
    ("0ad_latin", "val", "speech", ("zip", G + "0ad/mods/public/public.zip", "audio/voice/latin/civ/*.ogg")),
    *[(f"0ad_{c}", "train", "speech", ("zip", G + "0ad/mods/public/public.zip", f"audio/voice/{c}/civ/*.ogg"))
      for c in ("greek", "persian")],
    *[(f"warzone_{d}", "train", "speech", ("zip", G + "warzone2100/base.wz", f"audio/{d}/*.ogg"))
      for d in ("memressp", "tutorial", "taunts", "vtoltalk", "trnsppil", "nexus")],
    ("warzone_sequence", "train", "speech", ("zip", G + "warzone2100/base.wz", "sequenceaudio/*.ogg")),
    # letters and syllables read aloud, one speaker per language (short items)
    ("klettres", "train", "speech", "usr/share/klettres/**/*.ogg"),
    # Fish Fillets' spoken dialogues, Czech and Dutch voice acting (the two fish and the
    # other characters; 22.05 kHz, some 44.1 kHz); the "-x-" items (shouts, other
    # characters' sounds) are left out
    *[(f"fillets_{l}", "train", "speech", G + f"fillets-ng/sound/*/{l}/*.ogg", ("*-x-*",))
      for l in ("cs", "nl")],

    ("lincity", "test", "noise", G + "lincity-ng/sounds/*"),
    ("wesnoth", "test", "noise", G + "wesnoth/1.16/data/core/sounds/**/*"),
    ("megaglest_tileset", "test", "noise", G + "megaglest/tilesets/*/sounds/**/*"),
    ("etr", "val", "noise", G + "etr/sounds/*"),
    ("megaglest_common", "val", "noise", G + "megaglest/data/core/**/*"),
    *[(f"0ad_{d}", "train", "noise", ("zip", G + "0ad/mods/public/public.zip", f"audio/{d}/*"))
      for d in ("ambient", "actor", "attack", "resource", "interface")],
    ("bucklespring", "train", "noise", "usr/share/buckle/wav/*"),
    ("supertux", "train", "noise", G + "supertux2/sounds/*"),
    ("frozen_bubble", "train", "noise", G + "frozen-bubble/snd/*"),
    ("xmoto", "train", "noise", G + "xmoto/**/*"),
    ("pingus", "train", "noise", G + "pingus/data/sounds/**/*"),
    ("warzone_sfx", "train", "noise", ("zip", G + "warzone2100/base.wz", "audio/sfx/*")),
    ("fillets_sfx", "train", "noise", G + "fillets-ng/sound/*/en/*-x-*"),
    # ambient loops (wind, rain, water, fire, forest, machines, traffic) and effects; the
    # Red Eclipse "morph" ambience set is validation
    ("redeclipse_ambience", "train", "noise", G + "redeclipse/data/sounds/ambience/*.ogg"),
    ("redeclipse_morph", "val", "noise", G + "redeclipse/data/sounds/ambience/morph/*.ogg"),
    ("redeclipse_sfx", "train", "noise", G + "redeclipse/data/sounds/[sw][fe]*/**/*.ogg"),
    # engines, rain, river, crowd and restaurant ambience, thunder; the voices are left out
    ("supertuxkart_sfx", "train", "noise", G + "supertuxkart/data/sfx/*.ogg",
     ("*airport_pa*", "*Scream*", "*/ugh.ogg", "*/wee.ogg")),
    ("supertuxkart_music", "train", "noise", G + "supertuxkart/data/music/*.ogg"),
    ("scorched3d", "train", "noise", G + "scorched3d/data/globalmods/*/data/wav/**/*.wav"),
    # footsteps, digging, water, fire (validation)
    ("minetest", "val", "noise", G + "minetest/games/minetest_game/mods/*/sounds/*.ogg"),
    # aircraft engines, propellers, turbines, wind, rain, thunder, tyres (validation); the
    # cockpit voice call-outs and checklists are left out
    ("flightgear", "val", "noise", G + "flightgear/**/Sounds/**/*",
     ("*/mk-viii/*", "*/tcas/*", "*checklist*")),
    # animals, farms, saws, smithies, taverns, mills; music
    ("widelands", "train", "noise", G + "widelands/data/[sm][ou]*/**/*"),
    ("cube2", "train", "noise", G + "cube2/packages/sounds/**/*", ("*/sounds/0ad/*",)),
    ("freedroidrpg", "train", "noise", "usr/share/freedroidrpg/data/sound/**/*",
     ("*/voice_samples/*", "*/tux_ingame_comments/*", "*Scream*", "*ThouArtDefeated*")),
    ("warmux", "train", "noise", G + "warmux/**/*", ("*/voices/*",)),
    ("marsshooter", "train", "noise", G + "marsshooter/audio/**/*", ("*/announcer/*",)),
    # weapons, footsteps, doors, world ambience; the players' voices and the announcer left out
    ("openarena", "train", "noise", ("zip", G + "openarena/baseoa/pak0.pk3", "sound/*"),
     ("sound/player/[!f]*", "sound/feedback/*", "*announcer*")),
    # fire, earthquake, rain, thunder, wind (Seven Kingdoms' ambience)
    ("7kaa", "train", "noise", G + "7kaa/SOUND/*"),
    # fights, footsteps on grass/snow/stone, whooshes, wind, fire, desert ambience, creatures; music left out
    ("lugaru", "train", "noise", G + "lugaru/Sounds/*", ("*Music*",)),
    # engines, helicopter, train, submarine, explosions, guns; city/country/forest/swamp ambience;
    # the tunes and the human screams and laughs left out
    ("btanks", "train", "noise", G + "btanks/data/sounds/**/*",
     ("*deadman*", "*laugh*", "*scream*", "*zombie*")),
    # spaceship engines, weapons, explosions, alarms
    ("endless_sky", "train", "noise", G + "endless-sky/sounds/**/*"),
    # marbles rolling and colliding, glass, water, switches (its music left out)
    ("enigma", "train", "noise", G + "enigma/soundsets/**/*"),
    # paint, eraser, stamp, keyclick, typewriter bell; the spoken prompts left out
    ("tuxpaint_sfx", "train", "noise", "usr/share/tuxpaint/sounds/*",
     ("*areyousure*", "*giggle*", "*youcannot*", "*tuxok*", "*prompt*")),
    # the units' weapons, actions and deaths; their spoken acknowledgements and the tutorial left out
    ("boswars", "train", "noise", G + "boswars/units/*/*",
     ("*ready*", "*underattack*", "*completed*", "*select*", "*attacked*")),
    ("alienblaster", "train", "noise", G + "alienblaster/sound/*", ("*intro*",)),
    # billiard balls, shots, applause (the "ooh" and the music left out)
    ("foobillardplus", "train", "noise", G + "foobillardplus/data/*.wav", ("*ooh*", "*intro*")),
    # water, seagulls, forest, desert, arctic, tropic ambience; bus, truck, diesel, steam, planes,
    # boat horn, level crossing, jackhammer, buzzsaw, tree cutting, horse
    ("simutrans", "train", "noise", G + "simutrans/pak/sound/*"),
    # tank engines idling and moving, guns, explosions; the crews' spoken replies and screams left out
    ("netpanzer", "train", "noise", G + "netpanzer/sound/*",
     ("*yessir*", "*affirm*", "*selected*", "*scream*", "*tarconf*", "*movout*")),
    # cannons, explosions, machine guns, mortar, splash, hovercraft, treads, footsteps, breaking wood/metal
    ("freeciv", "train", "noise", G + "freeciv/stdsounds/*"),
    ("gltron", "train", "noise", G + "gltron/data/*"),
    # a car engine, a detonation
    ("stormbaancoureur", "train", "noise", G + "stormbaancoureur/sounds/*"),
    # a football crowd (cheering, booing), whistles, kicks; its music left out
    ("tuxfootball", "train", "noise", G + "tuxfootball/sound/*", ("*music*", "*ingame*")),
    # artillery, naval and cavalry attacks, building, fountain; the anthems and music left out
    ("freecol", "train", "noise", G + "freecol/default/resources/sound/[ae]*/*"),
    # UFO: Alien Invasion: ambience loops; footsteps, weapons, doors, impacts, vehicles (the
    # soldiers', civilians' and aliens' voices left out)
    ("ufoai_ambience", "train", "noise", ("zip", G + "ufoai/base/0snd.pk3", "sound/ambience/*")),
    ("ufoai_sfx", "train", "noise", ("zip", G + "ufoai/base/0snd.pk3", "sound/*"),
     ("sound/aliens/*", "sound/civilians/*", "sound/soldiers/*", "sound/seq/*", "sound/ambience/*")),
]


def fetch_packages():
    os.makedirs(DEBS, exist_ok=True)
    os.makedirs(ROOT, exist_ok=True)
    for p in PACKAGES:
        stamp = os.path.join(ROOT, f".{p}.unpacked")
        if os.path.exists(stamp):
            continue
        debs = glob.glob(os.path.join(DEBS, f"{p}_*.deb"))
        if not debs:
            print(f"banks: apt-get download {p}", flush=True)
            subprocess.run(["apt-get", "download", "-q", p], cwd=DEBS, check=True, stdout=subprocess.DEVNULL)
            debs = glob.glob(os.path.join(DEBS, f"{p}_*.deb"))
        subprocess.run(["dpkg", "-x", debs[0], ROOT], check=True)
        open(stamp, "w").close()


def _audio_name(n):
    return any(fnmatch.fnmatch(n.lower(), a) for a in AUDIO)


def list_items(where, exclude=()):
    """[(label, loader-arg)] for a source, leaving out the names matching an exclude pattern."""
    items = _list_items(where)
    return [(n, it) for n, it in items if not any(fnmatch.fnmatch(n, e) for e in exclude)]


def _list_items(where):
    if isinstance(where, tuple):
        _, arc, pat = where
        with zipfile.ZipFile(os.path.join(ROOT, arc)) as z:
            names = sorted(n for n in z.namelist() if fnmatch.fnmatch(n, pat) and _audio_name(n))
        return [(n, ("zip", arc, n)) for n in names]
    files = sorted(f for f in glob.glob(os.path.join(ROOT, where), recursive=True)
                   if os.path.isfile(f) and _audio_name(f))
    return [(os.path.relpath(f, ROOT), ("file", f)) for f in files]


def _read(item):
    if item[0] == "zip":
        with zipfile.ZipFile(os.path.join(ROOT, item[1])) as z:
            buf = io.BytesIO(z.read(item[2]))
        return sf.read(buf, dtype="float32", always_2d=True)
    return sf.read(item[1], dtype="float32", always_2d=True)


def cutoff_hz(x, sr):
    """Highest frequency where the smoothed long-term spectrum is within 60 dB of its peak."""
    n = min(len(x), sr * 4)
    if n < 1024:
        return 0.96 * sr / 2
    f, p = 0, None
    seg = 1024
    frames = np.lib.stride_tricks.sliding_window_view(x[:n], seg)[::seg // 2]
    p = (np.abs(np.fft.rfft(frames * np.hanning(seg), axis=1)) ** 2).mean(0)
    p = np.convolve(p, np.ones(5) / 5, "same")
    db = 10 * np.log10(p / (p.max() + 1e-30) + 1e-30)
    idx = np.where(db > -60)[0]
    f = (idx[-1] + 1) * sr / seg if len(idx) else sr / 2
    return float(min(f, 0.96 * sr / 2))


def _load_one(args):
    kind, item = args
    try:
        x, sr = _read(item)
    except Exception as e:  # a few game files are not audio libsndfile reads
        return None, f"{item[-1]}: {e}"
    x = x.mean(axis=1)
    if not np.all(np.isfinite(x)) or len(x) < sr // 10:
        return None, None
    cut = cutoff_hz(x, sr)
    if sr != SR:
        g = np.gcd(SR, sr)
        x = resample_poly(x, SR // g, sr // g).astype(np.float32)
    if kind == "speech":  # trim to 50 ms around what is above -50 dB of the peak
        a = np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)
        i0, i1 = np.argmax(a), len(x) - np.argmax(a[::-1])
        x = x[max(0, i0 - 2400):min(len(x), i1 + 2400)]
        if len(x) < SR // 4:
            return None, None
    peak = np.max(np.abs(x))
    if peak < 1e-4:
        return None, None
    x = x / peak * 0.9
    return (np.round(x * 32767).astype(np.int16), cut), None


def synthetic_bank(split):
    """data.py's espeak-ng/flite bank (16 kHz, cutoff 7.8 kHz) at 48 kHz."""
    sys.path.insert(0, HERE)
    import data
    path = os.path.join(data.CACHE, "speech", f"{split}.npz")
    if not os.path.isfile(path):
        data.make_bank()
    out = []
    for u in data.load_bank(split):
        x = resample_poly(u, 3, 1)
        out.append((np.round(x / (np.max(np.abs(x)) + 1e-9) * 0.9 * 32767).astype(np.int16), 7800.0))
    return out


def build():
    fetch_packages()
    os.makedirs(OUT, exist_ok=True)
    banks = {}
    with ProcessPoolExecutor(2) as ex:
        for name, split, kind, where, *exclude in SOURCES:
            items = list_items(where, *exclude)
            res = list(ex.map(_load_one, [(kind, it) for _, it in items], chunksize=16))
            errs = [e for _, e in res if e]
            got = [r for r, _ in res if r is not None]
            banks.setdefault((kind, split), []).extend((name, x, c) for x, c in got)
            dur = sum(len(x) for x, _ in got) / SR
            cuts = np.array([c for _, c in got]) if got else np.zeros(1)
            print(f"banks: {kind:6s} {split:5s} {name:20s} {len(got):5d} files {dur / 60:6.1f} min "
                  f"cutoff median {np.median(cuts) / 1000:4.1f} kHz" + (f" ({len(errs)} unreadable)" if errs else ""),
                  flush=True)
    dedupe(banks)
    for split in ("train", "val"):
        syn = synthetic_bank(split)
        banks[("speech", split)].extend(("synthetic", x, c) for x, c in syn)
        print(f"banks: speech {split:5s} synthetic            {len(syn):5d} utterances "
              f"{sum(len(x) for x, _ in syn) / SR / 60:6.1f} min cutoff 7.8 kHz", flush=True)
    save(banks)


def dedupe(banks):
    """Drops, in place, every item whose samples already appear earlier in the order
    train, val, test (noise before speech); prints what it dropped."""
    import hashlib
    seen = {}
    for split in ("train", "val", "test"):
        for kind in ("noise", "speech"):
            kept = []
            for name, x, c in banks.get((kind, split), []):
                h = hashlib.sha1(x.tobytes()).hexdigest()
                if h in seen:
                    print(f"banks: {kind} {split} {name}: dropped a recording already in {seen[h]}", flush=True)
                    continue
                seen[h] = f"{kind} {split} {name}"
                kept.append((name, x, c))
            if (kind, split) in banks:
                banks[(kind, split)] = kept


def save(banks):
    for (kind, split), items in banks.items():
        names = sorted({n for n, _, _ in items})
        lens = np.array([len(x) for _, x, _ in items], dtype=np.int64)
        np.savez(os.path.join(OUT, f"{kind}_{split}.npz"),
                 audio=np.concatenate([x for _, x, _ in items]),
                 offsets=np.concatenate([[0], np.cumsum(lens)]),
                 cutoff_hz=np.array([c for _, _, c in items], dtype=np.float32),
                 source=np.array([names.index(n) for n, _, _ in items], dtype=np.int32),
                 source_names=np.array(names))
        print(f"banks: {kind}_{split}.npz: {len(items)} items, {lens.sum() / SR / 60:.1f} min, "
              f"sources {', '.join(names)}", flush=True)


class Bank:
    """A bank loaded from train/cache/banks: item(i) → float32 {n} at 48 kHz, cutoff_hz[i], source[i]."""

    def __init__(self, kind, split):
        z = np.load(os.path.join(OUT, f"{kind}_{split}.npz"))
        self.audio, self.offsets = z["audio"], z["offsets"]
        self.cutoff_hz, self.source, self.source_names = z["cutoff_hz"], z["source"], list(z["source_names"])
        self.n = len(self.offsets) - 1

    def item(self, i):
        return self.audio[self.offsets[i]:self.offsets[i + 1]].astype(np.float32) / 32767.0

    def by_source(self, name):
        k = self.source_names.index(name)
        return np.flatnonzero(self.source == k)


def dedupe_cached():
    """Applies dedupe to the banks already in train/cache/banks (no decoding)."""
    banks = {}
    for split in ("train", "val", "test"):
        for kind in ("noise", "speech"):
            if os.path.isfile(os.path.join(OUT, f"{kind}_{split}.npz")):
                b = Bank(kind, split)
                banks[(kind, split)] = [(b.source_names[b.source[i]], b.audio[b.offsets[i]:b.offsets[i + 1]],
                                         float(b.cutoff_hz[i])) for i in range(b.n)]
    dedupe(banks)
    save(banks)


if __name__ == "__main__":
    if sys.argv[1:] == ["--dedupe-cached"]:
        dedupe_cached()
    else:
        build()
