# SPDX-License-Identifier: MIT
"""PyTorch peer of bench/gen_bench.c: the same mu-law model file stepped sample
by sample in eager PyTorch (fp32, torch.no_grad(), one thread), with the same
sampling work per step (softmax, LPCNet floor 0.001, torch.multinomial).
The step is the recurrence of train/model.py scan_sequential (what the model
was trained to compute), written for one frame with a conv state and an SSM state.

  gen_torch_peer.py MODEL [BATCH...]     (default 1 16)
Env: SSMD_BENCH_SECONDS (per figure, default 2.0).
Prints JSON lines like gen_bench with "impl":"torch-1t".
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import lm_model as L  # noqa: E402
import model as M  # noqa: E402
import machine  # noqa: E402  (bench/machine.py: CPU model, caches, load average on every line)


class Stepper:
    def __init__(self, net, batch):
        self.net = net
        self.B = batch
        c = net.cfg
        di = c["expand"] * c["d_model"]
        self.conv = [torch.zeros(batch, di, c["d_conv"]) for _ in net.layers]
        self.h = [torch.zeros(batch, di, c["d_state"]) for _ in net.layers]
        self.A = [-torch.exp(b.mixer.A_log) for b in net.layers]

    def step(self, tok):
        r = self.net.embedding(tok)                          # B, D
        for i, b in enumerate(self.net.layers):
            mx = b.mixer
            x, z = mx.in_proj(b.norm(r)).chunk(2, dim=-1)
            cs = self.conv[i]
            cs = torch.cat([cs[:, :, 1:], x[:, :, None]], -1)
            self.conv[i] = cs
            x = F.silu((cs * mx.conv1d.weight[:, 0, :]).sum(-1) + mx.conv1d.bias)
            dl, Bm, Cm = mx.x_proj(x).split([mx.dt_rank, mx.d_state, mx.d_state], dim=-1)
            dt = F.softplus(mx.dt_proj(dl))
            dA = torch.clamp(dt[:, :, None] * self.A[i], min=M.DELTA_A_MIN)
            h = torch.exp(dA) * self.h[i] + (dt * x)[:, :, None] * Bm[:, None, :]
            self.h[i] = h
            y = (h * Cm[:, None, :]).sum(-1) + mx.D * x
            r = r + mx.out_proj(y * F.silu(z))
        return self.net.lm_head(self.net.norm_f(r))


def main():
    torch.set_num_threads(1)
    path = sys.argv[1]
    batches = [int(b) for b in sys.argv[2:]] or [1, 16]
    budget = float(os.environ.get("SSMD_BENCH_SECONDS", "2.0"))
    net, meta = L.from_file(path)
    rate = int(meta.get("frontend.sample_rate_hz", 16000))
    torch.manual_seed(1)
    with torch.no_grad():
        for B in batches:
            st = Stepper(net, B)
            tok = torch.full((B,), 128, dtype=torch.long)

            def one(tok):
                p = torch.softmax(st.step(tok), -1)
                p = torch.clamp(p - 0.001, min=0) + 1e-12
                return torch.multinomial(p, 1)[:, 0]
            for _ in range(50):
                tok = one(tok)
            n, t0 = 0, time.perf_counter()
            while True:
                for _ in range(20):
                    tok = one(tok)
                n += 20
                t = time.perf_counter() - t0
                if t >= budget:
                    break
            print(machine.line({"bench": "generate", "impl": "torch-1t", "model": os.path.basename(path),
                              "batch": B, "steps": n,
                              "seconds": round(t, 3), "samples_per_s": round(n * B / t),
                              "per_stream_realtime_x": round(n / t / rate, 3), "rate_hz": rate}), flush=True)


if __name__ == "__main__":
    main()
