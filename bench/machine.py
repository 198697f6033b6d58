# SPDX-License-Identifier: MIT
"""The machine a Python benchmark line was measured on, merged into every JSON
line the peers print (as bench/bench_machine.h does for the C benchmarks):
the CPU model (/proc/cpuinfo "model name") and its identity (cpu_id: vendor, family,
model, stepping; a VM may call a Zen 3 and a Zen 5 both "AMD EPYC"), the ISA the peer runs (PyTorch's CPU
capability or numpy's best SIMD extension), the data cache sizes
(glibc's `getconf LEVEL1_DCACHE_SIZE …`, as the C benchmarks' sysconf, else
/sys/devices/system/cpu/cpu0/cache; 0 where the machine does not say) and the
load average when the line was printed (/proc/loadavg).

  from machine import line
  print(line({"bench": "model_step", ...}))
"""
import functools
import glob
import json
import os
import subprocess
import sys


@functools.lru_cache(maxsize=1)
def _static():
    cpu, ident = "unknown", {}
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if not ln.strip():
                    break  # the end of the first processor's block
                key, _, val = ln.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name":
                    cpu = val
                elif key in ("vendor_id", "cpu family", "model", "stepping"):
                    ident[key] = val
    except OSError:
        pass
    cpu_id = "unknown"
    if ident.get("vendor_id") or ident.get("cpu family"):
        cpu_id = " ".join(filter(None, [ident.get("vendor_id", ""),
                                        f"family {ident.get('cpu family', '?')} model {ident.get('model', '?')}"
                                        f" stepping {ident.get('stepping', '?')}"]))
    caches = {"l1d_bytes": 0, "l2_bytes": 0, "l3_bytes": 0}
    for key, name in (("l1d_bytes", "LEVEL1_DCACHE_SIZE"), ("l2_bytes", "LEVEL2_CACHE_SIZE"),
                      ("l3_bytes", "LEVEL3_CACHE_SIZE")):
        try:
            out = subprocess.run(["getconf", name], capture_output=True, text=True, timeout=5).stdout.strip()
            caches[key] = int(out) if out.isdigit() else 0
        except (OSError, subprocess.SubprocessError):
            pass
    if all(caches.values()):
        return dict(cpu=cpu, cpu_id=cpu_id, **caches)
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            level = open(os.path.join(d, "level")).read().strip()
            kind = open(os.path.join(d, "type")).read().strip()
            size = open(os.path.join(d, "size")).read().strip()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        n = int(size.rstrip("KMG")) * mult
        if level == "1" and kind == "Data" and not caches["l1d_bytes"]:
            caches["l1d_bytes"] = n
        elif level in ("2", "3") and not caches[f"l{level}_bytes"]:
            caches[f"l{level}_bytes"] = n
    return dict(cpu=cpu, cpu_id=cpu_id, **caches)


def cpu_id():
    """The CPU's identity as every benchmark line spells it ("AuthenticAMD family 25 model 1
    stepping 1"; "unknown" where /proc/cpuinfo says nothing). The shell benchmarks call
    `python3 bench/machine.py cpu_id`, so that their lines spell it the same way."""
    return _static()["cpu_id"]


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


@functools.lru_cache(maxsize=1)
def _peer_isa():
    """The ISA the peer's kernels run: PyTorch's "CPU capability usage" when torch is loaded
    (its BLAS is the system's: OpenBLAS picks its own kernels), else numpy's SIMD extensions."""
    torch = sys.modules.get("torch")
    if torch is not None:
        for ln in torch.__config__.show().splitlines():
            if "CPU capability usage" in ln:
                return "torch " + ln.split(":", 1)[1].strip()
    np = sys.modules.get("numpy")
    if np is not None:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as f
            best = [k for k in ("AVX512F", "AVX2", "SSE2") if f.get(k)]
            return "numpy " + (best[0] if best else "baseline")
        except ImportError:
            pass
    return "unknown"


def line(obj):
    """obj (a dict) as one JSON line with the machine's fields added."""
    return json.dumps(dict(obj, **_static(), isa_best=_peer_isa(), loadavg=loadavg()))


if __name__ == "__main__" and sys.argv[1:] == ["cpu_id"]:
    print(cpu_id())
