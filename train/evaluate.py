# SPDX-License-Identifier: MIT
"""Evaluates a denoiser as users get it — through the ssmd daemon — next to RNNoise in the same run.

  scripts/setup.sh && SSMD_TRAIN=1 scripts/setup.sh      # packages; npm installs the RNNoise peer
  /usr/bin/python3 train/banks.py                        # held-out banks (once)
  /usr/bin/python3 train/evaluate.py --ssmd build/daemon/ssmd [--per-cell 8] [--out models/eval.json]

Held-out set (train/banks.py, test split: never used in training or validation):
voices of tuxpaint-stamps' Spanish and Danish recordings and 0 A.D.'s Napatan
voices; recorded noises of lincity-ng, Wesnoth and MegaGlest's tilesets; babble
of 3-7 other held-out utterances; generated noises (data.make_noise at 48 kHz)
from a seed no training batch uses.  Cells: noise family (generated, real,
babble) × input SNR (−5, 0, 5, 10, 20 dB) × --per-cell 4-second clips at 48 kHz,
plus 2 × per-cell clean clips and per-cell noise-only clips of each family.

Systems, each on the same 48 kHz mixtures:
  ssmd     the daemon's offline job (`ssmd --model M IN.wav -o OUT.wav`, float WAV,
           delay compensated by the daemon) for the audio; the voice activity per
           frame from the same daemon serving the clips as pushed streams
  rnnoise  @shiguredo/rnnoise-wasm (RNNoise 0.2 with its 2025 model) under Node
           (train/rnnoise/peer.mjs); its delay is measured on the clean clips
           (lag of the largest cross-correlation) and removed
  input    the unprocessed mixture (reference row)

Metrics:
  SI-SDR improvement, full band (48 kHz) and in the 16 kHz band (both signals
  resampled to 16 kHz), mean over clips;
  residual noise in pauses: energy of the input over the output in frames the
  clean speech labels as silence (dB below input);
  clean speech: SI-SDR of the output against the clean input and its active
  level change (dB);
  noise-only input: attenuation (dB, first 0.1 s ignored) and mean VAD;
  VAD: accuracy (p > 0.5) and ROC-AUC against labels from the clean speech's
  frame energy (mixtures.vad_labels), on the 5 dB mixtures and on all mixtures.
Prints Markdown tables; --out writes everything as JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy.signal import correlate, resample_poly

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import banks  # noqa: E402
import mixtures  # noqa: E402

SR, HOP, N_FFT = 48000, 480, 960
SNRS = [-5, 0, 5, 10, 20]
SEG = 4 * SR
SYSTEMS = ("ssmd", "rnnoise")


def si_sdr(est, ref):
    est = est - est.mean()
    ref = ref - ref.mean()
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-20)
    s = a * ref
    return 10 * np.log10(np.dot(s, s) / (np.dot(est - s, est - s) + 1e-20) + 1e-20)


def band16(x):
    return resample_poly(x, 1, 3)


def roc_auc(score, label):
    """Probability that a random speech frame scores above a random silent one (ties count half)."""
    pos, neg = score[label > 0.5], score[label <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    r = np.arange(1, len(order) + 1, dtype=np.float64)
    i = 0
    while i < len(allv):  # average ranks of ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        r[i:j + 1] = (i + j + 2) / 2
        i = j + 1
    ranks[order] = r
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def make_set(per_cell, seed=2027, split="test"):
    rng = np.random.default_rng(seed)
    sb, nb = banks.Bank("speech", split), banks.Bank("noise", split)
    items = []
    for fam in mixtures.FAMILIES:
        for snr in SNRS:
            for _ in range(per_cell):
                e = mixtures.make_example(SEG, rng, sb, nb, HOP, N_FFT, snr_db=snr, family=fam,
                                          p_reverb=0.0, p_colour=0.0)
                items.append(dict(family=fam, snr=snr, mix=e["mix"], clean=e["clean"]))
        for _ in range(per_cell):
            e = mixtures.make_example(SEG, rng, sb, nb, HOP, N_FFT, family=fam, p_noise_only=1.0,
                                      p_reverb=0.0, p_colour=0.0)
            items.append(dict(family=fam, snr="noise-only", mix=e["mix"], clean=e["clean"]))
    for _ in range(2 * per_cell):
        c, _ = mixtures.speech_clip(sb, SEG, rng)
        lvl = rng.uniform(-40, -15)
        g = min(10 ** (lvl / 20) / (np.sqrt(np.mean(c ** 2)) + 1e-12), 0.99 / np.max(np.abs(c)))
        c = (c * g).astype(np.float32)
        items.append(dict(family="none", snr="clean", mix=c, clean=c))
    for it in items:
        it["vad_label"] = mixtures.vad_labels(it["clean"].astype(np.float64), HOP, N_FFT) \
            if it["snr"] != "noise-only" else np.zeros(SEG // HOP, np.float32)
    return items


def run_ssmd_files(ssmd, model, items, work, extra):
    for i, it in enumerate(items):
        src, dst = os.path.join(work, f"{i:04d}.in.wav"), os.path.join(work, f"{i:04d}.out.wav")
        sf.write(src, it["mix"], SR, subtype="FLOAT")
        cmd = [ssmd, "--model", model, src, "-o", dst, "--output-format", "float", "--progress", "never", "--log-level", "error"] + extra
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"evaluate: {' '.join(cmd)} failed: {r.stderr.strip()}")
        y, sr = sf.read(dst, dtype="float64", always_2d=True)
        if sr != SR or len(y) != SEG:
            sys.exit(f"evaluate: {dst}: {sr} Hz, {len(y)} samples (expected {SR}, {SEG})")
        it["out_ssmd"] = y.mean(axis=1)


def run_ssmd_vad(ssmd, model, items, port0, extra):
    from ssmd import Pusher, Subscriber
    pub, ing, ctl = (f"tcp://127.0.0.1:{port0 + k}" for k in range(3))
    proc = subprocess.Popen([ssmd, "--model", model, "--input", "none", "--serve", "yes", "--pub", pub,
                             "--ingest", ing, "--control", ctl, "--log-level", "error", "--pub-hwm", "1000000"]
                            + extra, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    n_frames = SEG // HOP
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            sys.exit(f"evaluate: daemon for VAD exited: {proc.stderr.read().strip()}")
        with Subscriber(pub, [], timeout=None, connect_timeout=10) as sub:
            time.sleep(0.3)
            for i, it in enumerate(items):
                it["vad_ssmd"] = np.full(n_frames, np.nan)
                with Pusher(ing, f"ev{i:04d}", connect_timeout=10, timeout=30) as p:
                    p.push(it["mix"], SR)
                    p.finish()
                    p.collect(timeout=30)
                deadline = time.time() + 10
                while np.isnan(it["vad_ssmd"]).any() and time.time() < deadline:
                    msg = sub.recv(timeout=1.0)
                    if msg is None:
                        continue
                    topic, h, v = msg
                    if topic.endswith("/vad/") and topic.startswith("ev"):
                        j = int(topic[2:6])
                        if 0 <= j < len(items) and "vad_ssmd" in items[j] and h.seq < n_frames:
                            items[j]["vad_ssmd"][h.seq] = float(np.asarray(v).ravel()[0])
                if np.isnan(it["vad_ssmd"]).any():
                    sys.exit(f"evaluate: no complete VAD for clip {i}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_rnnoise(items, work):
    peer = os.path.join(HERE, "rnnoise", "peer.mjs")
    if not os.path.isdir(os.path.join(HERE, "rnnoise", "node_modules", "@shiguredo")):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", os.path.join(HERE, "rnnoise")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"evaluate: npm install of the RNNoise peer failed: {r.stderr.strip()[-300:]}")
    src, dst, vad = (os.path.join(work, n) for n in ("rn.in.f32", "rn.out.f32", "rn.vad.f32"))
    np.stack([it["mix"] for it in items]).astype(np.float32).tofile(src)
    r = subprocess.run(["node", peer, src, str(len(items)), str(SEG), dst, vad], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"evaluate: RNNoise peer failed: {r.stderr.strip()}")
    out = np.fromfile(dst, np.float32).reshape(len(items), SEG).astype(np.float64)
    v = np.fromfile(vad, np.float32).reshape(len(items), -1)
    # its delay, measured: the lag maximising the summed cross-correlation with the clean clips
    cl = [(it["clean"].astype(np.float64), y) for it, y in zip(items, out) if it["snr"] == "clean"]
    lags = np.arange(0, 2400)
    score = np.zeros(len(lags))
    for c, y in cl:  # full correlation: index len(c) - 1 + k is y shifted by k
        score += correlate(y, c, mode="full", method="fft")[len(c) - 1 + lags]
    lag = int(lags[np.argmax(score)])
    for it, y, vv in zip(items, out, v):
        it["out_rnnoise"] = np.concatenate([y[lag:], np.zeros(lag)])
        it["vad_rnnoise"] = vv[:SEG // HOP]
    return lag


def frame_energy(x):
    pad = np.concatenate([np.zeros(N_FFT - HOP), x])
    fr = np.lib.stride_tricks.sliding_window_view(pad, N_FFT)[::HOP][:len(x) // HOP]
    return (fr ** 2).sum(axis=1)


def summarise(items):
    res = {}
    for sysname in ("input",) + SYSTEMS:
        out = lambda it: it["mix"].astype(np.float64) if sysname == "input" else it[f"out_{sysname}"]  # noqa: E731
        r = {"cells": {}, "families": {}}
        for fam in mixtures.FAMILIES:
            for snr in SNRS:
                sel = [it for it in items if it["family"] == fam and it["snr"] == snr]
                d_full, d_16, pause = [], [], []
                for it in sel:
                    c, m, y = it["clean"].astype(np.float64), it["mix"].astype(np.float64), out(it)
                    d_full.append(si_sdr(y, c) - si_sdr(m, c))
                    d_16.append(si_sdr(band16(y), band16(c)) - si_sdr(band16(m), band16(c)))
                    sil = it["vad_label"] < 0.5
                    if sil.sum() > 10:
                        pause.append(10 * np.log10(frame_energy(m)[sil].sum() / max(frame_energy(y)[sil].sum(), 1e-20)))
                r["cells"][f"{fam}/{snr}"] = dict(n=len(sel), sisdr_in_db=float(np.mean([si_sdr(it["mix"].astype(np.float64), it["clean"].astype(np.float64)) for it in sel])),
                                                  improvement_db=float(np.mean(d_full)),
                                                  improvement_16k_db=float(np.mean(d_16)),
                                                  pause_attenuation_db=float(np.mean(pause)) if pause else None)
            cells = [r["cells"][f"{fam}/{s}"] for s in SNRS]
            no = [it for it in items if it["family"] == fam and it["snr"] == "noise-only"]
            r["families"][fam] = dict(
                improvement_db=float(np.mean([c["improvement_db"] for c in cells])),
                improvement_16k_db=float(np.mean([c["improvement_16k_db"] for c in cells])),
                noise_only_attenuation_db=float(np.median([10 * np.log10(np.mean(it["mix"][4800:].astype(np.float64) ** 2) /
                                                                           max(np.mean(out(it)[4800:] ** 2), 1e-20)) for it in no])),
                noise_only_vad=None if sysname == "input" else float(np.mean([it[f"vad_{sysname}"].mean() for it in no])))
        cl = [it for it in items if it["snr"] == "clean"]
        # medians: an output equal to its input up to rounding has an SI-SDR of 100+ dB, which would rule a mean
        r["clean"] = dict(n=len(cl), sisdr_db=float(np.median([si_sdr(out(it), it["clean"].astype(np.float64)) for it in cl])) if sysname != "input" else None,
                          level_change_db=float(np.mean([10 * np.log10(mixtures.active_power(out(it)) /
                                                                       mixtures.active_power(it["clean"].astype(np.float64))) for it in cl])))
        if sysname != "input":
            for name, sel in (("snr5", [it for it in items if it["snr"] == 5]),
                              ("all_mixtures", [it for it in items if it["snr"] in SNRS])):
                sc = np.concatenate([it[f"vad_{sysname}"] for it in sel])
                lb = np.concatenate([it["vad_label"] for it in sel])
                r[f"vad_{name}"] = dict(accuracy=float(np.mean((sc > 0.5) == (lb > 0.5))), roc_auc=roc_auc(sc, lb))
            for fam in mixtures.FAMILIES:  # the same, per noise family
                sel = [it for it in items if it["snr"] == 5 and it["family"] == fam]
                r["families"][fam]["vad_snr5_roc_auc"] = roc_auc(np.concatenate([it[f"vad_{sysname}"] for it in sel]),
                                                                 np.concatenate([it["vad_label"] for it in sel]))
            r["vad_clean_mean"] = float(np.mean([it[f"vad_{sysname}"].mean() for it in cl]))
        res[sysname] = r
    return res


def tables(res):
    f = lambda v, p=2: "—" if v is None else f"{v:+.{p}f}"  # noqa: E731
    out = ["SI-SDR improvement (dB), full band / 16 kHz band, held-out voices:", "",
           "| noise | input SNR | SI-SDR in | ssmd | RNNoise | ssmd (16 kHz) | RNNoise (16 kHz) | pauses ssmd | pauses RNNoise |",
           "|---|---|---|---|---|---|---|---|---|"]
    for fam in mixtures.FAMILIES:
        for snr in SNRS:
            k = f"{fam}/{snr}"
            a, b, i = res["ssmd"]["cells"][k], res["rnnoise"]["cells"][k], res["input"]["cells"][k]
            out.append(f"| {fam} | {snr} dB | {i['sisdr_in_db']:.2f} | {f(a['improvement_db'])} | {f(b['improvement_db'])} | "
                       f"{f(a['improvement_16k_db'])} | {f(b['improvement_16k_db'])} | "
                       f"{f(a['pause_attenuation_db'], 1)} | {f(b['pause_attenuation_db'], 1)} |")
    out += ["", "| noise family | ssmd mean (dB) | RNNoise mean (dB) | noise-only attenuation ssmd / RNNoise (dB, median) | noise-only VAD ssmd / RNNoise |",
            "|---|---|---|---|---|"]
    for fam in mixtures.FAMILIES:
        a, b = res["ssmd"]["families"][fam], res["rnnoise"]["families"][fam]
        out.append(f"| {fam} | {f(a['improvement_db'])} | {f(b['improvement_db'])} | "
                   f"{a['noise_only_attenuation_db']:.1f} / {b['noise_only_attenuation_db']:.1f} | "
                   f"{a['noise_only_vad']:.3f} / {b['noise_only_vad']:.3f} |")
    out += ["", "| noise family | VAD ROC-AUC at 5 dB, ssmd | RNNoise |", "|---|---|---|"]
    for fam in mixtures.FAMILIES:
        out.append(f"| {fam} | {res['ssmd']['families'][fam]['vad_snr5_roc_auc']:.3f} | "
                   f"{res['rnnoise']['families'][fam]['vad_snr5_roc_auc']:.3f} |")
    out += ["", "| | ssmd | RNNoise |", "|---|---|---|"]
    for key, label in (("sisdr_db", "clean input: SI-SDR of output vs input (dB, median)"),
                       ("level_change_db", "clean input: active speech level change (dB)")):
        out.append(f"| {label} | {f(res['ssmd']['clean'][key])} | {f(res['rnnoise']['clean'][key])} |")
    for name, label in (("snr5", "5 dB mixtures"), ("all_mixtures", "all mixtures")):
        a, b = res["ssmd"][f"vad_{name}"], res["rnnoise"][f"vad_{name}"]
        out.append(f"| VAD ROC-AUC, {label} | {a['roc_auc']:.3f} | {b['roc_auc']:.3f} |")
        out.append(f"| VAD accuracy (p > 0.5), {label} | {a['accuracy']:.3f} | {b['accuracy']:.3f} |")
    out.append(f"| mean VAD on clean speech | {res['ssmd']['vad_clean_mean']:.3f} | {res['rnnoise']['vad_clean_mean']:.3f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssmd", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default.safetensors"))
    ap.add_argument("--per-cell", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--port", type=int, default=47610)
    ap.add_argument("--split", choices=["test", "val"], default="test",
                    help="the held-out test banks (default), or the validation banks: the same tables on the "
                    "voices and noises model selection uses, to see whether they rank ssmd and RNNoise as the "
                    "test set does")
    ap.add_argument("--ssmd-args", default="", help="extra ssmd options, e.g. '--atten-lim-db 30'")
    a = ap.parse_args()
    if not (os.path.isfile(a.ssmd) and os.access(a.ssmd, os.X_OK)):
        sys.exit(f"evaluate: --ssmd {a.ssmd}: not an executable file (build it: ninja -C BUILD daemon/ssmd)")
    if not os.path.isfile(a.model):
        sys.exit(f"evaluate: --model {a.model}: no such file")
    if a.per_cell < 1:
        sys.exit(f"evaluate: --per-cell {a.per_cell}: must be >= 1")
    for f in ("speech_test", "noise_test"):
        if not os.path.isfile(os.path.join(banks.OUT, f + ".npz")):
            sys.exit(f"evaluate: no {f}.npz in {banks.OUT} (run /usr/bin/python3 train/banks.py)")
    t0 = time.time()
    items = make_set(a.per_cell, split=a.split)
    extra = a.ssmd_args.split()
    with tempfile.TemporaryDirectory() as work:
        run_ssmd_files(a.ssmd, a.model, items, work, extra)
        run_ssmd_vad(a.ssmd, a.model, items, a.port, extra)
        lag = run_rnnoise(items, work)
    res = summarise(items)
    res["model"] = os.path.relpath(a.model, ROOT)
    res["rnnoise_delay_samples"] = lag
    res["clips"] = len(items)
    print(tables(res))
    print(f"\n({len(items)} clips of 4 s at 48 kHz; RNNoise delay measured {lag} samples; {time.time() - t0:.0f} s)")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
