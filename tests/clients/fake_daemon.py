#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A fake ssmd for the client tests, written from docs/protocol.md alone (it
does not import the clients' codec, so the two readings of the spec meet in
the tests).

It binds the three sockets of the protocol:
  pub     XPUB   a scripted stream (meta, event start, per frame audio +
                 features + vad, end-of-stream flags, event end); meta is
                 re-sent whenever a matching subscription arrives (XPUB_VERBOSE)
  ingest  ROUTER pushed audio comes back to the pusher (and on pub) as
                 "processed" audio = mono downmix x 0.5, re-cut into --hop-out
                 sample blocks; the end-of-stream flag flushes the remainder;
                 malformed messages get one error reply on _ssmd/event/
  control ROUTER status, streams, reset, snapshot, restore, stop

Endpoints default to tcp://127.0.0.1:* (a free port each); once bound, the
actual endpoints are written as JSON to --ready FILE.  --log FILE gets one JSON
line per published message (what a subscriber should see).
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time

import numpy as np
import zmq

# --- the header, from the table in docs/protocol.md -------------------------
HEADER = struct.Struct("<4sHHHHIIIIIQQQQ")  # magic version header_bytes kind dtype flags
#                                             rate rows cols hop seq first_sample capture_ns epoch
KIND = {"audio": 1, "features": 2, "vad": 3, "mask": 4, "logits": 5, "embedding": 6,
        "meta": 7, "event": 8}
DTYPE_SIZE = {1: 4, 2: 2, 3: 1, 4: 1}
F32, I16, UTF8 = 1, 2, 4
EOS = 1 << 3
STATE_RESET = 1 << 4
MAX_PAYLOAD = 64 << 20
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
SNAP_MAGIC = b"SSMS"


def header(kind, dtype, rate, rows, cols, hop=0, seq=0, first=0, flags=0, epoch=0):
    return HEADER.pack(b"SSMD", 1, 64, kind, dtype, flags, rate, rows, cols, hop, seq, first,
                       0, epoch)


def check_header(buf, payload_len):
    """Returns (fields dict, None) or (None, error code) per the rejection rules."""
    if len(buf) < 64:
        return None, "SHORT"
    (magic, version, hbytes, kind, dtype, flags, rate, rows, cols, hop, seq, first, cap,
     epoch) = HEADER.unpack_from(buf)
    if magic != b"SSMD":
        return None, "BAD_MAGIC"
    if version == 0 or version > 1:
        return None, "BAD_VERSION"
    if hbytes < 64 or hbytes > len(buf):
        return None, "BAD_LENGTH"
    if not 1 <= kind <= 8:
        return None, "BAD_KIND"
    if dtype not in DTYPE_SIZE:
        return None, "BAD_DTYPE"
    size = rows * cols * DTYPE_SIZE[dtype]
    if size > MAX_PAYLOAD or size != payload_len:
        return None, "BAD_SIZE"
    return dict(kind=kind, dtype=dtype, flags=flags, rate=rate, rows=rows, cols=cols, hop=hop,
                seq=seq, first=first, epoch=epoch), None


def valid_name(s):
    return 1 <= len(s) <= 64 and not s.startswith(".") and set(s) <= NAME_CHARS


def parse_topic(t):
    """'<s>/<kind>/[more/]' -> (stream, kind word) or None."""
    try:
        t = t.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = t.split("/")
    if len(parts) < 3 or parts[-1] != "" or not valid_name(parts[0]) or parts[1] not in KIND:
        return None
    return parts[0], parts[1]


class Stream:
    def __init__(self, name, source, rate, owner, n_state, model_hash):
        self.name, self.source, self.rate, self.owner = name, source, rate, owner
        self.cols = None
        self.seq = {}                   # topic -> next seq
        self.frames = 0
        self.first_sample = 0           # next input sample
        self.out_samples = 0            # processed samples emitted
        self.pending = np.zeros(0, np.float32)
        self.state_resets = 0
        rng = np.random.default_rng(sum(name.encode()) + 1)
        self.state = rng.standard_normal(n_state).astype(np.float32)
        self.model_hash = model_hash

    def next_seq(self, kind):
        s = self.seq.get(kind, 0)
        self.seq[kind] = s + 1
        return s

    def snapshot(self):
        return SNAP_MAGIC + struct.pack("<Q", self.model_hash) + self.state.tobytes()


class Fake:
    def __init__(self, a):
        self.a = a
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.ingest = self.ctx.socket(zmq.ROUTER)
        self.control = self.ctx.socket(zmq.ROUTER)
        for s in (self.pub, self.ingest, self.control):
            s.setsockopt(zmq.LINGER, 200)
        self.pub.bind(a.pub)
        self.ingest.bind(a.ingest)
        self.control.bind(a.control)
        self.epoch = random.getrandbits(64)
        self.model_hash = 0x0123456789ABCDEF
        self.t0 = time.monotonic()
        self.counters = dict(frames=0, dropped_frames=0, published=0, publish_dropped=0,
                             bad_messages=0, bad_requests=0, state_resets=0,
                             capture_overflows=0, nonfinite_samples=0)
        self.streams = {}
        self.log = open(a.log, "w") if a.log else None
        self.script = None              # the scripted Stream while it runs
        self.script_frame = 0
        self.script_next_t = None
        self.script_done = False
        self.running = True
        if a.start == "now":
            self.start_script()
        eps = {"pub": self.last(self.pub), "ingest": self.last(self.ingest),
               "control": self.last(self.control), "pid": os.getpid()}
        if a.ready:
            tmp = a.ready + ".tmp"
            with open(tmp, "w") as f:
                json.dump(eps, f)
            os.replace(tmp, a.ready)

    @staticmethod
    def last(sock):
        return sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    # --- data plane --------------------------------------------------------
    def publish(self, st, kind, dtype, payload, rows, cols, first=0, flags=0):
        seq = st.next_seq(kind)
        topic = f"{st.name}/{kind}/".encode()
        if self.a.drop_seq and kind == "audio" and st is self.script and seq in self.a.drop_seq:
            return seq                  # a simulated drop: the seq is used, nothing is sent
        h = header(KIND[kind], dtype, st.rate, rows, cols, self.a.hop, seq, first, flags,
                   self.epoch)
        if self.log:  # logged before it is sent: a test may read the log as soon as it has it
            self._log(topic, seq, first, flags, rows, cols, st, dtype, payload)
        self.pub.send_multipart([topic, h, payload])
        self.counters["published"] += 1
        return seq

    def _log(self, topic, seq, first, flags, rows, cols, st, dtype, payload):
        rec = dict(topic=topic.decode(), seq=seq, first_sample=first, flags=flags,
                   rows=rows, cols=cols, sample_rate_hz=st.rate)
        if dtype == UTF8:
            rec["json"] = json.loads(payload.decode())
        else:
            rec["values"] = np.frombuffer(payload, np.float32).tolist()
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()

    def model_info(self):
        """status's and meta's "model" object (docs/protocol.md)."""
        return {"name": "fake", "hash": f"0x{self.model_hash:016x}", "architecture": "mamba1",
                "layers": ["mamba1"], "state_bytes": 4 * self.a.n_state}

    def meta(self, st):
        return json.dumps({
            "stream": st.name, "source": st.source, "sample_rate_hz": st.rate, "channels": 1,
            "model_rate_hz": 16000, "n_fft": 512, "hop_samples": self.a.hop,
            "latency_samples": self.a.hop,
            "features": {"kind": "log_mel", "n": self.a.n_features}, "heads": ["vad"],
            "model": self.model_info(), "state_bytes": 4 * self.a.n_state, "epoch": f"0x{self.epoch:016x}"}).encode()

    def publish_text(self, st, kind, obj_bytes, flags=0):
        self.publish(st, kind, UTF8, obj_bytes, 1, len(obj_bytes), st.first_sample, flags)

    def start_script(self):
        st = Stream(self.a.stream, "file", self.a.rate, None, self.a.n_state, self.model_hash)
        self.streams[st.name] = st
        self.script = st
        self.publish_text(st, "meta", self.meta(st))
        self.publish_text(st, "event", b'{"event":"start"}')
        self.script_next_t = time.monotonic()

    def script_step(self):
        st, k, a = self.script, self.script_frame, self.a
        last = a.frames > 0 and k == a.frames - 1
        fl = EOS if last else 0
        n = np.arange(k * a.hop, (k + 1) * a.hop)
        audio = (0.25 * np.sin(2 * math.pi * 440.0 * n / a.rate)).astype(np.float32)
        if a.channels > 1:  # channel c: the sine / (c + 1), interleaved
            audio = (audio[:, None] / np.arange(1, a.channels + 1, dtype=np.float32)).astype(np.float32)
        feats = np.sin(0.3 * k + 0.7 * np.arange(a.n_features)).astype(np.float32)
        vad = np.array([0.5 + 0.5 * math.sin(0.2 * k)], np.float32)
        first = k * a.hop
        self.publish(st, "audio", F32, audio.tobytes(), a.hop, a.channels, first, fl)
        self.publish(st, "features", F32, feats.tobytes(), 1, a.n_features, first, fl)
        self.publish(st, "vad", F32, vad.tobytes(), 1, 1, first, fl)
        st.frames += 1
        st.first_sample = (k + 1) * a.hop
        self.counters["frames"] += 1
        self.script_frame += 1
        if last:
            self.publish_text(st, "event", b'{"event":"end"}')
            del self.streams[st.name]
            self.script = None
            self.script_done = True
        else:
            self.script_next_t += a.interval

    def on_subscription(self, msg):
        if not msg or msg[0] != 1:
            return                      # an unsubscription
        prefix = msg[1:]
        if self.a.start == "on-subscribe" and self.script is None and not self.script_done:
            self.start_script()         # its meta goes to this subscriber already
            return
        for st in list(self.streams.values()):
            if f"{st.name}/meta/".encode().startswith(prefix):
                self.publish_text(st, "meta", self.meta(st))

    # --- ingest ------------------------------------------------------------
    def error_reply(self, ident, code, message, stream=None):
        self.counters["bad_messages"] += 1
        body = json.dumps({"event": "error", "error": code, "message": message,
                           "stream": stream}).encode()
        h = header(KIND["event"], UTF8, 0, 1, len(body), epoch=self.epoch)
        self.ingest.send_multipart([ident, b"_ssmd/event/", h, body])

    def send_result(self, ident, st, block, flags):
        seq = st.next_seq("result")
        h = header(KIND["audio"], F32, st.rate, len(block), 1, self.a.hop, seq, st.out_samples,
                   flags, self.epoch)
        topic = f"{st.name}/audio/".encode()
        self.ingest.send_multipart([ident, topic, h, block.tobytes()])
        self.publish(st, "audio", F32, block.tobytes(), len(block), 1, st.out_samples, flags)
        st.out_samples += len(block)

    def on_ingest(self, frames):
        ident, body = frames[0], frames[1:]
        if len(body) != 3:
            return self.error_reply(ident, "BAD_FRAMES", f"{len(body)} frames, expected 3")
        topic, hbuf, payload = body
        t = parse_topic(topic)
        if t is None or t[1] != "audio" or t[0].startswith("_") or \
                topic.decode(errors="replace") != f"{t[0]}/audio/":
            return self.error_reply(ident, "BAD_TOPIC", f"topic {topic[:80]!r} is not <s>/audio/")
        name = t[0]
        h, err = check_header(hbuf, len(payload))
        if err:
            return self.error_reply(ident, err, f"header rejected: {err}", name)
        if h["kind"] != KIND["audio"]:
            return self.error_reply(ident, "BAD_KIND", "ingest takes audio only", name)
        if h["dtype"] not in (F32, I16):
            return self.error_reply(ident, "BAD_DTYPE", "ingest takes f32 or i16", name)
        if h["rate"] == 0 or (h["cols"] == 0 and h["rows"] > 0):
            return self.error_reply(ident, "BAD_SIZE", "sample_rate_hz and channels must be > 0",
                                    name)
        st = self.streams.get(name)
        if st is None:
            if name == self.a.stream or len(self.streams) >= self.a.max_streams:
                if name == self.a.stream:
                    return self.error_reply(ident, "NAME_IN_USE",
                                            f"stream {name} belongs to a source of the daemon",
                                            name)
                return self.error_reply(ident, "TOO_MANY_STREAMS",
                                        f"{len(self.streams)} streams already", name)
            st = Stream(name, "client", h["rate"], ident, self.a.n_state, self.model_hash)
            st.cols = h["cols"] or None
            self.streams[name] = st
            self.publish_text(st, "meta", self.meta(st))
            self.publish_text(st, "event", b'{"event":"start"}')
        elif st.owner != ident:
            return self.error_reply(ident, "NAME_IN_USE", f"stream {name} belongs to another client",
                                    name)
        elif h["rate"] != st.rate or (h["cols"] and st.cols and h["cols"] != st.cols):
            return self.error_reply(ident, "RATE_CHANGED",
                                    f"{h['rate']} Hz x {h['cols']} after {st.rate} Hz x {st.cols}",
                                    name)
        if st.cols is None and h["cols"]:
            st.cols = h["cols"]
        if h["rows"]:
            if h["dtype"] == F32:
                x = np.frombuffer(payload, "<f4").reshape(h["rows"], h["cols"])
            else:
                x = (np.frombuffer(payload, "<i2").astype(np.float32) / np.float32(32768)).reshape(
                    h["rows"], h["cols"])
            mono = x[:, 0].copy()
            for c in range(1, h["cols"]):
                mono = mono + x[:, c]
            if h["cols"] > 1:
                mono = mono * np.float32(1.0 / h["cols"])
            st.pending = np.concatenate([st.pending, mono.astype(np.float32) * np.float32(0.5)])
            st.first_sample += h["rows"]
            st.frames += 1
            self.counters["frames"] += 1
        hop = self.a.hop_out
        while len(st.pending) >= hop and not (h["flags"] & EOS and len(st.pending) == hop):
            self.send_result(ident, st, st.pending[:hop], 0)
            st.pending = st.pending[hop:]
        if h["flags"] & EOS:
            self.send_result(ident, st, st.pending, EOS)
            st.pending = np.zeros(0, np.float32)
            self.publish_text(st, "event", b'{"event":"end"}')
            del self.streams[name]

    # --- control -----------------------------------------------------------
    def on_control(self, frames):
        ident = frames[0]
        try:
            d = frames.index(b"", 1)
        except ValueError:
            d = None
        envelope = frames[:d + 1] if d is not None else [ident, b""]
        body = frames[d + 1:] if d is not None else frames[1:]
        reply, extra = self.command(body)
        if not reply.get("ok"):
            self.counters["bad_requests"] += 1
        out = envelope + [json.dumps(reply).encode()] + ([extra] if extra is not None else [])
        self.control.send_multipart(out)
        if reply.get("ok") and reply.get("_stop"):
            pass

    def command(self, body):
        def fail(code, msg, rid=None):
            r = {"ok": False, "error": code, "message": msg}
            if rid is not None:
                r["id"] = rid
            return r, None
        try:
            req = json.loads(body[0].decode("utf-8")) if body else None
        except (UnicodeDecodeError, ValueError):
            req = None
        if not isinstance(req, dict):
            return fail("BAD_JSON", "the request is not a JSON object")
        rid = req.get("id")
        if req.get("version") != 1:
            return fail("BAD_VERSION", f"version {req.get('version')!r}, this daemon speaks 1", rid)
        cmd = req.get("cmd")
        if cmd not in ("status", "streams", "reset", "snapshot", "restore", "stop"):
            return fail("UNKNOWN_COMMAND", f"unknown command {cmd!r}", rid)
        ok = {"ok": True}
        if rid is not None:
            ok["id"] = rid
        st = None
        if cmd in ("reset", "snapshot", "restore"):
            name = req.get("stream")
            if not isinstance(name, str):
                return fail("MISSING_FIELD", f"{cmd} needs \"stream\"", rid)
            st = self.streams.get(name)
            if st is None:
                return fail("NO_SUCH_STREAM", f"no stream {name!r}", rid)
        if cmd == "status":
            ok.update(epoch=f"0x{self.epoch:016x}", uptime_s=time.monotonic() - self.t0,
                      model=self.model_info(),
                      streams=len(self.streams), counters=dict(self.counters))
        elif cmd == "streams":
            ok["streams"] = [dict(name=s.name, source=s.source, sample_rate_hz=s.rate,
                                  frames=s.frames, first_sample=s.first_sample,
                                  state_resets=s.state_resets) for s in self.streams.values()]
        elif cmd == "reset":
            st.state[:] = 0
            st.state_resets += 1
            self.counters["state_resets"] += 1
            self.publish_text(st, "event", b'{"event":"reset","reason":"request"}')
        elif cmd == "snapshot":
            snap = st.snapshot()
            ok["bytes"] = len(snap)
            return ok, snap
        elif cmd == "restore":
            if len(body) < 2:
                return fail("BAD_SNAPSHOT", "restore needs a second frame with the snapshot", rid)
            snap = body[1]
            if len(snap) < 12 or snap[:4] != SNAP_MAGIC:
                return fail("BAD_SNAPSHOT", "not a snapshot", rid)
            if struct.unpack_from("<Q", snap, 4)[0] != self.model_hash:
                return fail("SNAPSHOT_MISMATCH", "the snapshot is of another model", rid)
            if len(snap) != 12 + 4 * self.a.n_state:
                return fail("BAD_SNAPSHOT", f"{len(snap)} bytes, expected {12 + 4 * self.a.n_state}",
                            rid)
            st.state = np.frombuffer(snap, np.float32, offset=12).copy()
        elif cmd == "stop":
            self.running = False
        return ok, None

    # --- loop ----------------------------------------------------------------
    def run(self):
        poller = zmq.Poller()
        for s in (self.pub, self.ingest, self.control):
            poller.register(s, zmq.POLLIN)
        end_t = time.monotonic() + self.a.lifetime
        while self.running and time.monotonic() < end_t:
            timeout = 100
            if self.script is not None:
                timeout = max(0, int((self.script_next_t - time.monotonic()) * 1000))
            ev = dict(poller.poll(timeout))
            if self.pub in ev:
                self.on_subscription(self.pub.recv())
            if self.ingest in ev:
                self.on_ingest(self.ingest.recv_multipart())
            if self.control in ev:
                self.on_control(self.control.recv_multipart())
            while self.script is not None and time.monotonic() >= self.script_next_t:
                self.script_step()
        self.ctx.destroy(linger=200)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pub", default="tcp://127.0.0.1:*")
    ap.add_argument("--ingest", default="tcp://127.0.0.1:*")
    ap.add_argument("--control", default="tcp://127.0.0.1:*")
    ap.add_argument("--ready", help="write the bound endpoints here (JSON)")
    ap.add_argument("--log", help="one JSON line per published message")
    ap.add_argument("--stream", default="demo", help="name of the scripted stream")
    ap.add_argument("--frames", type=int, default=20, help="frames of the script (0: endless)")
    ap.add_argument("--rate", type=int, default=16000)
    ap.add_argument("--channels", type=int, default=1, help="channels of the script's audio")
    ap.add_argument("--hop", type=int, default=256)
    ap.add_argument("--hop-out", type=int, default=256, help="block size of pushed results")
    ap.add_argument("--n-features", type=int, default=8)
    ap.add_argument("--n-state", type=int, default=32, help="floats of fake model state")
    ap.add_argument("--interval", type=float, default=0.002, help="seconds between frames")
    ap.add_argument("--start", choices=["on-subscribe", "now", "never"], default="on-subscribe")
    ap.add_argument("--drop-seq", type=int, action="append", default=[],
                    help="do not publish the script's audio message with this seq")
    ap.add_argument("--max-streams", type=int, default=8)
    ap.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    a = ap.parse_args()
    Fake(a).run()


if __name__ == "__main__":
    sys.exit(main())
