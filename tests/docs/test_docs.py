#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Every shell command the docs show runs, or says why it cannot.

Extracts each fenced ```sh, ```bash, ```shell and ```console block of
README.md, clients/python/README.md and docs/*.md (new files are picked up)
and runs it against the built tree; a block that cannot run in CI (a live
microphone, a GPU, apt, systemctl, hours of training) must be preceded by

    <!-- docs-test: skip REASON -->

(blank lines may sit between the marker and the fence).  Conventions
(tests/README.md, "Commands in the docs"):
  - the blocks of one file run in order, each as one `bash -e -o pipefail`
    script, in one temporary folder per file that holds a link to every
    top-level entry of the checkout (`build` links to the build tree), so
    `build/daemon/ssmd`, `examples/...` and `models/...` resolve; ssmd,
    ssm-push, ssm-sub and ssm-ctl are also on PATH;
  - that folder starts with `in.wav` (2 s, 48 kHz mono, 16-bit) and `in.flac`
    (the same, stereo): the docs' usual inputs;
  - ```console blocks run only their `$ ` lines;
  - a block that runs a client (ssm-push, ssm-sub, ssm-ctl, the Python
    package) finds a daemon: before the first such block of a file the test
    starts one ssmd (default model, --input none) on private ipc:// endpoints
    and exports SSMD_PUB, SSMD_INGEST and SSMD_CONTROL, which the clients
    read when given no endpoint; it lasts for the file's blocks (restarted
    when a block stopped it);
  - each block has BLOCK_TIMEOUT_S seconds.
Prints one line per block (ran / skipped and why) and fails when an
unmarked block exits non-zero or times out, or a marker has no reason.
Usage: test_docs.py SOURCE_ROOT BUILD_ROOT"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT, BUILD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
BLOCK_TIMEOUT_S = 90
LANGS = ("sh", "bash", "shell", "console")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
CLIENT = re.compile(r"\bssm-(push|sub|ctl)\b|\bimport ssmd\b|\bfrom ssmd\b")


def doc_files():
    files = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "clients", "python", "README.md")]
    files += sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return [f for f in files if os.path.isfile(f)]


def blocks(path):
    """[(line, lang, text, directive, reason)] of the shell blocks in path."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang in LANGS:
            k, directive, reason = i - 1, None, ""
            while k >= 0 and not lines[k].strip():
                k -= 1
            mk = MARKER.match(lines[k]) if k >= 0 else None
            if mk:
                directive, reason = mk.group(1), mk.group(2)
            text = lines[i + 1:j]
            if lang == "console":
                text = [ln.strip()[2:] for ln in text if ln.strip().startswith("$ ")]
            out.append((i + 1, lang, "\n".join(text), directive, reason))
        i = j + 1
    return out


def make_workdir():
    d = tempfile.mkdtemp(prefix="ssmd-docs-")
    for name in os.listdir(ROOT):
        if name in ("build",) or name.startswith(".git"):
            continue
        os.symlink(os.path.join(ROOT, name), os.path.join(d, name))
    os.symlink(BUILD, os.path.join(d, "build"))
    import soundfile as sf
    rate = 48000
    t = np.arange(2 * rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
         + 0.02 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    sf.write(os.path.join(d, "in.wav"), x, rate, subtype="PCM_16")
    sf.write(os.path.join(d, "in.flac"), np.stack([x, 0.5 * x], 1), rate, subtype="PCM_16")
    return d


class Daemon:
    """One ssmd serving client streams on ipc:// endpoints in its own
    temporary folder; .env() holds the SSMD_* variables that name them."""

    def __init__(self, env):
        self.dir = tempfile.mkdtemp(prefix="ssmd-docs-ep-")
        self.ep = {k: f"ipc://{self.dir}/{k}" for k in ("pub", "ingest", "control")}
        self.log = open(os.path.join(self.dir, "ssmd.log"), "w+")
        cmd = [os.path.join(BUILD, "daemon", "ssmd"), "--input", "none", "--log-level", "warn",
               "--progress", "never", "--pub", self.ep["pub"], "--ingest", self.ep["ingest"],
               "--control", self.ep["control"]]
        # HOME: no user config of the machine running the test is read
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=dict(env, HOME=self.dir))
        ctl = [os.path.join(BUILD, "clients", "ssm-ctl"), "-e", self.ep["control"], "--timeout", "1",
               "status"]
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                self.log.seek(0)
                raise RuntimeError(f"ssmd for the docs did not start: {' '.join(cmd)}: "
                                   f"{self.log.read()[-500:]}")
            if subprocess.run(ctl, capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.1)

    def alive(self):
        return self.proc.poll() is None

    def env(self):
        return {"SSMD_PUB": self.ep["pub"], "SSMD_INGEST": self.ep["ingest"],
                "SSMD_CONTROL": self.ep["control"]}

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.join(BUILD, "daemon"), os.path.join(BUILD, "clients"),
                                   env.get("PATH", "")])
    env["PYTHONPATH"] = os.path.join(ROOT, "clients", "python")
    env["MPLBACKEND"] = "Agg"
    failures, n_run, n_skip = [], 0, 0
    t_all = time.monotonic()
    for path in doc_files():
        rel = os.path.relpath(path, ROOT)
        found = blocks(path)
        if not found:
            continue
        work = make_workdir()
        daemon = None
        try:
            for line, lang, text, directive, reason in found:
                where = f"{rel}:{line}"
                if directive == "skip":
                    if not reason:
                        failures.append(f"{where}: docs-test: skip needs a reason")
                        print(f"FAIL {where}: skip marker without a reason")
                    else:
                        n_skip += 1
                        print(f"skip {where} ({lang}): {reason}")
                    continue
                if directive is not None:
                    failures.append(f"{where}: unknown directive docs-test: {directive}")
                    print(f"FAIL {where}: unknown directive 'docs-test: {directive}' (only 'skip REASON')")
                    continue
                if not text.strip():
                    continue
                block_env, with_daemon = env, ""
                if CLIENT.search(text):
                    if daemon is not None and not daemon.alive():
                        daemon.close()
                        daemon = None
                    if daemon is None:
                        daemon = Daemon(env)
                    block_env, with_daemon = dict(env, **daemon.env()), ", with ssmd"
                t0 = time.monotonic()
                try:
                    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", text], cwd=work, env=block_env,
                                       capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
                                       stdin=subprocess.DEVNULL)
                    rc, err = r.returncode, (r.stderr or "").strip()
                except subprocess.TimeoutExpired:
                    rc, err = None, f"timed out after {BLOCK_TIMEOUT_S} s"
                el = time.monotonic() - t0
                n_run += 1
                cmds = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
                if rc == 0:
                    print(f"ok   {where} ({lang}{with_daemon}): {len(cmds)} command(s) in {el:.1f} s")
                else:
                    last = err.splitlines()[-3:] if err else []
                    print(f"FAIL {where} ({lang}{with_daemon}): exit {rc} after {el:.1f} s: {' | '.join(last)}")
                    failures.append(f"{where}: exit {rc}")
        finally:
            if daemon is not None:
                daemon.close()
            shutil.rmtree(work, ignore_errors=True)
    print(f"docs: {n_run} block(s) run, {n_skip} skipped with a reason, {len(failures)} failure(s), "
          f"{time.monotonic() - t_all:.1f} s")
    if failures:
        print("failed: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
