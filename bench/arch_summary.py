# SPDX-License-Identifier: MIT
"""Table of a bench/arch_bench.sh run: medians over the rounds (and the
range) of batch-1 step latency, stream-steps per second at each batch, the
chunked forward's frames per second, ssmd vs the PyTorch eager peer, per
model; state bytes per stream and parameters; the load averages seen.

  arch_summary.py RESULTS.jsonl      (markdown on stdout)
"""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    step = defaultdict(list)     # (model, impl, batch) -> [stream_steps_per_s]
    lat = defaultdict(list)      # (model, impl) -> [median_us at batch 1]
    fwd = defaultdict(list)      # (model, impl) -> [frames_per_s]
    info, params, loads, checks, machine = {}, {}, [], [], {}
    for r in rows:
        b = r.get("bench")
        if b == "model_step":
            step[(r["model"], r["impl"], r["batch"])].append(r["stream_steps_per_s"])
            if r["batch"] == 1:
                lat[(r["model"], r["impl"])].append(r["median_us"])
        elif b == "model_forward":
            fwd[(r["model"], r["impl"])].append(r["frames_per_s"])
        elif b == "model_info":
            info[r["model"]] = r
        elif b == "model_params":
            params[r["model"]] = r
        elif b == "load":
            loads.append(float(r["loadavg"].split()[0]))
        elif b == "peer_check":
            checks.append(r)
        elif b == "machine":
            machine = r
    models = [m for m in ("mamba1", "mamba2", "hybrid") if m in info]
    batches = sorted({k[2] for k in step})

    def med(v, nd=0):
        if not v:
            return "-"
        m = statistics.median(v)
        s = f"{m:,.{nd}f}"
        if len(v) > 1:
            s += f" ({min(v):,.{nd}f}–{max(v):,.{nd}f})"
        return s

    print(f"CPU: {machine.get('cpu', '?')}, {machine.get('nproc', '?')} CPUs, pinned to core "
          f"{machine.get('pinned_core', '?')}; {machine.get('rounds', '?')} rounds, "
          f"{machine.get('seconds', '?')} s per figure")
    if loads:
        print(f"load average (1 min) before the runs: median {statistics.median(loads):.1f}, "
              f"min {min(loads):.1f}, max {max(loads):.1f} over {len(loads)} readings")
    for c in checks:
        print(f"peer check {c['model']}: step vs float64 {c['step_vs_float64']:.1e}, "
              f"forward {c['forward_vs_float64']:.1e} ({'ok' if c['ok'] else 'FAIL'})")
    print()
    print("| model | layers | parameters | state per stream |")
    print("|---|---|---:|---:|")
    for m in models:
        p = params.get(m, {})
        print(f"| {m} | {info[m]['layers']} | {p.get('params', 0):,} | "
              f"{info[m]['state_bytes']:,} B |")
    print()
    print("Medians over the rounds (min–max in brackets); ssmd = model_bench default runner, "
          "torch = arch_torch_peer.py, one thread, same core.")
    print()
    head = ["model", "impl", "step latency, batch 1 (µs)"]
    head += [f"stream-steps/s, batch {b}" for b in batches]
    head += ["forward, chunk 256 (frames/s)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    for m in models:
        for impl in ("ssmd", "torch-1t"):
            cells = [m, "ssmd" if impl == "ssmd" else "PyTorch eager",
                     med(lat[(m, impl)], 1)]
            cells += [med(step[(m, impl, b)]) for b in batches]
            cells += [med(fwd[(m, impl)])]
            print("| " + " | ".join(cells) + " |")
    print()
    print("ssmd / PyTorch (ratio of the medians):")
    print()
    print("| model | batch-1 latency | " + " | ".join(f"batch {b}" for b in batches)
          + " | forward |")
    print("|---|" + "---:|" * (len(batches) + 2))
    for m in models:
        def ratio(a, b):
            return f"{statistics.median(a) / statistics.median(b):.1f}×" if a and b else "-"
        cells = [m, ratio(lat[(m, "torch-1t")], lat[(m, "ssmd")])]
        cells += [ratio(step[(m, "ssmd", b)], step[(m, "torch-1t", b)]) for b in batches]
        cells += [ratio(fwd[(m, "ssmd")], fwd[(m, "torch-1t")])]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
