# SPDX-License-Identifier: MIT
"""Trains the full-band default denoiser (train/model.py, 48 kHz) on real data.

  /usr/bin/python3 train/banks.py                       # speech + noise banks → train/cache/banks (once)
  nohup /usr/bin/python3 train/train.py --steps 6000 > train/cache/train.log &   # hours; resumes
  /usr/bin/python3 train/export_default.py              # → models/default.safetensors

Data (train/mixtures.py): 3-second clips of real voices (tuxpaint-stamps, 0 A.D.,
Warzone 2100) and the synthesized espeak-ng/flite bank; by default (--family-p) 40 % generated noise,
40 % recorded noise, 20 % babble of real voices, SNR uniform in [−5, 25] dB over
active speech, 12 % noise-only (--p-noise-only) and 5 % clean clips, 30 % reverberated, 70 %
microphone-coloured, level −45…−10 dBFS.

Loss, computed only below each clip's speech bandwidth (cutoff_hz: band-limited
sources teach the bands they have):
  −SI-SDR of the band-limited output (clips with speech)
  + 10 × MSE of STFT magnitudes compressed with power 0.3, both scaled by the
    mixture's RMS (so noise-only clips are pushed to silence)
  + --vad-weight (1) × BCE of the voice-activity head against labels from the clean speech
  + --pause-weight (0.1) × the dB by which frames the clean speech labels silent fall
    short of 40 dB attenuation (mean over those frames): the noise between words
  + --gain-weight (0) × the mean squared difference of the gains' square roots from the
    band oracle's (oracle_gains: sqrt(E_S / E_X) per band, capped at 1), as RNNoise trains
    its band gains.
AdamW (weight decay 0.01), lr --lr with --warmup (200) steps of warm-up and cosine decay to
5 % over --steps, gradient clipping at 1.0.

Checkpoints: train/cache/ckpt.pt every 100 steps (model, optimiser, step, RNG
states); a run started again resumes from it (--fresh starts over).  The weights
alone of every --snapshot-every (100) steps are kept as ckpt_stepN.pt, for model
selection with train/validate.py.  Learning
curve: the checkpoint's path with _curve.csv (+ .png), or --curve.  Uses CUDA when a GPU is present
(--device auto).  Batches are made by a thread of this process, or with --data-process by a
forked process that another core runs beside the training step.
"""
import argparse
import csv
import math
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import banks  # noqa: E402
import mixtures  # noqa: E402
import model as M  # noqa: E402

SEG = 3 * M.SR
PAUSE_ATTEN_DB = 40.0


def si_sdr(est, ref, eps=1e-8):
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    s = a * ref
    return 10 * torch.log10((s * s).sum(-1) / (((est - s) ** 2).sum(-1) + eps) + eps)


def snapshot_path(ckpt, step):
    """CKPT_stepN.pt beside the checkpoint (never the checkpoint itself, whatever its name)."""
    base, ext = os.path.splitext(ckpt)
    return f"{base}_step{step}{ext or '.pt'}"


def make_batch(sbank, nbank, rng, n, pitch=False, lookahead=0, **kw):
    """n mixtures; with pitch, their pitch features too (b["pitch"], model.pitch_features of the
    mixture padded with lookahead·HOP zeros, as Denoiser.run takes them, computed by dsp/pitch.c
    through train/pitch_ext.py: here, so that the data thread, not the training step, pays)."""
    ex = [mixtures.make_example(SEG, rng, sbank, nbank, M.HOP, M.N_FFT, **kw) for _ in range(n)]
    st = lambda k: torch.from_numpy(np.stack([e[k] for e in ex]))  # noqa: E731
    has_speech = torch.tensor([float(np.any(e["clean"] != 0)) for e in ex])
    b = dict(mix=st("mix"), clean=st("clean"), vad=st("vad"), cutoff=st("cutoff_hz"), speech=has_speech,
             family=[e["family"] for e in ex])
    if pitch:
        b["pitch"] = M.fast_pitch_features(F.pad(b["mix"], (0, lookahead * M.HOP)))
    return b


def band_mask(cutoff, device):
    """{B, 1, N_BINS}: 1 for bins at or below each clip's cutoff."""
    f = torch.arange(M.N_BINS, device=device) * (M.SR / M.N_FFT)
    return (f[None, None, :] <= cutoff[:, None, None]).float()


def oracle_gains(X, S, E, bm=None):
    """The band oracle (train/oracle.py): per band of E {N_BINS, n_bands} (its triangular
    weights), sqrt(E_S / E_X) of the clean speech S and the mixture X capped at 1, interpolated
    to the bins with E: {B, M, N_BINS}, the best gains a band head can give.  bm {B, 1, N_BINS}
    (band_mask): the band energies count only the bins below each clip's speech bandwidth,
    so a band-limited clip's targets below its cut-off are not pulled down by the noise above
    it (0/0 gives 0)."""
    W = E.T / E.T.sum(1, keepdim=True)
    pS, pX = S.abs() ** 2, X.abs() ** 2
    if bm is not None:
        pS, pX = pS * bm, pX * bm
    eS, eX = pS @ W.T, pX @ W.T
    return (eS / eX.clamp(min=1e-12)).sqrt().clamp(max=1) @ E.T


def loss_fn(net, b, sequential=True, vad_weight=1.0, pause_weight=0.1, gain_weight=0.0, terms=None):
    mix, clean = b["mix"], b["clean"]
    X, m, v = net.run(mix, b.get("pitch"), sequential)
    g = torch.sigmoid(m)
    Y = X * g
    S = M.stft(clean, net.win)
    bm = band_mask(b["cutoff"], mix.device)
    est_b = M.istft(Y * bm, net.win, mix.shape[1])
    cln_b = M.istft(S * bm, net.win, mix.shape[1])
    sdr = si_sdr(est_b, cln_b)
    sp = b["speech"]
    l_sdr = -(sdr * sp).sum() / sp.sum().clamp(min=1)
    rms = mix.pow(2).mean(-1).sqrt()[:, None, None] + 1e-5
    Ye = ((Y / rms).abs() + 1e-8) ** 0.3
    Sc = ((S / rms).abs() + 1e-8) ** 0.3
    mse = ((Ye - Sc).pow(2) * bm).sum() / (bm.sum() * Y.shape[1])
    nv = b["vad"].shape[1]
    # pauses: frames the clean speech labels silent should come out >= PAUSE_ATTEN_DB below the input
    # (a hinge on each frame's attenuation, 0.1 per missing dB; no gradient once reached)
    e_in = (X.abs() ** 2).sum(-1)[:, :nv]
    e_out = (Y.abs() ** 2).sum(-1)[:, :nv]
    att = 10 * torch.log10((e_in + 1e-12) / (e_out + 1e-12))
    sil = (1 - b["vad"]) * (e_in > 1e-9).float()
    l_pause = pause_weight * (torch.relu(PAUSE_ATTEN_DB - att) * sil).sum() / sil.sum().clamp(min=1)
    bce = F.binary_cross_entropy_with_logits(v[:, :nv], b["vad"])
    acc = ((v[:, :nv] > 0).float() == b["vad"]).float().mean()
    loss = l_sdr + 10 * mse + vad_weight * bce + l_pause
    l_gain = torch.zeros(())
    if gain_weight:
        # the gains themselves against the band oracle, as RNNoise trains its band gains (Valin 2018,
        # "A Hybrid DSP/Deep Learning Approach to Real-Time Full-Band Speech Enhancement": squared
        # error of the gains raised to the power 1/2), below each clip's speech bandwidth
        E = net.band_interp if net.cfg["n_bands"] else M.band_interp(32).float().to(X.device)
        gt = oracle_gains(X, S, E, bm)
        sqrt_g = torch.exp(0.5 * F.logsigmoid(m))  # sqrt(sigmoid(m)) with a finite gradient at any logit
        l_gain = ((sqrt_g - gt.sqrt()).pow(2) * bm).sum() / (bm.sum() * g.shape[1])
        loss = loss + gain_weight * l_gain
    if terms is not None:
        terms.update(sisdr=float(l_sdr), mse=float(10 * mse), vad=float(vad_weight * bce), pause=float(l_pause),
                     gain=float(gain_weight * l_gain), gain_raw=float(l_gain))
    return loss, sdr, acc, est_b


def feature_stats(sb, nb, seed, pitch=False):
    """Per-feature mean and std (clamped at 1e-3) of the input features (log powers, then with pitch
    the pitch features) of 64 training mixtures."""
    with torch.no_grad():
        b = make_batch(sb, nb, np.random.default_rng(seed + 1000), 64, pitch=pitch)
        f = M.features(M.stft(b["mix"], M.window()))
        if pitch:
            f = torch.cat([f, b["pitch"]], -1)
        f = f.reshape(-1, f.shape[-1])
        return f.mean(0), f.std(0).clamp(min=1e-3)


def grow_width(src, net, gen):
    """A state dict for `net` (d_model D1, d_inner DI1, dt_rank R1) that computes the same function
    as `src`, the state of a narrower Denoiser of the same depth (D0, DI0, R0), so that training
    goes on from the source's function with more capacity (Net2Net-style growth, Chen et al. 2016).

    New residual dimensions start at zero: the rows that write them (proj, each out_proj) are
    zero, the columns that read them (each in_proj, the heads) random; each RMSNorm weight is
    scaled by sqrt(D0/D1), since the same nonzero entries now average over D1 (exact up to its
    eps, which scales by D1/D0). New inner channels (d_inner) compute with random in_proj rows,
    conv, dt_proj and A_log like a fresh block, but x_proj and out_proj read them through zero
    columns, so they add nothing until trained. New dt_rank rows of x_proj are random and the
    dt_proj columns that read them zero. `gen`: the torch.Generator of the random parts.
    Returns the state dict (every key of net.state_dict())."""
    ref = net.state_dict()
    out = {}
    D0, D1 = src["proj.weight"].shape[0], ref["proj.weight"].shape[0]
    a0, a1 = src["layers.0.mixer.A_log"], ref["layers.0.mixer.A_log"]        # {d_inner, d_state}
    k0, k1 = src["layers.0.mixer.conv1d.weight"], ref["layers.0.mixer.conv1d.weight"]  # {d_inner, 1, d_conv}
    if a0.shape[1] != a1.shape[1] or k0.shape[2] != k1.shape[2] or a0.shape[0] * D1 != a1.shape[0] * D0 or D1 < D0:
        raise ValueError(f"grow_width: the source (d_model {D0}, d_inner {a0.shape[0]}, d_state {a0.shape[1]}, "
                         f"d_conv {k0.shape[2]}) can only grow in d_model with the same d_state, d_conv and "
                         f"expand (target d_model {D1}, d_inner {a1.shape[0]}, d_state {a1.shape[1]}, "
                         f"d_conv {k1.shape[2]})")
    rnd = lambda shape, fan_in: (torch.rand(shape, generator=gen) * 2 - 1) * fan_in ** -0.5  # noqa: E731
    scale = math.sqrt(D0 / D1)
    for k, v in ref.items():
        s = src.get(k)
        if s is None:
            raise ValueError(f"grow_width: the source has no {k}")
        if s.shape == v.shape and k not in ("proj.weight", "proj.bias") and not k.endswith("norm.weight") \
                and k != "norm_f.weight":
            out[k] = s.clone()
            continue
        t = torch.zeros_like(v)
        name = k.split(".")[-2] if k.count(".") else k
        if k in ("proj.weight", "proj.bias"):
            t[:D0] = s                                   # new residual dims: written by nothing
        elif k.endswith("norm.weight") or k == "norm_f.weight":
            t[:] = scale
            t[:D0] = s * scale
        elif k.endswith("in_proj.weight"):                # {2·DI, D}: x rows, then z rows
            DI0, DI1 = s.shape[0] // 2, v.shape[0] // 2
            t[:] = rnd(v.shape, D1)
            t[:DI0, :D0], t[DI1:DI1 + DI0, :D0] = s[:DI0], s[DI0:]
        elif k.endswith("conv1d.weight") or k.endswith("conv1d.bias") or k.endswith("dt_proj.bias") \
                or k.endswith("A_log") or k.endswith(".D"):
            t[:] = v                                     # new channels as a fresh block's
            t[:s.shape[0]] = s
        elif k.endswith("x_proj.weight"):                 # {R + 2N, DI}: dt, B, C rows
            N = (v.shape[0] - net.layers[0].mixer.dt_rank) // 2
            R0, R1, DI0 = s.shape[0] - 2 * N, v.shape[0] - 2 * N, s.shape[1]
            t[R0:R1] = rnd((R1 - R0, v.shape[1]), v.shape[1])   # new dt ranks: read by zero columns
            t[:R0, :DI0], t[R1:, :DI0] = s[:R0], s[R0:]          # new channels: read by zero columns
        elif k.endswith("dt_proj.weight"):                # {DI, R}
            t[:] = v
            t[:, s.shape[1]:] = 0
            t[:s.shape[0], :s.shape[1]] = s
        elif k.endswith("out_proj.weight"):               # {D, DI}
            t[:s.shape[0], :s.shape[1]] = s
        elif k in ("mask.weight", "vad.weight"):          # {out, D}: new columns read zeros
            t[:] = rnd(v.shape, D1)
            t[:, :D0] = s
        else:
            raise ValueError(f"grow_width: no rule for {k} {tuple(s.shape)} -> {tuple(v.shape)} ({name})")
        out[k] = t
    return out


def init_source(path, sb, nb, seed, pitch=False):
    """{"state", "step"} of a checkpoint, or of an exported .safetensors file (make_golden.from_file)
    with its folded normalisation unfolded: W = W'·std, b = b' + W'·mean, so that
    (x − mean)/std · Wᵀ + b is the file's function exactly while the optimiser again sees
    normalised inputs."""
    if not path.endswith(".safetensors"):
        return torch.load(path, map_location="cpu")
    import make_golden
    import ssmd_file
    state = {k: v.clone() for k, v in make_golden.from_file(path).state_dict().items()}
    mean, std = feature_stats(sb, nb, seed, pitch)
    if pitch and state["proj.weight"].shape[1] == M.N_BINS:   # the file's inputs are the first N_BINS
        mean, std = mean[:M.N_BINS], std[:M.N_BINS]
    Wf, bf = state["proj.weight"].double(), state["proj.bias"].double()
    state["proj.weight"] = (Wf * std.double()[None, :]).float()
    state["proj.bias"] = (bf + Wf @ mean.double()).float()
    state["feat_mean"], state["feat_std"] = mean, std
    meta = ssmd_file.load(path)[1]
    return {"state": state, "step": int(meta.get("train.steps", 0))}


def to(b, dev):
    return {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in b.items()}


def start_producer(make, data_process, depth=6, wait_s=60.0):
    """Starts making batches ahead of the training step: `make()` called in a thread of this
    process, or with data_process in a forked process (the banks shared copy-on-write; one
    PyTorch thread there: OpenMP's pool does not survive a fork); returns next_batch().
    next_batch() waits for a batch and exits the run in one line if the forked producer died
    (an exception, the kernel's OOM killer) instead of waiting forever.  A forked producer ends
    when its parent does."""
    parent = os.getpid()

    def producer(q):
        if data_process:
            torch.set_num_threads(1)
        while True:
            try:
                item = make()
            except Exception as e:  # noqa: BLE001 (reported by next_batch)
                item = RuntimeError(f"{type(e).__name__}: {e}")
            while True:
                try:
                    q.put(item, timeout=10)
                    break
                except queue.Full:
                    if data_process and os.getppid() != parent:
                        return
            if isinstance(item, Exception):
                return

    if data_process:
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue(maxsize=depth)
        proc = ctx.Process(target=producer, args=(q,), daemon=True)
        proc.start()
    else:
        q, proc = queue.Queue(maxsize=depth), None
        threading.Thread(target=producer, args=(q,), daemon=True).start()

    def next_batch():
        while True:
            try:
                item = q.get(timeout=wait_s)
                break
            except queue.Empty:
                if proc is not None and not proc.is_alive():
                    sys.exit(f"train: the data process ended (exit status {proc.exitcode}) without a batch")
        if isinstance(item, Exception):
            sys.exit(f"train: making a batch failed: {item}")
        return item
    return next_batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=96)
    ap.add_argument("--n-layer", type=int, default=3)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--pitch", action="store_true",
                    help="pitch features after the log powers (model.pitch_features; frontend.features "
                    "log_power_pitch); with --init-from a model without them, their input weights start at zero")
    ap.add_argument("--lookahead", type=int, default=0,
                    help="frames the mask and voice activity of a frame wait for (frontend.lookahead_frames, "
                    "0-4): the model sees that many hops past the frame it masks, the latency grows by as many "
                    "10 ms hops")
    ap.add_argument("--n-bands", type=int, default=32, help="mask logits on this many ERB-like bands (0: per bin)")
    ap.add_argument("--init-from", default="", help="start from this checkpoint's weights (fresh optimiser and "
                    "schedule), or from an exported .safetensors file such as models/default.safetensors "
                    "(its folded feature normalisation is unfolded with statistics of 64 training mixtures); "
                    "a per-bin mask head is fitted to the bands by least squares; with a larger "
                    "--n-layer the extra blocks start as the identity (out_proj zero), and with a larger --d-model "
                    "(the same --n-layer) the new dimensions and channels start unused (grow_width), so the "
                    "network starts as the checkpoint's function")
    ap.add_argument("--family-p", default="0.4,0.4,0.2",
                    help="probabilities of the generated, real and babble noise families in training clips")
    ap.add_argument("--snr-range", default="-5,25",
                    help="training mixtures' speech-to-noise ratio, uniform in LOW,HIGH dB (a negative LOW needs the "
                    "= form: --snr-range=-10,25)")
    ap.add_argument("--p-noise-only", type=float, default=0.12, help="share of noise-only training clips")
    ap.add_argument("--p-speed", type=float, default=0.0,
                    help="share of recorded noise files played 2^±0.5 times faster or slower")
    ap.add_argument("--p-noise-colour", type=float, default=0.0,
                    help="share of noises given a random tilt and low-pass of their own (mixtures.noise_colour)")
    ap.add_argument("--p-second-noise", type=float, default=0.0,
                    help="share of noises with a second noise of another family added 0-15 dB below")
    ap.add_argument("--uniform-sources", action="store_true",
                    help="draw recorded noise sources uniformly, not in proportion to their file counts")
    ap.add_argument("--vad-weight", type=float, default=1.0, help="weight of the voice-activity BCE in the loss")
    ap.add_argument("--gain-weight", type=float, default=0.0,
                    help="weight of the band-gain loss: squared error of the gains' square roots against the "
                         "band oracle (train/oracle.py), as RNNoise trains its gains")
    ap.add_argument("--pause-weight", type=float, default=0.1,
                    help="loss per dB by which frames labelled silent fall short of 40 dB attenuation")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scan", choices=["c", "sequential", "chunked"], default="c",
                    help="selective scan: c (train/scan_ext.c, the CPU default; the per-frame PyTorch loop "
                    "where it cannot be built and on a GPU), sequential (that loop), chunked")
    ap.add_argument("--data-process", action="store_true",
                    help="make the training batches in a forked process instead of a thread of this one, so a "
                         "second core makes them while this one trains (the process keeps one CPU busy ~20 %%)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--snapshot-every", type=int, default=100,
                    help="also keep the weights of every N-th step as CKPT_stepN.pt (for train/validate.py; "
                    "a multiple of 100; 0: none)")
    ap.add_argument("--curve", default="", help="learning curve CSV (+ .png); default: the checkpoint's path "
                    "with _curve.csv (models/learning_curve.csv is the bundled file's: copy it there by hand)")
    ap.add_argument("--ckpt", default=os.path.join(banks.CACHE, "ckpt.pt"))
    a = ap.parse_args()
    if not a.curve:
        a.curve = os.path.splitext(a.ckpt)[0] + "_curve.csv"
    if a.steps < 1 or a.batch < 1:
        sys.exit("train: --steps and --batch must be >= 1")
    try:
        fam_p = tuple(float(v) for v in a.family_p.split(","))
    except ValueError:
        fam_p = ()
    if len(fam_p) != 3 or min(fam_p) < 0 or abs(sum(fam_p) - 1) > 1e-6:
        sys.exit(f"train: --family-p '{a.family_p}' must be three probabilities summing to 1")
    try:
        snr_range = tuple(float(v) for v in a.snr_range.split(","))
    except ValueError:
        snr_range = ()
    if len(snr_range) != 2 or not snr_range[0] < snr_range[1]:
        sys.exit(f"train: --snr-range '{a.snr_range}' must be two numbers LOW,HIGH (dB) with LOW < HIGH")
    if not all(math.isfinite(v) for v in snr_range):
        sys.exit(f"train: --snr-range '{a.snr_range}' must be finite")
    if a.snapshot_every < 0 or a.snapshot_every % 100:
        sys.exit(f"train: --snapshot-every {a.snapshot_every} must be 0 or a multiple of 100 (the checkpoint "
                 "interval)")
    if not 0 <= a.lookahead <= 4:
        sys.exit(f"train: --lookahead {a.lookahead} must be in [0, 4] frames")
    if not 0 <= a.p_noise_only < 1:
        sys.exit(f"train: --p-noise-only {a.p_noise_only} must be in [0, 1)")
    torch.set_num_threads(a.threads)
    scan_mode = {"c": "c", "sequential": True, "chunked": False}[a.scan]
    dev = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if a.device == "auto" else a.device))
    for f in ("speech_train", "speech_val", "noise_train", "noise_val"):
        if not os.path.isfile(os.path.join(banks.OUT, f + ".npz")):
            sys.exit(f"train: no {f}.npz in {banks.OUT} (run /usr/bin/python3 train/banks.py)")
    sb, nb = banks.Bank("speech", "train"), banks.Bank("noise", "train")
    vsb, vnb = banks.Bank("speech", "val"), banks.Bank("noise", "val")
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    net = M.Denoiser(d_model=a.d_model, n_layer=a.n_layer, d_state=a.d_state, n_bands=a.n_bands, pitch=a.pitch,
                     lookahead=a.lookahead)
    n_params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-2)
    step, rows, minutes0 = 0, [], 0.0
    if os.path.isfile(a.ckpt) and not a.fresh:
        ck = torch.load(a.ckpt, map_location="cpu")
        net = M.Denoiser(**ck["cfg"])
        net.load_state_dict(ck["state"])
        opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-2)
        opt.load_state_dict(ck["opt"])
        step, rows, minutes0 = ck["step"], ck.get("rows", []), ck.get("minutes", 0.0)
        a.pitch, a.lookahead = net.cfg["pitch"], net.cfg.get("lookahead", 0)
        rng = pickle.loads(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        print(f"resumed from {a.ckpt} at step {step} ({minutes0:.1f} min)", flush=True)
    elif a.init_from:
        ck = init_source(a.init_from, sb, nb, a.seed, a.pitch)
        st = ck["state"]
        n_src = st["proj.weight"].shape[1]
        if n_src < net.n_features:  # new inputs (the pitch features): zero weights, their own statistics
            mean, std = feature_stats(sb, nb, a.seed, a.pitch)
            st["feat_mean"] = torch.cat([st["feat_mean"], mean[n_src:]])
            st["feat_std"] = torch.cat([st["feat_std"], std[n_src:]])
            st["proj.weight"] = torch.cat([st["proj.weight"],
                                           torch.zeros(st["proj.weight"].shape[0], net.n_features - n_src)], 1)
            print(f"inputs {n_src}..{net.n_features - 1} are new: their weights start at zero", flush=True)
        net.feat_mean.copy_(st["feat_mean"])
        net.feat_std.copy_(st["feat_std"])
        with torch.no_grad():
            w, b = st["mask.weight"].double(), st["mask.bias"].double()
            if a.n_bands and w.shape[0] != a.n_bands:
                E = net.band_interp.double()
                w, b = torch.linalg.lstsq(E, w).solution, torch.linalg.lstsq(E, b[:, None]).solution[:, 0]
            st["mask.weight"], st["mask.bias"] = w.float(), b.float()
        d_src = st["proj.weight"].shape[0]
        if d_src != a.d_model:
            n_src = len({k.split(".")[1] for k in st if k.startswith("layers.")})
            if d_src > a.d_model or n_src != a.n_layer:
                sys.exit(f"train: --init-from {a.init_from} has d_model {d_src} and {n_src} blocks: a wider "
                         f"--d-model ({a.d_model}) needs the same --n-layer and a narrower source")
            if a.n_bands:
                st["band_interp"] = net.band_interp
            try:
                st = grow_width(st, net, torch.Generator().manual_seed(a.seed))
            except ValueError as e:
                sys.exit(f"train: --init-from {a.init_from}: {e}")
            print(f"d_model {d_src} -> {a.d_model}: the new dimensions and channels start unused", flush=True)
        src = {k: v for k, v in st.items() if not k.startswith("mask.") and k != "band_interp"}
        missing = net.load_state_dict(src, strict=False)
        with torch.no_grad():
            net.mask.weight.copy_(st["mask.weight"])
            net.mask.bias.copy_(st["mask.bias"])
            grown = sorted({k.split(".")[1] for k in missing.missing_keys if k.startswith("layers.")}, key=int)
            for i in grown:  # a block whose out_proj is zero adds nothing to the residual stream
                net.layers[int(i)].mixer.out_proj.weight.zero_()
            if grown:
                print(f"new blocks {', '.join(grown)} start as the identity", flush=True)
        print(f"initialised from {a.init_from} (step {ck.get('step')}); not loaded: {missing.missing_keys}", flush=True)
    else:
        mean, std = feature_stats(sb, nb, a.seed, a.pitch)
        net.feat_mean.copy_(mean)
        net.feat_std.copy_(std)
    net.to(dev)
    for st in opt.state.values():
        for k, v in st.items():
            if torch.is_tensor(v):
                st[k] = v.to(dev)
    # fixed validation set: held-out voices and noise recordings, its own seed
    vrng = np.random.default_rng(777)
    val = []
    for fam in mixtures.FAMILIES:
        for snr in (-5, 0, 5, 10):
            val.append(make_batch(vsb, vnb, vrng, 6, pitch=a.pitch, lookahead=a.lookahead, snr_db=snr, family=fam))
    val_in = float(torch.cat([si_sdr(v["mix"], v["clean"]) for v in val]).mean())
    vnoise = make_batch(vsb, vnb, vrng, 12, pitch=a.pitch, lookahead=a.lookahead, p_noise_only=1.0)
    print(f"params {n_params}, device {dev}, val SI-SDR in {val_in:.2f} dB", flush=True)

    def producer_rng(at_step):
        """A forked producer's generator: seeded by the seed and the step it starts at, so a resumed
        run draws a new, reproducible sequence (a thread producer draws from the checkpoint's)."""
        return np.random.default_rng([a.seed, at_step])

    data_rng = producer_rng(step) if a.data_process else rng

    def make():
        return make_batch(sb, nb, data_rng, a.batch, pitch=a.pitch, lookahead=a.lookahead, family_p=fam_p,
                          p_noise_only=a.p_noise_only, p_speed=a.p_speed, p_noise_colour=a.p_noise_colour,
                          p_second_noise=a.p_second_noise, uniform_sources=a.uniform_sources, snr_range=snr_range)

    next_batch = start_producer(make, a.data_process)

    def evaluate():
        net.eval()
        with torch.no_grad():
            outs = [loss_fn(net, to(v, dev), scan_mode) for v in val]
            vb = to(vnoise, dev)
            _, _, _, est = loss_fn(net, vb, scan_mode)
            att = 10 * torch.log10(vb["mix"][:, 4800:].pow(2).mean() / est[:, 4800:].pow(2).mean().clamp(min=1e-20))
            _, _, vv = net.run(vb["mix"], vb.get("pitch"), scan_mode)
        net.train()
        sd = float(torch.cat([o[1] for o in outs]).mean())
        return sd, float(np.mean([o[2].item() for o in outs])), float(att), float(torch.sigmoid(vv).mean())

    t0 = time.time() - minutes0 * 60
    warm = a.warmup
    acc_loss, acc_sdr, acc_n = 0.0, 0.0, 0
    while step < a.steps:
        lr = a.lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        b = to(next_batch(), dev)
        loss, sdr, _, _ = loss_fn(net, b, scan_mode, a.vad_weight, a.pause_weight, a.gain_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if not math.isfinite(loss.item()):
            print("non-finite loss", flush=True)
            sys.exit(1)
        sp = b["speech"] > 0
        acc_loss += loss.item()
        acc_sdr += float((sdr - si_sdr(b["mix"], b["clean"]))[sp].mean()) if sp.any() else 0.0
        acc_n += 1
        step += 1
        if step == 20 or step % 100 == 0 or step == a.steps:
            print(f"step {step}: {(time.time() - t0) / 60:.1f} min, loss {acc_loss / acc_n:.3f}", flush=True)
        if step % 100 == 0 or step == a.steps:
            vs, va, att, vnv = evaluate()
            row = dict(step=step, minutes=round((time.time() - t0) / 60, 2), lr=f"{lr:.3g}",
                       train_loss=round(acc_loss / acc_n, 3), train_sisdr_improvement_db=round(acc_sdr / acc_n, 2),
                       val_sisdr_in_db=round(val_in, 2), val_sisdr_out_db=round(vs, 2),
                       val_sisdr_improvement_db=round(vs - val_in, 2), val_vad_accuracy=round(va, 4),
                       val_noise_only_attenuation_db=round(att, 1), val_noise_only_vad=round(vnv, 3))
            rows.append(row)
            print(row, flush=True)
            acc_loss, acc_sdr, acc_n = 0.0, 0.0, 0
            tmp = a.ckpt + ".tmp"
            torch.save({"state": {k: v.cpu() for k, v in net.state_dict().items()}, "cfg": net.cfg,
                        "opt": opt.state_dict(), "step": step, "seed": a.seed, "rows": rows,
                        # (with --data-process the generator a thread producer would resume from)
                        "rng": pickle.dumps(producer_rng(step) if a.data_process else rng),
                        "torch_rng": torch.get_rng_state(),
                        "minutes": (time.time() - t0) / 60, "params": n_params}, tmp)
            os.replace(tmp, a.ckpt)
            if a.snapshot_every and step % a.snapshot_every == 0:
                torch.save({"state": {k: v.cpu() for k, v in net.state_dict().items()}, "cfg": net.cfg,
                            "step": step, "params": n_params}, snapshot_path(a.ckpt, step))
            with open(a.curve, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
            plot(rows, a.curve)
    print(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min", flush=True)


def plot(rows, curve):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    s = [r["step"] for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))
    ax[0].plot(s, [r["train_sisdr_improvement_db"] for r in rows], label="train (batch mean)")
    ax[0].plot(s, [r["val_sisdr_improvement_db"] for r in rows], label="validation (held-out voices/noises, −5…10 dB)")
    ax[0].set_xlabel("step"); ax[0].set_ylabel("SI-SDR improvement (dB)"); ax[0].legend(fontsize=7); ax[0].grid(alpha=.3)
    ax[1].plot(s, [r["val_vad_accuracy"] for r in rows], label="VAD accuracy (mixtures)")
    ax[1].plot(s, [r["val_noise_only_vad"] for r in rows], label="mean VAD on noise only")
    ax[1].set_xlabel("step"); ax[1].legend(fontsize=7); ax[1].grid(alpha=.3)
    ax[2].plot(s, [r["val_noise_only_attenuation_db"] for r in rows])
    ax[2].set_xlabel("step"); ax[2].set_ylabel("noise-only attenuation (dB)"); ax[2].grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(os.path.splitext(curve)[0] + ".png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
