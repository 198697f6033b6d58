"""Evaluates a model file as users get it: through the ssmd daemon.

  /usr/bin/python3 train/evaluate.py --ssmd build-train/daemon/ssmd \
      [--model models/default.safetensors] [--per-cell 4] [--out models/eval.json]

Held-out set (train/data.py): voices never used in training (espeak variants f4
and m6, Dutch, flite slt), noise drawn from a seed no training batch uses.  For
each input SNR in −5, 0, 5, 10, 20 dB and each of the 8 noise types, --per-cell
4-second clips (1-3 utterances with pauses), plus clean clips.  Each mixture is
written as a 32-bit float WAV into train/cache/eval/ and denoised by the
daemon's offline file job (`ssmd --model M IN -o OUT`); SI-SDR is computed on
that output against the clean speech.  Voice activity comes from the same
daemon serving on private loopback ports (each clip pushed with
clients/python's Pusher while a Subscriber records <stream>/vad/); a frame is
counted correct when (p > 0.5) equals the label from the clean speech's frame
energy (data.vad_labels).  Prints Markdown tables and writes JSON.

With --torch-ckpt the first mixture is also run through the PyTorch model and
the largest sample difference from the daemon's output is printed (front-end
and model equivalence end to end).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
from scipy.io import wavfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import data  # noqa: E402

SNRS = [-5, 0, 5, 10, 20]
SEG = 64000


def si_sdr(est, ref):
    est = est - est.mean()
    ref = ref - ref.mean()
    a = np.dot(est, ref) / (np.dot(ref, ref) + 1e-12)
    s = a * ref
    return 10 * np.log10(np.dot(s, s) / (np.dot(est - s, est - s) + 1e-20) + 1e-20)


def make_set(per_cell, seed=2026):
    rng = np.random.default_rng(seed)
    vbank = data.load_bank("val")
    items = []
    for snr in SNRS:
        for kind in data.NOISE_TYPES:
            for _ in range(per_cell):
                clean = data.make_clip(vbank, SEG, rng)
                noise = data.make_noise(kind, SEG, rng, vbank)
                mix, c = data.make_mixture(clean, noise, snr, rng)
                items.append(dict(snr=snr, kind=kind, mix=mix, clean=c))
    for _ in range(2 * per_cell):
        clean = data.make_clip(vbank, SEG, rng)
        lvl = rng.uniform(-42, -12)
        g = 10 ** (lvl / 20) / (np.sqrt(np.mean(clean ** 2)) + 1e-12)
        g = min(g, 0.99 / np.max(np.abs(clean)))
        c = (clean * g).astype(np.float32)
        items.append(dict(snr="clean", kind="none", mix=c, clean=c))
    return items


def run_file_jobs(ssmd, model, items, workdir):
    os.makedirs(workdir, exist_ok=True)
    for i, it in enumerate(items):
        src, dst = os.path.join(workdir, f"{i:04d}.in.wav"), os.path.join(workdir, f"{i:04d}.out.wav")
        wavfile.write(src, data.SR, it["mix"])
        cmd = [ssmd, "--model", model, src, "-o", dst, "--progress", "never", "--log-level", "error"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"evaluate: {' '.join(cmd)} failed: {r.stderr.strip()}")
        sr, y = wavfile.read(dst)
        if y.dtype == np.int16:
            y = y.astype(np.float32) / 32768.0
        y = y.astype(np.float64).reshape(len(y), -1).mean(axis=1)
        if sr != data.SR or len(y) != len(it["mix"]):
            sys.exit(f"evaluate: {dst}: {sr} Hz, {len(y)} samples (expected {data.SR}, {len(it['mix'])})")
        it["out"] = y


def run_vad(ssmd, model, items, port0):
    from ssmd import Pusher, Subscriber
    pub, ing, ctl = (f"tcp://127.0.0.1:{port0 + k}" for k in range(3))
    proc = subprocess.Popen([ssmd, "--model", model, "--input", "none", "--serve", "yes",
                             "--pub", pub, "--ingest", ing, "--control", ctl, "--log-level", "error",
                             "--pub-hwm", "1000000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        if proc.poll() is not None:
            sys.exit(f"evaluate: daemon for VAD exited: {proc.stderr.read().strip()}")
        with Subscriber(pub, [], timeout=None, connect_timeout=10) as sub:
            time.sleep(0.3)
            for i, it in enumerate(items):
                name = f"eval{i:04d}"
                with Pusher(ing, name, connect_timeout=10, timeout=30) as p:
                    p.push(it["mix"], data.SR)
                    p.finish()
                    p.collect(timeout=30)
                n_frames = len(it["mix"]) // 256
                vad = np.full(n_frames, np.nan)
                deadline = time.time() + 10
                while np.isnan(vad).any() and time.time() < deadline:
                    msg = sub.recv(timeout=1.0)
                    if msg is None:
                        continue
                    topic, h, v = msg
                    if not topic.endswith("/vad/"):
                        continue
                    j = int(topic[4:8]) if topic.startswith("eval") else -1
                    if 0 <= j < len(items) and h.seq < len(items[j]["mix"]) // 256:
                        items[j].setdefault("vad", np.full(len(items[j]["mix"]) // 256, np.nan))[h.seq] = \
                            float(np.asarray(v).ravel()[0])
                    if j == i:
                        vad = items[i]["vad"]
                if np.isnan(vad).any():
                    sys.exit(f"evaluate: no complete VAD for {name}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def summarise(items):
    res = {"per_snr": {}, "per_noise": {}}
    for snr in SNRS + ["clean"]:
        sel = [it for it in items if it["snr"] == snr]
        si = [si_sdr(it["mix"].astype(np.float64), it["clean"].astype(np.float64)) for it in sel]
        so = [si_sdr(it["out"], it["clean"].astype(np.float64)) for it in sel]
        va = [np.mean((it["vad"] > 0.5) == (data.vad_labels(it["clean"]) > 0.5)) for it in sel if "vad" in it]
        d = dict(n=len(sel), sisdr_in_db=float(np.mean(si)) if snr != "clean" else None,
                 sisdr_out_db=float(np.mean(so)),
                 improvement_db=float(np.mean(np.array(so) - np.array(si))) if snr != "clean" else None,
                 vad_accuracy=float(np.mean(va)) if va else None)
        if snr == "clean":
            lvl = [10 * np.log10(data.active_power(it["out"]) / data.active_power(it["clean"].astype(np.float64)))
                   for it in sel]
            d["level_change_db"] = float(np.mean(lvl))
        res["per_snr"][str(snr)] = d
    for kind in data.NOISE_TYPES:
        sel = [it for it in items if it["kind"] == kind and it["snr"] in (-5, 0, 5, 10)]
        imp = [si_sdr(it["out"], it["clean"].astype(np.float64)) -
               si_sdr(it["mix"].astype(np.float64), it["clean"].astype(np.float64)) for it in sel]
        imp20 = [si_sdr(it["out"], it["clean"].astype(np.float64)) -
                 si_sdr(it["mix"].astype(np.float64), it["clean"].astype(np.float64))
                 for it in items if it["kind"] == kind and it["snr"] == 20]
        va = [np.mean((it["vad"] > 0.5) == (data.vad_labels(it["clean"]) > 0.5))
              for it in items if it["kind"] == kind and "vad" in it]
        res["per_noise"][kind] = dict(n=len(sel), improvement_db_m5_to_10=float(np.mean(imp)),
                                      improvement_db_20=float(np.mean(imp20)),
                                      vad_accuracy=float(np.mean(va)) if va else None)
    low = [res["per_snr"][str(s)]["improvement_db"] for s in (-5, 0, 5, 10)]
    res["mean_improvement_db_m5_to_10"] = float(np.mean(low))
    allva = [np.mean((it["vad"] > 0.5) == (data.vad_labels(it["clean"]) > 0.5)) for it in items if "vad" in it]
    res["vad_accuracy"] = float(np.mean(allva)) if allva else None
    return res


def table(res):
    f = lambda v, p=2: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
    out = ["| input SNR | clips | SI-SDR in (dB) | SI-SDR out (dB) | improvement (dB) | VAD accuracy |",
           "|---|---|---|---|---|---|"]
    for k, d in res["per_snr"].items():
        name = k if k == "clean" else f"{k} dB"
        extra = f" (level {d['level_change_db']:+.2f} dB)" if k == "clean" else ""
        out.append(f"| {name} | {d['n']} | {f(d['sisdr_in_db'])} | {f(d['sisdr_out_db'])}{extra} | "
                   f"{f(d['improvement_db'])} | {f(d['vad_accuracy'], 3)} |")
    out.append(f"\nMean improvement over −5…10 dB: **{res['mean_improvement_db_m5_to_10']:.2f} dB**; "
               f"VAD accuracy over all clips: **{f(res['vad_accuracy'], 3)}**\n")
    out += ["| noise | improvement −5…10 dB (dB) | improvement at 20 dB (dB) | VAD accuracy |", "|---|---|---|---|"]
    for k, d in res["per_noise"].items():
        out.append(f"| {k} | {d['improvement_db_m5_to_10']:.2f} | {d['improvement_db_20']:.2f} | "
                   f"{f(d['vad_accuracy'], 3)} |")
    return "\n".join(out)


def torch_check(ckpt, model_file, it):
    import torch
    import make_golden
    net = make_golden.from_file(model_file)
    with torch.no_grad():
        y = net(torch.from_numpy(it["mix"].astype(np.float32))[None], sequential=True)[0][0].numpy()
    d = np.max(np.abs(y - it["out"]))
    print(f"daemon vs PyTorch (same file) on clip 0: max |difference| {d:.3g} "
          f"(signal peak {np.max(np.abs(it['mix'])):.3g})")
    return float(d)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssmd", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default.safetensors"))
    ap.add_argument("--per-cell", type=int, default=4)
    ap.add_argument("--out", default=None)
    ap.add_argument("--port", type=int, default=47610)
    ap.add_argument("--no-vad", action="store_true")
    ap.add_argument("--torch-check", action="store_true")
    a = ap.parse_args()
    if not (os.path.isfile(a.ssmd) and os.access(a.ssmd, os.X_OK)):
        sys.exit(f"evaluate: --ssmd {a.ssmd}: not an executable file (build it: ninja -C BUILD daemon/ssmd)")
    if not os.path.isfile(a.model):
        sys.exit(f"evaluate: --model {a.model}: no such file")
    if a.per_cell < 1:
        sys.exit(f"evaluate: --per-cell {a.per_cell}: must be >= 1")
    if not os.path.isfile(os.path.join(data.CACHE, "speech", "val.npz")):
        sys.exit("evaluate: no held-out speech in train/cache/speech (run /usr/bin/python3 train/data.py)")
    t0 = time.time()
    items = make_set(a.per_cell)
    run_file_jobs(a.ssmd, a.model, items, os.path.join(data.CACHE, "eval"))
    if not a.no_vad:
        run_vad(a.ssmd, a.model, items, a.port)
    res = summarise(items)
    res["model"] = os.path.relpath(a.model, ROOT)
    if a.torch_check:
        res["daemon_vs_torch_max_abs"] = torch_check(None, a.model, items[0])
    print(table(res))
    print(f"({len(items)} clips, {time.time() - t0:.0f} s)")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
