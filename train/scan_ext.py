# SPDX-License-Identifier: MIT
"""The selective scan for training on a CPU, compiled from train/scan_ext.c.

`scan(dt, A, x, Bm, Cm, D, dA_min)` computes what model.scan_sequential does
(y {B, L, Di}; h0 = 0) with a torch.autograd.Function whose forward and
backward passes are the C loops of scan_ext.c, called through ctypes: on a CPU
that is ~10-20x faster than PyTorch running the recurrence as small tensor
operations per frame.  The library is built on first use with the system's C
compiler (`cc -O3 -march=native -ffast-math -fopenmp-simd`) into train/cache/ (not committed) and rebuilt
when the source changes.  `available()` says whether it could be built;
model.py falls back to scan_sequential when not, and on CUDA tensors.

  /usr/bin/python3 train/scan_ext.py     # checks values and gradients against scan_sequential
"""
import ctypes
import os
import sys

import torch

import cbuild

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "scan_ext.c")
CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-shared", "-fPIC"]
_lib = None
_err = None
_pool = {}       # shape → state buffers free for the next forward pass
_POOL_MAX = 16   # per shape (one per layer of a model is what a training step reuses)


def _load():
    global _lib, _err
    if _lib is not None or _err is not None:
        return _lib
    lib, _err = cbuild.load("scan_ext", [SRC], CFLAGS, ["-lm"])
    if lib is not None:
        P = ctypes.c_void_p
        lib.ssm_train_scan_fwd.argtypes = [ctypes.c_int] * 4 + [ctypes.c_float] + [P] * 9
        lib.ssm_train_scan_bwd.argtypes = [ctypes.c_int] * 4 + [ctypes.c_float] + [P] * 15
        _lib = lib
    return _lib


def available():
    return _load() is not None


def _p(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dt, A, x, Bm, Cm, D, dA_min, keep_states):
        ctx.keep_states = keep_states
        dt, x, Bm, Cm, D = (t.detach().float().contiguous() for t in (dt, x, Bm, Cm, D))
        At = A.detach().float().t().contiguous()                     # {N, Di}: the C loops run over channels
        Bsz, L, Di = x.shape
        N = At.shape[0]
        y = torch.empty(Bsz, L, Di)
        if not ctx.keep_states:
            scratch = torch.empty(N, Di)
            _lib.ssm_train_scan_fwd(Bsz, L, Di, N, dA_min, _p(dt), _p(At), _p(x), _p(Bm), _p(Cm), _p(D), _p(y),
                                    None, _p(scratch))
            return y
        # the states of every frame (B·L·N·Di floats, ~80 MB per layer of the denoiser's batch)
        # come from a pool: a fresh allocation of that size is page-faulted in at every step
        shape = (Bsz, L, N, Di)
        hs = _pool.get(shape, []).pop() if _pool.get(shape) else torch.empty(shape)
        _lib.ssm_train_scan_fwd(Bsz, L, Di, N, dA_min, _p(dt), _p(At), _p(x), _p(Bm), _p(Cm), _p(D), _p(y),
                                _p(hs), None)
        ctx.save_for_backward(dt, At, x, Bm, Cm, D, hs)
        ctx.dA_min = dA_min
        return y

    @staticmethod
    def backward(ctx, gy):
        dt, At, x, Bm, Cm, D, hs = ctx.saved_tensors
        gy = gy.float().contiguous()
        Bsz, L, Di = x.shape
        N = At.shape[0]
        gdt, gx = torch.empty_like(dt), torch.empty_like(x)
        gAt, gD = torch.zeros_like(At), torch.zeros_like(D)
        gB, gC = torch.zeros_like(Bm), torch.zeros_like(Cm)
        scratch = torch.empty(N, Di)
        _lib.ssm_train_scan_bwd(Bsz, L, Di, N, ctx.dA_min, _p(dt), _p(At), _p(x), _p(Bm), _p(Cm), _p(D), _p(hs),
                                _p(gy), _p(gdt), _p(gAt), _p(gx), _p(gB), _p(gC), _p(gD), _p(scratch))
        pool = _pool.setdefault(tuple(hs.shape), [])
        if len(pool) < _POOL_MAX and not any(h is hs for h in pool):  # (a second backward of a retained graph)
            pool.append(hs)
        return gdt, gAt.t(), gx, gB, gC, gD, None, None


def scan(dt, A, x, Bm, Cm, D, dA_min):
    """y {B, L, Di}: scan_sequential's output (h0 = 0), differentiable in every tensor argument."""
    if not available():
        raise RuntimeError(f"scan_ext: the C scan could not be built: {_err}")
    # the states of every frame are kept only for a backward pass: under no_grad (evaluation)
    # or with no input needing a gradient the forward pass keeps one frame's in scratch
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in (dt, A, x, Bm, Cm, D))
    return _Scan.apply(dt, A, x, Bm, Cm, D, float(dA_min), keep)


def _check():
    sys.path.insert(0, HERE)
    import model as M
    torch.manual_seed(0)
    ok = True
    for (Bsz, L, Di, N) in ((2, 37, 5, 3), (3, 64, 16, 16), (2, 50, 37, 16), (1, 300, 256, 16)):
        dt = (torch.nn.functional.softplus(torch.randn(Bsz, L, Di) * 2)).double().requires_grad_()
        A = (-torch.exp(torch.randn(Di, N) * 1.5)).double().requires_grad_()  # some Δ·A below the bound
        x, Bm, Cm = (torch.randn(Bsz, L, k, dtype=torch.float64, requires_grad=True) for k in (Di, N, N))
        D = torch.randn(Di, dtype=torch.float64, requires_grad=True)
        args = (dt, A, x, Bm, Cm, D)
        y_ref, _ = M.scan_sequential(*args)
        gy = torch.randn_like(y_ref)
        g_ref = torch.autograd.grad((y_ref * gy).sum(), args)
        y = scan(*(a.float() for a in args), M.DELTA_A_MIN)
        g = torch.autograd.grad((y * gy.float()).sum(), args)
        # the passes that keep no states (no_grad; no input needing a gradient) give the same
        # values and take no state buffer
        n_pool = sum(len(v) for v in _pool.values())
        with torch.no_grad():
            y_ng = scan(*(a.float() for a in args), M.DELTA_A_MIN)
        y_det = scan(*(a.detach().float() for a in args), M.DELTA_A_MIN)
        if sum(len(v) for v in _pool.values()) != n_pool or y_det.requires_grad:
            print("FAIL a forward pass without gradient took a state buffer")
            ok = False
        ey = max(((v.double() - y_ref).abs().max() / y_ref.abs().max()).item() for v in (y, y_ng, y_det))
        eg = max(((a.double() - b).abs().max() / b.abs().max().clamp(min=1e-12)).item() for a, b in zip(g, g_ref))
        print(f"B {Bsz} L {L} Di {Di} N {N}: max relative error y {ey:.2e}, gradients {eg:.2e}")
        ok = ok and ey < 1e-5 and eg < 1e-4
    # a graph kept for a second backward pass returns its state buffer to the pool once
    _pool.clear()
    args = [torch.randn(1, 8, 4).abs().requires_grad_(), -torch.rand(4, 2), torch.randn(1, 8, 4),
            torch.randn(1, 8, 2), torch.randn(1, 8, 2), torch.randn(4)]
    y = scan(*args, M.DELTA_A_MIN)
    y.sum().backward(retain_graph=True)
    y.sum().backward()
    pooled = [h for v in _pool.values() for h in v]
    if len(pooled) != len({id(h) for h in pooled}):
        print(f"FAIL two backward passes of one graph put its state buffer in the pool {len(pooled)} times")
        ok = False
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_check())
