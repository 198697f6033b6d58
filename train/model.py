# SPDX-License-Identifier: MIT
"""The default denoiser in plain PyTorch: the ssmd front-end and a Mamba-1 backbone.

Front-end (must equal daemon/src/frontend.c + dsp/ stft, docs/model-format.md):
48 kHz, 960-point frames (20 ms), hop 480 (10 ms), periodic sqrt-Hann analysis
and synthesis window; frame m holds samples [(m+1)·hop − n_fft, (m+1)·hop) with
zeros before the start; features ln(max(|rfft(w·frame)|², 1e-10)) (481 bins, no
scaling);
the mask head's sigmoid gains multiply the complex spectrum; overlap-add of
w·irfft reconstructs the input exactly for an all-pass mask (Σ w² = 1 at 50 %).

Backbone (DESIGN.md §4, ssm/model.h): r = proj·u + b; per layer pre-RMSNorm,
in_proj → [x|z], causal depthwise conv + SiLU, x_proj → [δ|B|C],
Δ = softplus(dt_proj·δ + bias), h ← exp(max(Δ·A, delta_A_min))⊙h + Δx⊗B,
y = h·C + D⊙x, y ⊙ SiLU(z), out_proj, residual; final RMSNorm; heads.

The selective scan has three implementations: `scan_chunked` (parallel inside
chunks of CHUNK frames, sequential across chunks), `scan_sequential` (the plain
per-frame recurrence the C engine computes) and train/scan_ext.py (the same
recurrence and its gradient as C loops: the training path on a CPU; selected
with sequential="c", falling back to scan_sequential where it cannot be built
and on a GPU).  `python3 train/model.py` checks that they agree and prints the
max differences.

Numerical note on the chunked scan: inside a chunk, h_t = e^{c_t}h_0 +
e^{c_t−r}·Σ_{s≤t} e^{r−c_s}u_s with c the cumulative sum of Δ·A and r its
value at the chunk's middle; with Δ·A ≥ DELTA_A_MIN = −6 per frame and 16-frame
chunks every exponent stays within ±48 (float32 overflows past 88).  The same
bound goes into the model file's metadata (delta_A_min) so C computes the same
function.
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import scan_ext

SR, N_FFT, HOP = 48000, 960, 480
N_BINS = N_FFT // 2 + 1
LOG_FLOOR = 1e-10
DELTA_A_MIN = -6.0
CHUNK = 16


def window():
    n = torch.arange(N_FFT, dtype=torch.float64)
    return torch.sqrt(0.5 - 0.5 * torch.cos(2 * math.pi * n / N_FFT)).float()


def stft(x, win):
    """x {B, L} (L a multiple of HOP) → complex {B, M, N_BINS}, M = L/HOP + 1
    (the last frame covers the first HOP samples after the end: zero-padded)."""
    xp = F.pad(x, (N_FFT - HOP, HOP))
    fr = xp.unfold(-1, N_FFT, HOP) * win
    return torch.fft.rfft(fr, dim=-1)


def istft(X, win, length):
    """Inverse of stft (overlap-add of win·irfft), aligned with the input."""
    fr = torch.fft.irfft(X, n=N_FFT, dim=-1) * win          # B, M, N_FFT
    B, M, _ = fr.shape
    out = F.fold(fr.transpose(1, 2), output_size=(1, (M - 1) * HOP + N_FFT),
                 kernel_size=(1, N_FFT), stride=(1, HOP)).reshape(B, -1)
    return out[:, N_FFT - HOP:N_FFT - HOP + length]


def features(X):
    return torch.log(torch.clamp(X.real ** 2 + X.imag ** 2, min=LOG_FLOOR))


# Pitch features (frontend.features = log_power_pitch; must equal dsp/pitch.c):
# per frame, the lag T in [PITCH_LAG_MIN, PITCH_LAG_MAX] samples that maximises the
# normalised correlation r(T) = Σ x_n x_{n−T} / √(Σ x_n² · Σ x_{n−T}² + 1e-20) of the
# frame's 960 samples with the past (a coarse search on the signal decimated by 4 —
# means of 4 samples aligned to multiples of 4 — over lags 24..192, then T = 4τ + δ,
# δ in −3..3, at the full rate; the first maximum of r rounded to 2^-20 wins), then per pitch band
# [e_b, e_{b+1}) of STFT bins c_b = Σ Re(X_k P_k*) / √(Σ|X_k|² · Σ|P_k|² + 1e-20), P the
# STFT of the frame delayed by T (the same window), as in RNNoise (Valin 2018, §3.1);
# features appended to the 481 log powers: c_0..c_{nb−1}, then r(T).
PITCH_DEC = 4
PITCH_LAG_MIN, PITCH_LAG_MAX = 96, 768
PITCH_EDGES = (1, 3, 5, 7, 9, 11, 14, 17, 21, 26, 32, 40, 50, 62, 78, 98, 124, 160)
N_PITCH = len(PITCH_EDGES)  # len − 1 band correlations + the voicing r(T)
PITCH_EPS = 1e-20
PITCH_QUANT = 2.0 ** 20


PITCH_REL = 1e-12


def pitch_corr(dot, e0, e, e_all):
    """dot / √(e0·e + 1e-20), 0 where e0 or e is below PITCH_REL of the segment's energy e_all
    (there the running-sum differences are rounding noise), clamped to [−1, 1]."""
    r = (dot / torch.sqrt(e0 * e + PITCH_EPS)).clamp(-1.0, 1.0)
    return torch.where((e0 < PITCH_REL * e_all) | (e < PITCH_REL * e_all), torch.zeros_like(r), r)


def pitch_argmax(r):
    """First index of the largest r quantised to 2^-20: the lag choice does not depend on
    rounding noise (exactly-zero correlations in C, ~1e-17 through an FFT here)."""
    return torch.round(r * PITCH_QUANT).argmax(-1)


def pitch_features(x, win):
    """x {B, L} (L a multiple of HOP) → {B, M, N_PITCH} float32, M = L/HOP + 1 (frames as in stft).
    Computed in float64 without gradient."""
    with torch.no_grad():
        B, L = x.shape
        M_ = L // HOP + 1
        left = N_FFT - HOP + PITCH_LAG_MAX + PITCH_DEC       # history before the first frame, ≡ 0 mod 4
        xl = F.pad(x.double(), (left, HOP))                  # frame m's samples: xl[m·HOP + H : … + N_FFT]
        H = PITCH_LAG_MAX + PITCH_DEC
        seg = xl.unfold(-1, H + N_FFT, HOP)[:, :M_]          # B, M, H + N_FFT (history, then the frame)
        d = seg.reshape(B, M_, -1, PITCH_DEC).sum(-1) * (1.0 / PITCH_DEC)   # B, M, (H + N_FFT)/4
        hd, nd = H // PITCH_DEC, N_FFT // PITCH_DEC
        cur = d[..., hd:]                                    # B, M, 240
        t_lo, t_hi = PITCH_LAG_MIN // PITCH_DEC, PITCH_LAG_MAX // PITCH_DEC
        # num(τ) = Σ_i cur_i d_{hd−τ+i}: one circular correlation per frame (no wrap: hd + nd ≤ 512)
        nfft = 1 << (hd + nd - 1).bit_length()
        c = torch.fft.irfft(torch.fft.rfft(d, nfft) * torch.fft.rfft(cur, nfft).conj(), nfft)
        k = hd - torch.arange(t_lo, t_hi + 1)                             # offsets of lags t_lo..t_hi
        num = c[..., k]
        cs = F.pad(torch.cumsum(d * d, -1), (1, 0))
        e = cs[..., k + nd] - cs[..., k]
        e0 = cs[..., -1:] - cs[..., hd:hd + 1]
        r = pitch_corr(num, e0, e, cs[..., -1:])
        tau = pitch_argmax(r) + t_lo                                         # B, M
        # refine at the full rate: the same circular correlation over the frame and its history
        fr = seg[..., H:]                                                 # B, M, N_FFT
        nfft = 1 << (H + N_FFT - 1).bit_length()
        c2 = torch.fft.irfft(torch.fft.rfft(seg, nfft) * torch.fft.rfft(fr, nfft).conj(), nfft)
        cs2 = F.pad(torch.cumsum(seg * seg, -1), (1, 0))
        T = tau[..., None] * PITCH_DEC + torch.arange(-(PITCH_DEC - 1), PITCH_DEC)   # B, M, 7
        k2 = H - T
        e02 = cs2[..., -1:] - cs2[..., H:H + 1]
        e2 = torch.gather(cs2, -1, k2 + N_FFT) - torch.gather(cs2, -1, k2)
        r2 = pitch_corr(torch.gather(c2, -1, k2), e02, e2, cs2[..., -1:])
        best = pitch_argmax(r2)[..., None]
        voicing = torch.gather(r2, -1, best)[..., 0]                      # B, M
        Tb = torch.gather(T, -1, best)                                    # B, M, 1
        delayed = torch.gather(seg, -1, (H - Tb) + torch.arange(N_FFT)).float()
        P = torch.fft.rfft(delayed * win, dim=-1)
        X = torch.fft.rfft(fr.float() * win, dim=-1)
        E = torch.zeros(N_BINS, N_PITCH - 1, dtype=torch.float64)
        for i in range(N_PITCH - 1):
            E[PITCH_EDGES[i]:PITCH_EDGES[i + 1], i] = 1.0
        xp = (X.real * P.real + X.imag * P.imag).double() @ E
        ex = (X.real ** 2 + X.imag ** 2).double() @ E
        ep = (P.real ** 2 + P.imag ** 2).double() @ E
        out = torch.cat([xp / torch.sqrt(ex * ep + PITCH_EPS), voicing[..., None]], -1)
        return out.float()


def fast_pitch_features(x):
    """pitch_features(x) computed by the daemon's dsp/pitch.c (train/pitch_ext.py: the same values
    to 1e-4, ~16x faster), or by pitch_features where that library cannot be built."""
    import pitch_ext  # here: pitch_ext imports this module
    return pitch_ext.pitch_features(x.cpu())


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def scan_sequential(dt, A, x, Bm, Cm, D, h0=None):
    """The per-frame recurrence the C engine computes; dt, x {B,L,Di}; A {Di,N}; Bm, Cm {B,L,N}.
    Laid out for the CPU: inputs made time-major and contiguous once, then unbound into per-frame views, so
    each frame's operands are small contiguous blocks that stay in cache and backward
    gathers the per-frame gradients with one stack (indexing x[:, t] instead makes backward
    zero-fill a full-size gradient per frame, and reads the transposed conv output with a
    stride of L).  The training path.  → y {B,L,Di}, h {B,Di,N}."""
    Bsz, L, Di = x.shape
    tm = lambda v: v.transpose(0, 1).contiguous().unbind(0)   # noqa: E731
    dts, xs, Bs, Cs = tm(dt), tm(x), tm(Bm), tm(Cm)
    h = torch.zeros(Bsz, Di, A.shape[1], dtype=x.dtype, device=x.device) if h0 is None else h0
    ys = []
    for dt_t, x_t, B_t, C_t in zip(dts, xs, Bs, Cs):
        dA = torch.clamp(dt_t[:, :, None] * A, min=DELTA_A_MIN)
        h = torch.exp(dA) * h + (dt_t * x_t)[:, :, None] * B_t[:, None, :]
        ys.append((h * C_t[:, None, :]).sum(-1) + D * x_t)
    return torch.stack(ys, 1), h


def scan_chunked(dt, A, x, Bm, Cm, D, chunk=CHUNK):
    """Same function as scan_sequential (h0 = 0), parallel inside chunks.
    Layout {B, Di, N, n_chunks, chunk}: cumulative sums run over the last axis."""
    Bsz, L, Di = x.shape
    N = A.shape[1]
    Lp = (L + chunk - 1) // chunk * chunk
    if Lp != L:  # padded frames have dt = 0: no decay, no input
        dt, x = F.pad(dt, (0, 0, 0, Lp - L)), F.pad(x, (0, 0, 0, Lp - L))
        Bm, Cm = F.pad(Bm, (0, 0, 0, Lp - L)), F.pad(Cm, (0, 0, 0, Lp - L))
    nc = Lp // chunk
    dtT = dt.transpose(1, 2)                                   # B, Di, L
    dA = torch.clamp(dtT[:, :, None, :] * A[None, :, :, None], min=DELTA_A_MIN)  # B,Di,N,L
    u = (dtT * x.transpose(1, 2))[:, :, None, :] * Bm.transpose(1, 2)[:, None, :, :]
    dA = dA.reshape(Bsz, Di, N, nc, chunk)
    u = u.reshape(Bsz, Di, N, nc, chunk)
    c = torch.cumsum(dA, -1)
    r = c[..., chunk // 2 - 1:chunk // 2]
    local = torch.exp(c - r) * torch.cumsum(torch.exp(r - c) * u, -1)
    dec_end = torch.exp(c[..., -1]).unbind(-1)                 # nc × {B,Di,N}
    loc_end = local[..., -1].unbind(-1)  # one slice of the big tensor (cheap backward)
    h = torch.zeros(Bsz, Di, N, dtype=x.dtype)
    starts = []
    for k in range(nc):
        starts.append(h)
        h = dec_end[k] * h + loc_end[k]
    H0 = torch.stack(starts, -1)                               # B,Di,N,nc
    hs = local + torch.exp(c) * H0[..., None]
    hs = hs.reshape(Bsz, Di, N, Lp)
    y = torch.einsum("bdnl,bln->bld", hs, Cm) + D * x
    return y[:, :L]


class Mixer(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
        super().__init__()
        di = expand * d_model
        self.dt_rank = math.ceil(d_model / 16)
        self.d_state, self.d_conv, self.d_inner = d_state, d_conv, di
        self.in_proj = nn.Linear(d_model, 2 * di, bias=False)
        self.conv1d = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, di)
        dt = torch.exp(torch.rand(di) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1).float()).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.out_proj = nn.Linear(di, d_model, bias=False)

    def forward(self, h, sequential=False):
        L = h.shape[1]
        x, z = self.in_proj(h).chunk(2, dim=-1)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L]).transpose(1, 2).contiguous()
        dbc = self.x_proj(x)
        dl, Bm, Cm = dbc.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dl))
        A = -torch.exp(self.A_log)
        if sequential == "c" and x.device.type == "cpu" and scan_ext.available():
            y = scan_ext.scan(dt, A, x, Bm, Cm, self.D, DELTA_A_MIN)
        elif sequential:
            y = scan_sequential(dt, A, x, Bm, Cm, self.D)[0]
        else:
            y = scan_chunked(dt, A, x, Bm, Cm, self.D)
        return self.out_proj(y * F.silu(z))


class Block(nn.Module):
    def __init__(self, d_model, **kw):
        super().__init__()
        self.norm = RMSNorm(d_model)
        self.mixer = Mixer(d_model, **kw)

    def forward(self, r, sequential=False):
        return r + self.mixer(self.norm(r), sequential)


def band_centres_hz(n_bands, min_gap_hz=100.0):
    """n_bands centre frequencies from 0 Hz to SR/2, evenly spaced on the ERB-rate
    scale (Glasberg & Moore 1990: 21.4·log10(1 + 0.00437 f)) but at least
    min_gap_hz apart (two STFT bins at 48 kHz / 960), so low bands stay resolvable."""
    top = 21.4 * math.log10(1 + 0.00437 * SR / 2)
    c = [(10 ** (e / 21.4) - 1) / 0.00437 for e in torch.linspace(0, top, n_bands, dtype=torch.float64).tolist()]
    for i in range(1, n_bands):
        c[i] = max(c[i], c[i - 1] + min_gap_hz)
    scale = (SR / 2) / c[-1] if c[-1] > SR / 2 else 1.0  # the gaps pushed the top past Nyquist
    return [x * scale for x in c]


def band_interp(n_bands):
    """E {N_BINS, n_bands}: bin k's value is the linear interpolation, in frequency,
    of the two band centres around it (the end bands' values beyond them)."""
    c = band_centres_hz(n_bands)
    E = torch.zeros(N_BINS, n_bands, dtype=torch.float64)
    for k in range(N_BINS):
        f = k * SR / N_FFT
        i = max(j for j in range(n_bands) if c[j] <= f + 1e-9)
        if i == n_bands - 1:
            E[k, i] = 1.0
        else:
            t = (f - c[i]) / (c[i + 1] - c[i])
            E[k, i], E[k, i + 1] = 1 - t, t
    return E


class Denoiser(nn.Module):
    """log-power features → normalisation → proj → Mamba blocks → norm_f → mask, vad.
    feat_mean/feat_std (buffers, per bin) are folded into frontend.proj at export.
    With n_bands > 0 the mask head computes n_bands logits on an ERB-like scale
    (band_centres_hz) and interpolates them linearly to the N_BINS bins before the
    sigmoid: a per-bin linear head of rank n_bands, smooth across frequency, which
    export writes as it is (head.mask.weight {n_bands, d_model} and the interpolation
    E = band_interp as head.mask.interp {N_BINS, n_bands}: the C engine computes the band
    logits, then E's two nonzero entries per bin).
    lookahead d (frames, frontend.lookahead_frames): the heads' outputs of step t are the
    gains and voice activity of frame t − d, so the model has seen d frames (d·HOP samples)
    past the frame it masks; the algorithmic latency grows by d·HOP (`run`)."""

    def __init__(self, d_model=64, n_layer=2, d_state=16, d_conv=4, expand=2, n_bands=0, pitch=False,
                 lookahead=0):
        super().__init__()
        self.cfg = dict(d_model=d_model, n_layer=n_layer, d_state=d_state, d_conv=d_conv, expand=expand,
                        n_bands=n_bands, pitch=pitch, lookahead=lookahead)
        self.n_features = N_BINS + (N_PITCH if pitch else 0)
        self.register_buffer("feat_mean", torch.zeros(self.n_features))
        self.register_buffer("feat_std", torch.ones(self.n_features))
        self.register_buffer("win", window())
        self.proj = nn.Linear(self.n_features, d_model)
        self.layers = nn.ModuleList(Block(d_model, d_state=d_state, d_conv=d_conv, expand=expand)
                                    for _ in range(n_layer))
        self.norm_f = RMSNorm(d_model)
        self.mask = nn.Linear(d_model, n_bands or N_BINS)
        if n_bands:
            self.register_buffer("band_interp", band_interp(n_bands).float())
        self.vad = nn.Linear(d_model, 1)
        with torch.no_grad():
            for b in self.layers:
                b.mixer.out_proj.weight /= math.sqrt(n_layer)
            self.mask.bias.fill_(1.0)

    def input_features(self, x, X, pitch=None):
        """x {B, L}, X = stft(x) → {B, M, n_features}: the log powers, then (with cfg pitch) the
        pitch features (pitch_features(x), or `pitch` when the caller computed them already)."""
        f = features(X)
        if not self.cfg.get("pitch"):
            return f
        p = fast_pitch_features(x).to(f.device) if pitch is None else pitch.to(f.device)
        return torch.cat([f, p], -1)

    def heads(self, feats, sequential=False):
        """feats {B, M, n_features} (raw log power [+ pitch]) → (embedding, mask logits, vad logits)."""
        r = self.proj((feats - self.feat_mean) / self.feat_std)
        for b in self.layers:
            r = b(r, sequential)
        h = self.norm_f(r)
        m = self.mask(h)
        if self.cfg["n_bands"]:
            m = m @ self.band_interp.T
        return h, m, self.vad(h)[..., 0]

    def run(self, x, pitch=None, sequential=False):
        """x {B, L} → (X = stft(x) {B, M, N_BINS}, mask logits {B, M, N_BINS}, vad logits {B, M}),
        row m of both heads being frame m's.  With lookahead d the input is padded with d·HOP
        zeros (as the daemon's framer pads the end of a file) and the heads' outputs are shifted
        by d steps; `pitch`, when given, must be pitch_features of that padded input (M + d
        frames: `pitch_input`)."""
        d = self.cfg.get("lookahead", 0)
        xe = F.pad(x, (0, d * HOP)) if d else x
        Xe = stft(xe, self.win)
        _, m, v = self.heads(self.input_features(xe, Xe, pitch), sequential)
        M_ = Xe.shape[1] - d
        return Xe[:, :M_], m[:, d:], v[:, d:]

    def pitch_input(self, x):
        """The signal whose pitch_features `run` takes: x padded with lookahead·HOP zeros."""
        d = self.cfg.get("lookahead", 0)
        return F.pad(x, (0, d * HOP)) if d else x

    def forward(self, x, sequential=False):
        """x {B, L} → (denoised {B, L}, vad logits {B, M}, mask {B, M, N_BINS})."""
        X, m, v = self.run(x, sequential=sequential)
        m = torch.sigmoid(m)
        return istft(X * m, self.win, x.shape[1]), v, m


def _check():
    """Chunked scan vs sequential loop, and the whole model all three ways (train/scan_ext.py
    checks the C scan's gradients)."""
    torch.manual_seed(0)
    B, L, Di, N = 2, 77, 8, 4
    dt = F.softplus(torch.randn(B, L, Di) * 2)
    A = -torch.exp(torch.randn(Di, N))
    x, Bm, Cm = torch.randn(B, L, Di), torch.randn(B, L, N), torch.randn(B, L, N)
    D = torch.randn(Di)
    y1 = scan_chunked(dt, A, x, Bm, Cm, D)
    y2, _ = scan_sequential(dt, A, x, Bm, Cm, D)
    d_scan = (y1 - y2).abs().max().item()
    m = Denoiser()
    xs = torch.randn(2, HOP * 40) * 0.1
    with torch.no_grad():
        a = m(xs)[0]
        b = m(xs, sequential=True)[0]
        c = m(xs, sequential="c")[0] if scan_ext.available() else b
    d_model = max((a - b).abs().max().item(), (c - b).abs().max().item())
    print(f"scan: max |chunked - sequential| = {d_scan:.3g} (scale {y2.abs().max().item():.3g}); "
          f"model output: {d_model:.3g}")
    # lookahead: frame m's gains depend on the input up to sample (m + 1 + d)·HOP and no further
    ml = Denoiser(lookahead=2)
    with torch.no_grad():
        _, g1, v1 = ml.run(xs, sequential=True)
        xs2 = xs.clone()
        xs2[:, 20 * HOP:] += 0.05
        _, g2, v2 = ml.run(xs2, sequential=True)
    same = [bool(torch.equal(g1[:, m], g2[:, m]) and torch.equal(v1[:, m], v2[:, m])) for m in range(g1.shape[1])]
    d_look = 0.0 if same == [m + 1 + 2 <= 20 for m in range(g1.shape[1])] else 1.0
    print(f"lookahead 2: frames whose gains moved start at {same.index(False)} (expected 18)")
    # identity check of stft/istft
    win = window()
    r = (istft(stft(xs, win), win, xs.shape[1]) - xs).abs().max().item()
    print(f"stft/istft identity: max error {r:.3g}")
    ok = d_scan < 1e-4 * max(1.0, y2.abs().max().item()) and d_model < 1e-4 and r < 1e-5 and d_look == 0
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(_check())
