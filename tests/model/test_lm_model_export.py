# SPDX-License-Identifier: MIT
"""train/lm_model.py's layer kinds → its exporter → the C engine gives PyTorch's logits.

Usage: test_lm_model_export.py MODEL_RUN WORKDIR

For each stack — mamba1, mamba2 (2 groups of heads), attention (a window
shorter than the sequence, partial RoPE) and a mix of the three — builds a
small random TokenLM, perturbs the parameters the initialiser leaves regular
(A_log, D, dt biases, norm weights, conv biases), exports it with
lm_model.export, runs the C engine on a random token sequence (model_run:
ssm_step one token at a time, ssm_forward in chunks of 16, and the chunked SSD
forward) and compares the logits with the module's float64 sequential
forward: max |C − torch| / max |torch| <= 1e-4.  Also checks that the
training forward (chunked scan / chunked SSD) equals the sequential one, and
that from_file rebuilds the same model.  Needs torch (exit status 77 without).
"""
import os
import subprocess
import sys

import numpy as np

try:
    import torch
except ImportError:
    print("torch is not importable: skipped")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "train"))
import lm_model as L  # noqa: E402

TOL = 1e-4
T = 60

CASES = {
    "mamba1": dict(d_model=24, n_layer=2, d_state=4, kinds=["mamba1"] * 2),
    "mamba2": dict(d_model=24, n_layer=2, d_state=4, kinds=["mamba2"] * 2,
                   m2=dict(d_state=8, head_dim=12, n_groups=2)),
    "attention": dict(d_model=24, n_layer=2, d_state=4, kinds=["attention"] * 2,
                      attn=dict(num_heads=3, head_dim=8, window=9, rotary_dim=6)),
    "mixed": dict(d_model=24, n_layer=3, d_state=4, kinds=["mamba1", "attention", "mamba2"],
                  m2=dict(d_state=8, head_dim=8, n_groups=1),
                  attn=dict(num_heads=2, head_dim=12, window=17)),
}


def perturb(net, g):
    with torch.no_grad():
        for name, p in net.named_parameters():
            r = torch.rand(p.shape, generator=g, dtype=p.dtype)
            if name.endswith(("norm.weight", "norm_f.weight")):
                p.copy_(0.8 + 0.4 * r)
            elif name.endswith(("mixer.D", "conv1d.bias", "dt_bias", "dt_proj.bias")):
                p.add_(0.4 * (r - 0.5))
            elif name.endswith("A_log"):
                p.add_(0.5 * (r - 0.5))
            elif name.endswith("embedding.weight"):
                p.mul_(2.0)


def run_c(model_run, path, mode, arg, tokens, work, tag, extra=()):
    fin, fout = os.path.join(work, tag + ".in"), os.path.join(work, tag + ".out")
    tokens.astype("<i4").tofile(fin)
    res = subprocess.run([model_run, path, mode, str(arg), str(len(tokens)), fin, fout, *extra],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"model_run {mode}: {res.stderr.strip()}")
    return np.fromfile(fout, dtype="<f4")


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    model_run, work = argv[1], argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    failures = []
    for i, (tag, kw) in enumerate(CASES.items()):
        torch.manual_seed(100 + i)
        net = L.TokenLM(**kw)
        perturb(net, torch.Generator().manual_seed(200 + i))
        net.eval()
        path = os.path.join(work, tag + ".safetensors")
        L.export(net, path)
        tokens = np.random.default_rng(i).integers(0, L.VOCAB, T).astype(np.int64)
        x = torch.from_numpy(tokens)[None]
        with torch.no_grad():
            ref = net.double()(x, sequential=True)[0].numpy()
            train = net(x)[0].numpy()
            back = L.from_file(path)[0].double()(x, sequential=True)[0].numpy()
        scale = np.max(np.abs(ref))
        worst = {"torch chunked": np.max(np.abs(train - ref)) / scale,
                 "from_file": np.max(np.abs(back - ref)) / scale}
        modes = [("step", 1, ()), ("forward", 16, ())]
        if "mamba2" in kw["kinds"]:
            modes.append(("forward", 16, ("ssd",)))
        try:
            for mode, arg, extra in modes:
                what = mode + ("-ssd" if extra else "")
                got = run_c(model_run, path, mode, arg, tokens, work, f"{tag}_{what}", extra)
                got = got.reshape(T, -1)[:, -L.VOCAB:]
                worst["C " + what] = np.max(np.abs(got - ref)) / scale
        except RuntimeError as e:
            failures.append(tag)
            print(f"FAIL {tag}: {e}")
            continue
        ok = max(worst.values()) <= TOL
        if not ok:
            failures.append(tag)
        print(f"{'ok  ' if ok else 'FAIL'} {tag:9s} {'+'.join(kw['kinds'])}: "
              + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()) + f" (logits, relative; tolerance {TOL:g})")
    if failures:
        print("failed: " + ", ".join(failures))
        return 1
    print(f"all {len(CASES)} stacks agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
