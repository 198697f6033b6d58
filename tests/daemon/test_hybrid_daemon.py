# SPDX-License-Identifier: MIT
"""ssmd serves a hybrid model (Mamba-1, sliding-window attention, Mamba-2
layers, gated MLPs) end to end.

Usage: test_hybrid_daemon.py SSMD SSM_CTL WORKDIR

Writes a random features model with tests/ref/attn_ref.py (layers mamba1,
attention (4 heads, 2 KV heads, window 16 frames, RoPE), mamba2; the default
denoiser's 48 kHz front end) and 2 s of noise (float WAV, float output: every
bit compared), then checks:
  1. file job: --chunk-frames 1, 7 and 1024 give the same output bytes, as
     long as the input; the reported state bytes equal the per-layer sum
     computed here from the metadata (attn_ref.state_bytes);
  2. a daemon (--input none, loopback, random ports): status's model says
     architecture "hybrid", the layer kinds, attention_window 16 and
     state_bytes = the engine's; the pushed stream's meta says the same;
  3. the same audio pushed in one message, in 4801-sample messages and in
     uneven messages (1, 479, 480, 481, 7001 samples, ...) comes back with
     the file job's bits;
  4. snapshot/restore through the control socket: stream "a" pushes the
     first 96 frames, is snapshotted, then pushes the rest; stream "b"
     pushes the same first part, is reset, gets a's snapshot restored and
     pushes the rest: b's output equals a's (and the file job's) bit for bit,
     while stream "c" (reset, no restore) differs; the window (16 frames) is
     far shorter than the 96 frames before the snapshot, so the KV ring has
     wrapped and its frame counter matters;
  5. snapshots whose attention frame counter is invalid (a fraction, 2^24,
     negative; checksum made valid again) are refused by ssm-ctl restore with
     one line (BAD_SNAPSHOT), exit 1; the daemon keeps serving and the stream
     still ends with the file job's bits.
  6. a model whose state is larger than a control message (one attention
     layer with a window of 70 000 frames: 17.9 MB a stream): snapshot is
     answered SNAPSHOT_TOO_LARGE at once (ssm-ctl: one line, exit 1) instead
     of a reply the client cannot take; ssm-ctl restore and the Python
     Control.restore refuse a 17 MiB file before sending, naming the cap;
     status advertises the cap.
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
import attn_ref  # noqa: E402
from ssmd import protocol as P  # noqa: E402
from test_mamba2_file import FRONTEND, read_wav_data, write_f32_wav  # noqa: E402

RATE, HOP = 48000, 480
KINDS = ["mamba1", "attention", "mamba2"]
WINDOW = 16
FAILS = []


def check(cond, what):
    print(f"{'ok  ' if cond else 'FAIL'} {what}")
    if not cond:
        FAILS.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class Daemon:
    def __init__(self, ssmd, model, home):
        ports = [free_port() for _ in range(3)]
        self.pub, self.ingest, self.control = (f"tcp://127.0.0.1:{p}" for p in ports)
        self.proc = subprocess.Popen(
            [ssmd, "--model", model, "--input", "none", "--pub", self.pub, "--ingest", self.ingest,
             "--control", self.control, "--log-level", "warn"],
            stderr=subprocess.PIPE, env=dict(os.environ, HOME=home))
        self.ctx = zmq.Context.instance()
        deadline = time.time() + 20
        while True:   # up when status answers
            try:
                self.status = self.ctl({"version": 1, "cmd": "status"}, timeout=1000)[0]
                break
            except zmq.Again:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise

    def ctl(self, req, extra=None, timeout=10000):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, timeout)
        s.connect(self.control)
        body = json.dumps(req).encode()
        s.send_multipart([body] if extra is None else [body, extra])
        try:
            frames = s.recv_multipart()
        finally:
            s.close()
        return json.loads(frames[0]), frames[1:]

    def stream_info(self, name):
        for st in self.ctl({"version": 1, "cmd": "streams"})[0]["streams"]:
            if st["name"] == name:
                return st
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        err = self.proc.communicate(timeout=20)[1].decode()
        return self.proc.returncode, err


class Push:
    """One pushed stream over a DEALER: send parts, then collect the audio back."""

    def __init__(self, d, name):
        self.d, self.name = d, name
        self.sock = d.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(d.ingest)
        self.topic = P.format_topic(name, "audio").encode()
        self.seq, self.sent, self.meta = 0, 0, None

    def send(self, part, last=False):
        h = P.Header(kind=1, dtype=1, sample_rate_hz=RATE, rows=len(part), cols=1, seq=self.seq,
                     first_sample=self.sent, flags=P.FLAG_END_OF_STREAM if last else 0)
        self.sock.send_multipart([self.topic, P.encode_header(h), part.astype("<f4").tobytes()])
        self.seq += 1
        self.sent += len(part)

    def wait_processed(self, timeout=30):
        """Until the daemon has stepped every whole hop sent so far."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.d.stream_info(self.name)
            if st and st["samples_in"] == self.sent and st["frames"] >= self.sent // HOP:
                return st
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: not processed within {timeout} s: {st}")

    def collect(self, timeout=60):
        out, deadline = [], time.time() + timeout
        meta_topic = P.format_topic(self.name, "meta").encode()
        while time.time() < deadline:
            if not self.sock.poll(200):
                continue
            t, hb, payload = self.sock.recv_multipart()
            h = P.decode_header(hb, len(payload))
            if t == meta_topic:
                self.meta = json.loads(payload.decode())
                continue
            out.append(np.frombuffer(payload, "<f4"))
            if h.flags & P.FLAG_END_OF_STREAM:
                self.sock.close()
                return np.concatenate(out)
        raise AssertionError(f"{self.name}: no end-of-stream back within {timeout} s")


def push_all(d, name, x, sizes):
    p = Push(d, name)
    i, k = 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        p.send(x[i:i + n], last=i + n >= len(x))
        i, k = i + n, k + 1
    return p.collect(), p.meta


def bits_equal(a, b):
    return len(a) == len(b) and a.tobytes() == b.tobytes()


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    ssmd, ssm_ctl, work = argv[1:]
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "hybrid.safetensors")
    meta = attn_ref.make_model(model, d_model=32, kinds=KINDS, head_dim=16, n_groups=2, d_state=16,
                               d_conv=4, n_features=481, heads="mask,vad", n_mask=481, seed=5,
                               d_intermediate=48, meta_extra=FRONTEND,
                               attn=dict(num_heads=4, num_heads_kv=2, window=WINDOW,
                                         rotary_emb_dim=4))
    want_bytes = attn_ref.state_bytes(meta)
    n = RATE * 2
    rng = np.random.default_rng(0)
    tt = np.arange(n) / RATE
    x = (rng.normal(0, 0.05, n) + 0.2 * np.sin(2 * np.pi * 330 * tt)).astype(np.float32)
    src = os.path.join(work, "in.wav")
    write_f32_wav(src, x, RATE)

    # 1. the file job, in chunks of 1, 7 and 1024 frames
    outs = {}
    for chunk in (1, 7, 1024):
        dst = os.path.join(work, f"out_{chunk}.wav")
        res = subprocess.run([ssmd, "--model", model, "--chunk-frames", str(chunk),
                              "--output-format", "float", src, "-o", dst],
                             capture_output=True, text=True, timeout=120)
        m = re.search(r"state (\d+) bytes", res.stdout + res.stderr)
        got = int(m.group(1)) if m else -1
        if check(res.returncode == 0 and got == want_bytes,
                 f"file job --chunk-frames {chunk}: exit {res.returncode}, state {got} bytes "
                 f"(want {want_bytes})"):
            outs[chunk] = np.frombuffer(read_wav_data(dst)[1], "<f4")
    if len(outs) != 3:
        return 1
    y_file = outs[1]
    check(all(bits_equal(v, y_file) for v in outs.values()) and len(y_file) == n
          and np.any(y_file != 0),
          f"file job: {len(y_file)} samples for {n}, identical bits for --chunk-frames 1, 7, 1024")

    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    d = Daemon(ssmd, model, home)
    try:
        # 2. status and meta describe the model
        want_model = {"architecture": "hybrid", "layers": KINDS, "attention_window": WINDOW,
                      "state_bytes": want_bytes}
        sm = d.status.get("model", {})
        check(all(sm.get(k) == v for k, v in want_model.items()) and sm.get("hash", "").startswith("0x"),
              f"status model: {sm}")

        # 3. whole, 4801-sample and uneven pushes
        y1, meta1 = push_all(d, "whole", x, [n])
        mm = (meta1 or {}).get("model", {})
        check(meta1 is not None and all(mm.get(k) == v for k, v in want_model.items())
              and mm.get("hash") == sm.get("hash") and meta1.get("state_bytes") == want_bytes,
              f"meta of a pushed stream: model {mm}, state_bytes {(meta1 or {}).get('state_bytes')}")
        y2, _ = push_all(d, "chunks", x, [4801])
        y3, _ = push_all(d, "uneven", x, [1, 479, 480, 481, 7001, 13, 960])
        check(bits_equal(y1, y_file) and bits_equal(y2, y_file) and bits_equal(y3, y_file),
              f"pushed in one message / 4801-sample messages / uneven messages: "
              f"{len(y1)}, {len(y2)}, {len(y3)} samples back, the file job's bits: "
              f"{bits_equal(y1, y_file)}, {bits_equal(y2, y_file)}, {bits_equal(y3, y_file)}")

        # 4. snapshot a after 96 frames, restore it into b (reset first), continue
        h = 96 * HOP
        pa, pb, pc = Push(d, "a"), Push(d, "b"), Push(d, "c")
        for p in (pa, pb, pc):
            p.send(x[:h])
        st_a = pa.wait_processed()
        rep, extra = d.ctl({"version": 1, "cmd": "snapshot", "stream": "a"})
        snap = extra[0] if extra else b""
        check(rep.get("ok") and len(snap) == want_bytes and rep.get("bytes") == want_bytes,
              f"snapshot of a after {st_a['frames']} frames: {rep.get('bytes')} bytes "
              f"(state_bytes {want_bytes})")
        pa.send(x[h:], last=True)
        ya = pa.collect()
        pb.wait_processed()
        pc.wait_processed()
        r_reset, _ = d.ctl({"version": 1, "cmd": "reset", "stream": "b"})
        d.ctl({"version": 1, "cmd": "reset", "stream": "c"})
        r_restore, _ = d.ctl({"version": 1, "cmd": "restore", "stream": "b"}, extra=snap)
        check(r_reset.get("ok") and r_restore.get("ok"), f"reset b, restore a's snapshot into b: "
              f"{r_restore}")
        pb.send(x[h:], last=True)
        pc.send(x[h:], last=True)
        yb, yc = pb.collect(), pc.collect()
        diff_c = int(np.sum(yc.view("<u4") != ya.view("<u4"))) if len(yc) == len(ya) else -1
        check(bits_equal(ya, y_file) and bits_equal(yb, ya) and diff_c > 0,
              f"snapshot -> restore -> continue: a = file job {bits_equal(ya, y_file)}, "
              f"b (reset, restored) = a {bits_equal(yb, ya)}; c (reset, no restore) differs from "
              f"a in {diff_c} samples")

        # 5. invalid attention frame counters refused in one line, the daemon serves on
        hdr = 64
        payload = bytearray(snap[hdr:])
        check(struct.unpack_from("<Q", snap, 48)[0] == fnv1a64(payload),
              "snapshot checksum (FNV-1a 64 of the payload at header offset 48) recomputed here")
        # the counter: the attention layer's last 2 floats (after its K and V rings)
        d_inner = 2 * 32
        m1_floats = d_inner * (4 + 16)
        at_floats = 2 * WINDOW * 2 * 8 + 2
        ctr_off = (m1_floats + at_floats - 2) * 4
        lo, hi = struct.unpack_from("<ff", payload, ctr_off)
        check((lo, hi) == (96.0, 0.0), f"a's snapshot frame counter (lo, hi) = ({lo}, {hi}), "
                                        f"96 frames seen")
        pe = Push(d, "e")
        pe.send(x[:h])
        pe.wait_processed()
        snap_file = os.path.join(work, "bad.snap")
        for bad in ((96.5, 0.0), (16777216.0, 0.0), (-1.0, 0.0), (96.0, 0.25)):
            bp = bytearray(payload)
            struct.pack_into("<ff", bp, ctr_off, *bad)
            bh = bytearray(snap[:hdr])
            struct.pack_into("<Q", bh, 48, fnv1a64(bp))
            with open(snap_file, "wb") as f:
                f.write(bytes(bh) + bytes(bp))
            res = subprocess.run([ssm_ctl, "-e", d.control, "restore", "--stream", "e", "--file",
                                  snap_file], capture_output=True, text=True, timeout=30)
            lines = res.stderr.strip().splitlines()
            check(res.returncode == 1 and len(lines) == 1 and "BAD_SNAPSHOT" in lines[0]
                  and "frame counter" in lines[0] and d.proc.poll() is None,
                  f"counter (lo, hi) = {bad} refused: exit {res.returncode}: {res.stderr.strip()}")
        with open(snap_file, "wb") as f:   # the same bytes unmodified: accepted
            f.write(snap)
        res = subprocess.run([ssm_ctl, "-e", d.control, "restore", "--stream", "e", "--file",
                              snap_file], capture_output=True, text=True, timeout=30)
        check(res.returncode == 0, f"the valid snapshot restores through ssm-ctl: exit "
                                   f"{res.returncode} {res.stderr.strip()}")
        pe.send(x[h:], last=True)
        ye = pe.collect()
        st2, _ = d.ctl({"version": 1, "cmd": "status"})
        check(st2.get("ok") and bits_equal(ye, y_file),
              f"after the refusals the daemon serves: status ok, stream e ends with the file "
              f"job's bits {bits_equal(ye, y_file)}; bad_requests {st2['counters']['bad_requests']}")
    finally:
        rc, err = d.stop()
        check(rc == 0, f"daemon exit {rc} on SIGTERM {err.strip()[-300:]}")
    big_window(ssmd, ssm_ctl, work)
    if FAILS:
        print(f"FAILED: {len(FAILS)} check(s)")
        return 1
    return 0


def big_window(ssmd, ssm_ctl, work):
    """6. a state larger than the control socket's 16 MiB frames."""
    model = os.path.join(work, "big_window.safetensors")
    meta = attn_ref.make_model(model, d_model=32, kinds=["attention"], head_dim=16, n_groups=1, d_state=16,
                               d_conv=4, n_features=481, heads="mask,vad", n_mask=481, seed=6,
                               meta_extra=FRONTEND, attn=dict(num_heads=4, num_heads_kv=4, window=70000))
    want = attn_ref.state_bytes(meta)
    cap = P.CONTROL_MAX_MESSAGE_BYTES
    check(want > cap, f"big-window model: state {want} bytes > {cap}")
    d = Daemon(ssmd, model, work)
    try:
        check(d.status["limits"]["control_max_message_bytes"] == cap,
              f"status limits.control_max_message_bytes = {d.status['limits'].get('control_max_message_bytes')}")
        p = Push(d, "big")
        p.send(np.zeros(HOP * 4, np.float32))
        p.wait_processed()
        t0 = time.time()
        res = subprocess.run([ssm_ctl, "-e", d.control, "snapshot", "--stream", "big", "--file",
                              os.path.join(work, "big.snap")], capture_output=True, text=True, timeout=30)
        lines = res.stderr.strip().splitlines()
        check(res.returncode == 1 and len(lines) == 1 and "SNAPSHOT_TOO_LARGE" in lines[0] and str(want) in lines[0]
              and time.time() - t0 < 10, f"snapshot of a {want}-byte state: exit {res.returncode} in "
              f"{time.time() - t0:.1f} s: {res.stderr.strip()}")
        huge = os.path.join(work, "huge.snap")
        with open(huge, "wb") as f:
            f.write(b"\0" * (cap + 1))
        res = subprocess.run([ssm_ctl, "-e", d.control, "restore", "--stream", "big", "--file", huge],
                             capture_output=True, text=True, timeout=30)
        lines = res.stderr.strip().splitlines()
        check(res.returncode != 0 and len(lines) == 1 and str(cap) in lines[0],
              f"ssm-ctl restore of {cap + 1} bytes: exit {res.returncode}: {res.stderr.strip()}")
        from ssmd.control import Control
        try:
            Control(d.control).restore("big", b"\0" * (cap + 1))
            check(False, "Python Control.restore of an oversized snapshot raised nothing")
        except ValueError as e:
            check(str(cap) in str(e), f"Python Control.restore: ValueError: {e}")
        p.send(np.zeros(HOP, np.float32), last=True)
        check(len(p.collect()) == HOP * 5, "the stream still ends with all its samples")
    finally:
        rc, err = d.stop()
        check(rc == 0, f"big-window daemon exit {rc} on SIGTERM {err.strip()[-300:]}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
