# SPDX-License-Identifier: MIT
"""Trains the mu-law token model (train/lm_model.py) on train/cache/lm/train.npy.

  /usr/bin/python3 train/lm_data.py                       # speech + music → train/cache/lm (once)
  /usr/bin/python3 train/lm_train.py --minutes 20 --threads 1
      → train/cache/lm/ckpt.pt, models/mulaw_lm.safetensors, models/mulaw_lm_curve.csv
  /usr/bin/python3 train/lm_train.py --arch mamba2 --minutes 8 --out train/cache/lm/mamba2.safetensors
      → train/cache/lm/ckpt_mamba2.pt, train/cache/lm/mamba2.safetensors, train/cache/lm/mamba2_curve.csv

--arch picks one of the ~280 k-parameter stacks of lm_model.preset (mamba1:
today's 2 Mamba-1 layers; mamba2: 2 Mamba-2 layers; hybrid: Mamba-1, sliding-
window attention over 256 samples, Mamba-1; models/mulaw_lm_architectures.md);
without it the --d-model/--n-layer/--d-state Mamba-1 stack is trained.

Next-sample cross-entropy over random windows of SEQ samples (batch BATCH),
chunked scan of train/model.py; AdamW, lr 5e-3 with a 20-step warm-up and a
cosine decay over the wall-clock budget, gradient clipping at 1.0.  The
held-out NLL (bits/sample; 8 = uniform over 256 codes) is measured on fixed
windows of train/cache/lm/val.npy (voices, languages and music seeds not in
training), every evaluation and at the end; the file is exported at each
evaluation so that a stopped run still leaves a model.
"""
import argparse
import csv
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lm_model as L  # noqa: E402

CACHE = os.path.join(HERE, "cache", "lm")
ROOT = os.path.dirname(HERE)


def val_windows(val, n=8, length=4096, seed=7):
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(val) - length - 1, n)
    return torch.from_numpy(np.stack([val[s:s + length + 1] for s in starts]).astype(np.int64))


def nll_bits(net, xs):
    with torch.no_grad():
        lo = net(xs[:, :-1])
        return F.cross_entropy(lo.reshape(-1, L.VOCAB), xs[:, 1:].reshape(-1)).item() / math.log(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="what --minutes counts: wall-clock time, or this process's CPU time "
                         "(fair between runs on a shared machine whose load changes)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--d-state", type=int, default=4)
    ap.add_argument("--eval-every", type=float, default=300, help="seconds")
    ap.add_argument("--val-n", type=int, default=4, help="held-out windows per evaluation")
    ap.add_argument("--val-len", type=int, default=2048, help="samples per held-out window")
    ap.add_argument("--warmup", type=int, default=20, help="steps")
    ap.add_argument("--arch", choices=("mamba1", "mamba2", "hybrid"), help="a preset of lm_model.preset")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "mulaw_lm.safetensors"))
    ap.add_argument("--curve", help="learning-curve CSV (default: models/mulaw_lm_curve.csv for the "
                    "bundled file, else OUT with _curve.csv)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    for split in ("train", "val"):
        if not os.path.exists(os.path.join(CACHE, f"{split}.npy")):
            sys.exit(f"lm_train: {os.path.join(CACHE, split + '.npy')} is missing: run train/lm_data.py first")
    tr = np.load(os.path.join(CACHE, "train.npy"))
    va = np.load(os.path.join(CACHE, "val.npy"))
    vx = val_windows(va, a.val_n, a.val_len)
    net = L.preset(a.arch) if a.arch else L.TokenLM(d_model=a.d_model, n_layer=a.n_layer, d_state=a.d_state)
    print(f"arch {a.arch or 'mamba1'} {net.cfg['kinds']}; params {L.n_params(net)}; train {len(tr) / 16000 / 60:.1f} min, val {len(va) / 16000 / 60:.1f} min",
          flush=True)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(a.seed)
    budget = a.minutes * 60
    clock = time.process_time if a.clock == "cpu" else time.time
    t0 = clock()
    w0 = time.time()
    last_eval = t0
    step, seen = 0, 0
    curve = []
    bundled = os.path.abspath(a.out) == os.path.join(ROOT, "models", "mulaw_lm.safetensors")
    curve_path = a.curve or (os.path.join(ROOT, "models", "mulaw_lm_curve.csv") if bundled
                             else os.path.splitext(a.out)[0] + "_curve.csv")
    ckpt_path = os.path.join(CACHE, "ckpt.pt" if bundled else f"ckpt_{a.arch or 'mamba1'}.pt")

    def evaluate(final=False):
        net.eval()
        v = nll_bits(net, vx)
        net.train()
        el = clock() - t0
        curve.append((step, seen, round(el, 1), round(train_ema, 4), round(v, 4)))
        print(f"step {step} samples {seen} {el / 60:.1f} min train {train_ema:.3f} val {v:.3f} bits/sample",
              flush=True)
        torch.save({"cfg": net.cfg, "state": net.state_dict(), "step": step, "val_bits": v}, ckpt_path)
        L.export(net, a.out, {"train.arch": a.arch or "mamba1", "train.steps": step, "train.samples": seen, "train.seed": a.seed,
                              "train.minutes": round(el / 60, 1), "train.clock": a.clock,
                              "train.wall_minutes": round((time.time() - w0) / 60, 1), "train.val_nll_bits": round(v, 4)})
        with open(curve_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", "samples", "seconds", "train_bits", "val_bits"])
            w.writerows(curve)
        return v

    train_ema = 8.0
    while True:
        el = clock() - t0
        if el >= budget:
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, el / budget)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = rng.integers(0, len(tr) - a.seq - 1, a.batch)
        x = torch.from_numpy(np.stack([tr[s:s + a.seq + 1] for s in starts]).astype(np.int64))
        lo = net(x[:, :-1])
        loss = F.cross_entropy(lo.reshape(-1, L.VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        seen += a.batch * a.seq
        b = loss.item() / math.log(2)
        train_ema = b if step == 1 else 0.95 * train_ema + 0.05 * b
        if clock() - last_eval > a.eval_every:
            evaluate()
            last_eval = clock()
    v = evaluate(final=True)
    print(f"done: {step} steps, {seen} samples, {(clock() - t0) / 60:.1f} min ({a.clock}), {(time.time() - w0) / 60:.1f} min wall, held-out {v:.3f} bits/sample",
          flush=True)


if __name__ == "__main__":
    main()
