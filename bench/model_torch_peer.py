# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/model_bench.c: the same model file stepped by a plain
eager implementation of the Mamba-1 step (the equations of DESIGN.md §4, as
mamba_ssm's Mamba.step writes them), torch.no_grad(), fp32, batch of streams.
Prints the same JSON lines as model_bench with "impl":"torch" (default thread
count) and "impl":"torch-1t" (torch.set_num_threads(1)).

  model_torch_peer.py MODEL NAME [BATCH...]
  model_torch_peer.py --memory MODEL NAME N_FRAMES
        (steps one stream N_FRAMES frames, prints the peak RSS: model_memory line)
  model_torch_peer.py --make OUT.safetensors d_model n_layer d_state
        (writes a random bench model: 64 log-mel features in, mask {257} + vad out)
Env: SSMD_BENCH_SECONDS (per figure, default 1.0), SSMD_BENCH_MIN_STEPS_B1 (least
steps timed at batch 1, default 10000), SSMD_TORCH_THREADS ("both",
"1" or "default"; default both).
Needs Debian's python3-torch (SSMD_EXTRA_PKGS=python3-torch scripts/setup.sh).
"""
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)


def make(path, d_model, n_layer, d_state):
    import mamba_ref
    mamba_ref.make_model(path, d_model=d_model, n_layer=n_layer, d_state=d_state,
                         n_features=64, heads="mask,vad", n_mask=257, seed=11)


class Peer:
    def __init__(self, path, torch):
        import ssmd_file
        self.torch = torch
        t, meta = ssmd_file.load(path)
        g = {k: torch.from_numpy(v.copy()) for k, v in t.items()}
        self.d_model = int(meta["d_model"])
        self.n_layer = int(meta["n_layer"])
        self.d_state = int(meta["d_state"])
        self.d_conv = int(meta["d_conv"])
        self.d_inner = int(meta["expand"]) * self.d_model
        self.R = (math.ceil(self.d_model / 16) if meta["dt_rank"] == "auto"
                  else int(meta["dt_rank"]))
        self.eps = float(meta["norm_eps"])
        self.n_features = int(meta["n_features"])
        self.g = g
        self.layers = []
        for i in range(self.n_layer):
            p = f"backbone.layers.{i}."
            self.layers.append(dict(
                norm=g[p + "norm.weight"], in_proj=g[p + "mixer.in_proj.weight"],
                conv_w=g[p + "mixer.conv1d.weight"][:, 0, :].contiguous(),
                conv_b=g[p + "mixer.conv1d.bias"], x_proj=g[p + "mixer.x_proj.weight"],
                dt_proj=g[p + "mixer.dt_proj.weight"], dt_b=g[p + "mixer.dt_proj.bias"],
                A=-torch.exp(g[p + "mixer.A_log"]), D=g[p + "mixer.D"],
                out_proj=g[p + "mixer.out_proj.weight"]))

    def rms(self, x, w):
        return x * self.torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def states(self, B):
        t = self.torch
        return ([t.zeros(B, self.d_inner, self.d_conv) for _ in range(self.n_layer)],
                [t.zeros(B, self.d_inner, self.d_state) for _ in range(self.n_layer)])

    def step(self, u, conv, ssm):
        """u {B, n_features}; conv/ssm lists of per-layer states, updated in place."""
        t = self.torch
        F = t.nn.functional
        g = self.g
        r = F.linear(u, g["frontend.proj.weight"], g["frontend.proj.bias"])
        di, N, R = self.d_inner, self.d_state, self.R
        for L, cs, ss in zip(self.layers, conv, ssm):
            h = self.rms(r, L["norm"])
            xz = F.linear(h, L["in_proj"])
            x, z = xz[:, :di], xz[:, di:]
            cs.copy_(t.roll(cs, shifts=-1, dims=-1))
            cs[:, :, -1] = x
            x = F.silu(t.sum(cs * L["conv_w"], dim=-1) + L["conv_b"])
            dbc = F.linear(x, L["x_proj"])
            dt, B, C = t.split(dbc, [R, N, N], dim=-1)
            dt = F.softplus(F.linear(dt, L["dt_proj"]) + L["dt_b"])
            dA = t.exp(t.einsum("bd,dn->bdn", dt, L["A"]))
            dB = t.einsum("bd,bn->bdn", dt, B)
            ss.copy_(ss * dA + x.unsqueeze(-1) * dB)
            y = t.einsum("bdn,bn->bd", ss, C) + L["D"] * x
            y = y * F.silu(z)
            r = r + F.linear(y, L["out_proj"])
        hf = self.rms(r, g["backbone.norm_f.weight"])
        mask = t.sigmoid(F.linear(hf, g["head.mask.weight"], g["head.mask.bias"]))
        vad = t.sigmoid(F.linear(hf, g["head.vad.weight"], g["head.vad.bias"]))
        return mask, vad


def bench(path, name, batches):
    import torch
    budget = float(os.environ.get("SSMD_BENCH_SECONDS", "1.0"))
    which = os.environ.get("SSMD_TORCH_THREADS", "both")
    min_b1 = int(os.environ.get("SSMD_BENCH_MIN_STEPS_B1", "10000"))
    default_threads = torch.get_num_threads()
    modes = []
    if which in ("both", "default"):
        modes.append(("torch", default_threads))
    if which in ("both", "1"):
        modes.append(("torch-1t", 1))
    peer = Peer(path, torch)
    for impl, threads in modes:
        torch.set_num_threads(threads)
        for B in batches:
            gen = torch.Generator().manual_seed(1)
            u = torch.rand(B, peer.n_features, generator=gen) * 2 - 1
            conv, ssm = peer.states(B)
            lat = []
            with torch.no_grad():
                for _ in range(5):
                    peer.step(u, conv, ssm)
                t0 = time.perf_counter()
                min_steps = min_b1 if B == 1 else 10
                while len(lat) < min_steps or time.perf_counter() - t0 < budget:
                    a = time.perf_counter()
                    peer.step(u, conv, ssm)
                    lat.append(time.perf_counter() - a)
                total = time.perf_counter() - t0
            lat.sort()
            n = len(lat)
            med = lat[n // 2]
            print(machine.line({"bench": "model_step", "impl": impl, "model": name, "batch": B,
                              "threads": threads, "steps": n,
                              "stream_steps_per_s": round(B / med, 1),
                              "mean_stream_steps_per_s": round(n * B / total, 1),
                              "best_stream_steps_per_s": round(B / lat[0], 1),
                              "median_us": round(med * 1e6, 2),
                              "p99_us": round(lat[int((n - 1) * 0.99)] * 1e6, 2),
                              "min_us": round(lat[0] * 1e6, 2)}), flush=True)


def memory(path, name, frames):
    import resource
    import torch
    torch.set_num_threads(1)
    peer = Peer(path, torch)
    conv, ssm = peer.states(1)
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(256, 1, peer.n_features, generator=gen) * 2 - 1
    t0 = time.perf_counter()
    with torch.no_grad():
        for t in range(frames):
            mask, vad = peer.step(u[t % 256], conv, ssm)
    print(machine.line({"bench": "model_memory", "impl": "torch-1t", "model": name,
                      "frames": frames, "audio_s_at_100fps": frames / 100.0,
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "step_s": round(time.perf_counter() - t0, 3),
                      "vad_last": float(vad[0, 0])}), flush=True)


def main(argv):
    if len(argv) == 5 and argv[1] == "--memory":
        memory(argv[2], argv[3], int(argv[4]))
        return 0
    if len(argv) == 6 and argv[1] == "--make":
        make(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
        return 0
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("model_torch_peer: torch is missing for this python "
              "(install python3-torch: SSMD_EXTRA_PKGS=python3-torch scripts/setup.sh)",
              file=sys.stderr)
        return 1
    batches = [int(b) for b in argv[3:]] or [1, 16, 64, 256]
    bench(argv[1], argv[2], batches)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
