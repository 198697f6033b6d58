# SPDX-License-Identifier: MIT
"""Summary of one bench/run.sh run: reads its JSON lines (results.jsonl),
prints summary JSON lines and markdown tables (the ones in
docs/performance.md).

  summary.py RESULTS.jsonl

Derived figures, all from lines of the same run:
 - roofline of a step of B streams: attainable GFLOP/s = min(FMA peak,
   bandwidth × FLOPs/bytes), bytes = weights once per step + B × state read
   and written, bandwidth at the cache level that holds weights + states
   (L2 up to 1 MiB, L3 up to 32 MiB, else DRAM), FMA peak of the widest ISA;
 - achieved GFLOP/s = stream-steps/s × FLOPs per stream-step (model_info);
 - real-time streams per core at 100 frames/s = best single-thread
   stream-steps/s over the batches / 100 (and 2 threads' figure / 2 / 100).
"""
import json
import statistics
import sys


def fmt(v, nd=0):
    if v is None:
        return "-"
    if isinstance(v, float) and nd:
        return f"{v:,.{nd}f}"
    return f"{v:,.0f}"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    out = []
    roof = {}
    for r in rows:
        if r.get("bench") == "roofline":
            if r["what"] == "fma_peak":
                roof["fma_" + r["isa"]] = r["gflops"]
            elif r["what"] == "sgemm":
                roof["sgemm_" + r["shape"]] = r["gflops"]
            elif r["what"] == "copy":
                roof["bw_" + r["level"]] = r["gb_per_s"]
    peak = max([v for k, v in roof.items() if k.startswith("fma_")] or [0])
    sgemm = max([v for k, v in roof.items() if k.startswith("sgemm_")] or [0])
    machine = next((r for r in rows if r.get("bench") == "machine"), {})
    print("\n## Machine and roofline (measured in this run)\n")
    print(f"{machine.get('cpu', '?')} ({machine.get('cpu_id', '?')}), {machine.get('cores', '?')} cores, "
          f"load average at start {machine.get('load_avg_1m', '?')}, {machine.get('date', '?')}\n")
    print("| figure | value |\n|---|---:|")
    for k in sorted(roof):
        unit = "GB/s" if k.startswith("bw_") else "GFLOP/s"
        print(f"| {k} | {roof[k]:,.1f} {unit} |")
    lk = [r for r in rows if r.get("bench") == "linear_kernel"]
    if lk:
        print("\n| projection kernel (shape) | GFLOP/s | ÷ OpenBLAS sgemm | ÷ FMA peak |\n|---|---:|---:|---:|")
        for r in lk:
            print(f"| {r['impl']} {r['isa']} ({r['shape']}) | {r['gflops']:,.1f} | "
                  f"{r['fraction_of_sgemm']:.2f} | {r['gflops'] / peak if peak else 0:.2f} |")

    dsp = [r for r in rows if str(r.get("bench", "")).startswith("dsp_")]
    if dsp:
        print("\n## dsp (per stream, one core)\n\n| bench | impl | variant | frames/s | × real time (16 kHz) |\n|---|---|---|---:|---:|")
        for r in dsp:
            if "frames_per_s" in r:
                xr = r.get("x_realtime_16k", r["frames_per_s"] * r.get("hop", 128) / 16000)
                print(f"| {r['bench']} | {r['impl']} | {r['variant']} | {r['frames_per_s']:,.0f} | {xr:,.0f} |")

    gen = [r for r in rows if r.get("bench") == "generate"]
    if gen:
        print("\n## generation (bench/gen_bench.sh: mu-law token model, one core)\n")
        print("| model | impl | batch | samples/s | × real time per stream |\n|---|---|---:|---:|---:|")
        for r in gen:
            if "samples_per_s" in r:
                print(f"| {r.get('model', '?')} | {r['impl']} | {r['batch']} | {r['samples_per_s']:,.0f} | "
                      f"{r.get('per_stream_realtime_x', 0):.3f} |")
            else:
                print(f"| {r.get('model', '?')} | {r.get('impl', '?')} | - | skipped: {r.get('skipped', '?')} | |")
    scan = [r for r in rows if r.get("bench") == "scan_step"]
    if scan:
        print("\n## scan step alone (bench/scan_bench, one core)\n")
        print("| d_inner | d_state | batch | isa | ns per channel-step | state GB/s |\n|---:|---:|---:|---|---:|---:|")
        for r in scan:
            print(f"| {r.get('d_inner')} | {r.get('d_state')} | {r.get('batch')} | {r.get('isa')} | "
                  f"{r.get('ns_per_channel_step')} | {r.get('state_gb_s')} |")

    info = {r["model"]: r for r in rows if r.get("bench") == "model_info"}
    steps = [r for r in rows if r.get("bench") == "model_step"]
    thr = [r for r in rows if r.get("bench") == "model_step_threads"]
    fwd = [r for r in rows if r.get("bench") == "model_forward"]
    for name, mi in info.items():
        fl, wb, sb = mi["flops_per_stream_step"], mi["weight_bytes_f32"], mi["state_bytes"]
        print(f"\n## model {name}: d_model {mi['d_model']}, {mi['n_layer']} layers, d_state "
              f"{mi['d_state']}, d_inner {mi['d_inner']} — {fl / 1e6:.2f} MFLOP per stream-step, "
              f"{wb / 1e6:.2f} MB fp32 weights, state {sb:,} bytes per stream\n")
        impls = []
        for r in steps:
            if r["model"] == name and r["impl"] not in impls:
                impls.append(r["impl"])
        by = {(r["impl"], r["batch"]): r for r in steps if r["model"] == name}
        batches = sorted({r["batch"] for r in steps if r["model"] == name})
        print("stream-steps/s (from the median step; 1 thread)\n")
        print("| batch | " + " | ".join(impls) + " | ssmd ÷ torch | ssmd GFLOP/s | ÷ roofline | ÷ best sgemm |")
        print("|---:|" + "---:|" * (len(impls) + 4))
        for B in batches:
            cells = [fmt(by.get((i, B), {}).get("stream_steps_per_s")) for i in impls]
            s = by.get(("ssmd", B), {}).get("stream_steps_per_s")
            t = max([by.get((i, B), {}).get("stream_steps_per_s", 0) for i in impls if i.startswith("torch")] or [0])
            g = s * fl / 1e9 if s else None
            ws = wb + B * sb
            bw = roof.get("bw_L2") if ws <= (1 << 20) else roof.get("bw_L3") if ws <= (32 << 20) else roof.get("bw_DRAM")
            bytes_ = wb + 2 * B * sb
            att = min(peak, (bw or 0) * fl * B / bytes_) if peak and bw else None
            frac = g / att if g and att else None
            print(f"| {B} | " + " | ".join(cells) + f" | {s / t if s and t else 0:.1f}× | "
                  f"{g or 0:.1f} | {frac or 0:.2f} | {g / sgemm if g and sgemm else 0:.2f} |")
            out.append({"bench": "summary", "what": "step", "model": name, "batch": B,
                        "ssmd_stream_steps_per_s": s, "torch_stream_steps_per_s": t or None,
                        "ssmd_over_torch": round(s / t, 2) if s and t else None,
                        "gflops": round(g, 2) if g else None,
                        "attainable_gflops": round(att, 2) if att else None,
                        "fraction_of_roofline": round(frac, 3) if frac else None,
                        "fraction_of_sgemm": round(g / sgemm, 3) if g and sgemm else None})
        print("\nbatch-1 latency, µs (median / p99 / steps timed)\n")
        print("| impl | median | p99 | steps |\n|---|---:|---:|---:|")
        for i in impls:
            r = by.get((i, 1))
            if r:
                print(f"| {i} | {r['median_us']:,.1f} | {r['p99_us']:,.1f} | {r['steps']:,} |")
        s1, t1 = by.get(("ssmd", 1)), [by[(i, 1)] for i in impls if i.startswith("torch") and (i, 1) in by]
        if s1 and t1:
            out.append({"bench": "summary", "what": "batch1_latency", "model": name,
                        "ssmd_median_us": s1["median_us"], "ssmd_p99_us": s1["p99_us"],
                        "torch_median_us": min(r["median_us"] for r in t1),
                        "torch_over_ssmd": round(min(r["median_us"] for r in t1) / s1["median_us"], 1)})
        best1 = max([r["stream_steps_per_s"] for r in steps if r["model"] == name and r["impl"] == "ssmd"] or [0])
        best2 = max([r["mean_stream_steps_per_s"] for r in thr if r["model"] == name] or [0])
        bestt = max([r["stream_steps_per_s"] for r in steps if r["model"] == name and r["impl"].startswith("torch")] or [0])
        best8 = max([r["stream_steps_per_s"] for r in steps if r["model"] == name and r["impl"] == "ssmd-int8"] or [0])
        print(f"\nreal-time streams at 100 frames/s: ssmd {best1 / 100:,.0f} per core (1 thread), "
              f"{best2 / 200:,.0f} per core with 2 threads ({best2 / 100:,.0f} on 2 cores); "
              f"int8 weights {best8 / 100:,.0f} per core (1 thread); "
              f"PyTorch eager {bestt / 100:,.0f} per core")
        for r in thr:
            if r["model"] == name:
                how = ("one runner, ssm_runner_set_threads" if r.get("impl") == "ssmd-runner"
                       else "independent runners, one per thread")
                print(f"- {r.get('threads', 2)} threads ({how}), batch {r['batch']}: "
                      f"{r['mean_stream_steps_per_s']:,.0f} stream-steps/s (mean)")
        for r in fwd:
            if r["model"] == name:
                print(f"- chunked ssm_forward ({r['impl']}, chunk {r['chunk']}): {r['frames_per_s']:,.0f} frames/s")
        out.append({"bench": "summary", "what": "realtime_streams_per_core_100fps", "model": name,
                    "ssmd_1thread": round(best1 / 100), "ssmd_2threads_per_core": round(best2 / 200),
                    "ssmd_int8_1thread": round(best8 / 100),
                    "torch": round(bestt / 100)})

    mem = [r for r in rows if r.get("bench") == "model_memory"]
    if mem:
        print("\n## memory (default model, one stream)\n\n| impl | frames | audio at 100 frames/s | peak RSS KiB |\n|---|---:|---:|---:|")
        for r in mem:
            print(f"| {r['impl']} | {r['frames']:,} | {r['audio_s_at_100fps'] / 60:,.0f} min | {r['peak_rss_kb']:,} |")
        for impl in sorted({r["impl"] for r in mem}):
            rs = sorted([r for r in mem if r["impl"] == impl], key=lambda r: r["frames"])
            if len(rs) >= 2:
                out.append({"bench": "summary", "what": "memory", "impl": impl,
                            "frames_short": rs[0]["frames"], "frames_long": rs[-1]["frames"],
                            "peak_rss_kb_short": rs[0]["peak_rss_kb"], "peak_rss_kb_long": rs[-1]["peak_rss_kb"],
                            "growth_kb": rs[-1]["peak_rss_kb"] - rs[0]["peak_rss_kb"]})
    tr = [r for r in rows if r.get("bench") == "transcode"]
    groups = sorted({(r.get("impl", "ssmd"), r.get("weights", "f32"), r.get("rate_hz", 16000)) for r in tr})
    for impl, w, rate in groups:
        rs = [r for r in tr if (r.get("impl", "ssmd"), r.get("weights", "f32"), r.get("rate_hz", 16000)) == (impl, w, rate)]
        best = max(r["x_real_time"] for r in rs)
        median = statistics.median(r["x_real_time"] for r in rs)
        what = f"{rs[0]['model']}, {w} weights" if impl.startswith("ssmd") else rs[0]["model"]
        print(f"\n## offline transcoding ({impl}, one core, {what}, {rs[0]['audio_s']:.0f} s of "
              f"{rate / 1000:g} kHz audio): median of {len(rs)} runs {median:,.1f}× real time, best "
              f"{best:,.1f}× ({', '.join(format(r['x_real_time'], ',.1f') for r in rs)})")
        out.append({"bench": "summary", "what": "transcode", "impl": impl, "weights": w, "rate_hz": rate,
                    "x_real_time_best": best, "x_real_time_median": median})
    ds = [r for r in rows if r.get("bench") == "daemon_streams"]
    if ds:
        print("\n## real-time 48 kHz streams per core through the daemon (bench/daemon_streams.py)\n\n"
              "| system | options | streams | CPU s | wall s | real-time streams per core (CPU) | (wall) |\n"
              "|---|---|---:|---:|---:|---:|---:|")
        for r in ds:
            print(f"| {r['system']} | {r.get('ssmd_args') or '—'} | {r['streams']} | {r.get('cpu_s', r['wall_s'])} | "
                  f"{r['wall_s']} | {r['cpu_rt_streams']:,.1f} | {r.get('wall_rt_streams', r['cpu_rt_streams']):,.1f} |")
        for sysname in sorted({r["system"] for r in ds}):
            best = max(r["cpu_rt_streams"] for r in ds if r["system"] == sysname)
            out.append({"bench": "summary", "what": "daemon_streams", "system": sysname, "cpu_rt_streams_best": best})
    print()
    for o in out:
        print(json.dumps(o))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
