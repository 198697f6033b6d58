# SPDX-License-Identifier: MIT
"""PyTorch eager peer of bench/gpu/gpu_bench.c on the same GPU: the same model
file stepped by bench/model_torch_peer.py's Peer (the Mamba-1 step as
mamba_ssm's Mamba.step writes it), its tensors moved to CUDA, fp32 with TF32
off, torch.no_grad(); one step = the mask and vad heads, synchronised.
Prints {"bench":"gpu_step","impl":"torch-cuda-eager",...} lines.

  gpu_torch_peer.py MODEL NAME [BATCH...]
Env: SSMD_BENCH_SECONDS (per figure, default 1.0).
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def main(argv):
    import torch
    import model_torch_peer as mtp
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA device")
        return 77
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    path, name = argv[1], argv[2]
    batches = [int(b) for b in argv[3:]] or [1, 256, 4096, 65536]
    budget = float(os.environ.get("SSMD_BENCH_SECONDS", "1.0"))
    dev = torch.device("cuda")
    peer = mtp.Peer(path, torch)
    peer.g = {k: v.to(dev) for k, v in peer.g.items()}
    peer.layers = [{k: v.to(dev) for k, v in L.items()} for L in peer.layers]
    for B in batches:
        try:
            gen = torch.Generator().manual_seed(1)
            u = (torch.rand(B, peer.n_features, generator=gen) * 2 - 1).to(dev)
            conv = [torch.zeros(B, peer.d_inner, peer.d_conv, device=dev)
                    for _ in range(peer.n_layer)]
            ssm = [torch.zeros(B, peer.d_inner, peer.d_state, device=dev)
                   for _ in range(peer.n_layer)]
            lat = []
            with torch.no_grad():
                for _ in range(3):
                    peer.step(u, conv, ssm)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                min_steps = 2000 if B == 1 else 10
                while len(lat) < min_steps or time.perf_counter() - t0 < budget:
                    a = time.perf_counter()
                    mask, vad = peer.step(u, conv, ssm)
                    mask.cpu(), vad.cpu()  # outputs to the host, as ssm_step returns them
                    lat.append(time.perf_counter() - a)
                total = time.perf_counter() - t0
        except torch.cuda.OutOfMemoryError:
            print(json.dumps({"bench": "gpu_step", "impl": "torch-cuda-eager", "model": name,
                              "batch": B, "error": "out of memory"}), flush=True)
            torch.cuda.empty_cache()
            continue
        lat.sort()
        n = len(lat)
        med = lat[n // 2]
        print(json.dumps({"bench": "gpu_step", "impl": "torch-cuda-eager", "model": name,
                          "batch": B, "outputs": "mask+vad", "steps": n,
                          "median_us": round(med * 1e6, 2),
                          "p99_us": round(lat[int((n - 1) * 0.99)] * 1e6, 2),
                          "stream_steps_per_s": round(B / med, 1),
                          "mean_stream_steps_per_s": round(n * B / total, 1)}), flush=True)
        del conv, ssm, u
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
