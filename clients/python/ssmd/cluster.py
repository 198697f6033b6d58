# SPDX-License-Identifier: MIT
"""Cluster-aware clients (docs/cluster.md): find a stream's owner in etcd,
push to it, and survive the owner's loss.

    d = Directory("etcd://127.0.0.1:2379")     # shared by any number of pushers
    p = ClusterPusher(d, "room1")
    for block in blocks:
        p.push(block, 16000)                     # blocks while the window is full
    p.finish()
    out = p.collect()                            # (n, 1) float32, every pushed sample

Placement (docs/cluster.md, "Placement"): the stream's owner key
/ssmd/owners/STREAM when there is one, else the live member (/ssmd/members/)
with the highest rendezvous weight for the stream's placement key; a
NOT_OWNER reply is followed to the member it names.

Failover (docs/cluster.md, "Clients across a failover"): a ClusterPusher
keeps the audio pushed since the last checkpoint its owner acknowledged (the
`checkpoint` event's input_sample, once the output up to its output_sample
has come back).  When the owner is lost (its connection drops, no answer
for `timeout` s, it cannot be reached) it reads etcd again until another
member (or the same node restarted: another epoch) is the stream's owner or
placement, i.e. until the dead owner's lease has expired, connects there and
replays the kept audio from that input_sample; the new owner resumes from the
checkpoint (meta "resumed") and its output is deduplicated by first_sample,
so the collected output is bit-identical to an uninterrupted run.  Without
checkpoints (daemons without --checkpoint-s) everything is kept and replayed
from sample 0: the new owner starts the stream afresh.

Hand-over (docs/cluster.md, "A member joining"): a ClusterPusher sets
protocol.FLAG_FOLLOWS on its messages, so its stream may be handed over to a
member that joins and becomes its placement; the owner's "moved" event (or
NOT_OWNER after the stream was open) is followed like a failover, without
waiting for a lease: etcd's placement is the next owner at once.

Threads: none of these classes is thread-safe; one thread drives them (a
Directory may be shared by the pushers of that thread)."""
import base64
import bisect
import dataclasses
import json
import re
import time
import urllib.request

import numpy as np
import zmq

from . import protocol
from ._net import DaemonUnreachable, SocketClient
from .subscriber import RCVBUF_BYTES, RCVHWM
from .pusher import (ERROR_TOPIC, as_frames, PUSH_MESSAGE_BYTES, PUSH_WINDOW_BEFORE_META, PUSH_WINDOW_FRAMES,
                     DaemonError)

MEMBERS_PREFIX = "/ssmd/members/"
OWNERS_PREFIX = "/ssmd/owners/"
MAX_ENDPOINTS = 8

# ---- placement (docs/cluster.md, "Placement") --------------------------------

_M64 = (1 << 64) - 1


def hrw_weight(member, key):
    """The rendezvous weight (unsigned 64-bit int) of member (str) for the
    placement key (str): FNV-1a 64 over member, a 0 byte and key, then
    splitmix64's finalizer.  Pure."""
    h = 0xcbf29ce484222325
    for b in member.encode() + b"\0" + key.encode():
        h = ((h ^ b) * 0x100000001b3) & _M64
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & _M64
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & _M64
    return h ^ (h >> 31)


_CHANNEL_SUFFIX = re.compile(r"(.+)\.[0-9]+\Z", re.S)


def hrw_key(stream):
    """The stream's placement key: its name without a trailing ".<digits>"
    (a multi-channel file's NAME.0, NAME.1, ... go together)."""
    m = _CHANNEL_SUFFIX.match(stream)
    return m.group(1) if m else stream


def hrw_pick(stream, members):
    """The member (of the iterable of node names) that gets stream: the
    highest weight for hrw_key(stream), equal weights to the smaller name;
    None when there is no member."""
    key = hrw_key(stream)
    best = None
    for m in sorted(members):
        w = hrw_weight(m, key)
        if best is None or w > best[0]:
            best = (w, m)
    return best[1] if best else None


# ---- etcd (v3 JSON gateway, as the daemon uses it: daemon/src/etcd.c) -------

class ClusterUnavailable(ConnectionError):
    """No etcd endpoint answered (or it answered an error)."""


def parse_etcd_url(url):
    """"etcd://HOST:PORT[,HOST:PORT...]" (the daemon's --cluster syntax, at
    most 8 endpoints) -> ["http://HOST:PORT", ...]; ValueError (one line)
    otherwise."""
    if not isinstance(url, str) or not url.startswith("etcd://"):
        raise ValueError(f"cluster: expected etcd://HOST:PORT[,HOST:PORT...], got {url!r}")
    out = []
    for hp in url[len("etcd://"):].split(","):
        host, _, port = hp.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "/@ "):
            raise ValueError(f"cluster: {hp!r} in {url!r} is not HOST:PORT")
        out.append(f"http://{hp}")
    if len(out) > MAX_ENDPOINTS:
        raise ValueError(f"cluster: {len(out)} endpoints in {url!r}, at most {MAX_ENDPOINTS}")
    return out


class Etcd:
    """Reads keys from etcd through its v3 JSON gateway.  url: as
    parse_etcd_url; timeout: seconds per endpoint tried (the one that
    answered last first).  Not thread-safe."""

    def __init__(self, url, timeout=1.0):
        self.url, self.endpoints, self.timeout = url, parse_etcd_url(url), timeout
        self._current = 0

    def range(self, key, prefix=False):
        """{key (str): value (bytes)} of key, or of every key starting with it
        when prefix.  Raises ClusterUnavailable (one line naming the
        endpoints) when none answers."""
        return {k: v for k, (v, _) in self.range_leases(key, prefix).items()}

    def range_leases(self, key, prefix=False):
        """As range, with each key's lease: {key: (value, lease (int, 0 when
        the key has none))}."""
        body = {"key": base64.b64encode(key.encode()).decode()}
        if prefix:
            end = bytearray(key.encode())
            end[-1] += 1                # keys here end in '/', never 0xff
            body["range_end"] = base64.b64encode(bytes(end)).decode()
        data = json.dumps(body).encode()
        errors = []
        n = len(self.endpoints)
        for k in range(n):
            i = (self._current + k) % n
            req = urllib.request.Request(self.endpoints[i] + "/v3/kv/range", data=data,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as r:
                    j = json.load(r)
            except (OSError, ValueError) as e:
                errors.append(f"{self.endpoints[i]}: {getattr(e, 'reason', e)}")
                continue
            self._current = i
            return {base64.b64decode(kv["key"]).decode("utf-8", "replace"):
                    (base64.b64decode(kv.get("value", "")), int(kv.get("lease", 0) or 0))
                    for kv in j.get("kvs", [])}
        raise ClusterUnavailable("etcd does not answer (" + "; ".join(errors) + ")")


class Directory:
    """Members and stream owners as etcd has them, re-read at most every
    refresh_s seconds (so that many pushers waiting for a failover ask etcd
    a few times a second, not each of them).  cluster: an etcd URL (see
    parse_etcd_url) or an Etcd.  Not thread-safe."""

    def __init__(self, cluster, refresh_s=0.25, timeout=1.0):
        self.etcd = cluster if isinstance(cluster, Etcd) else Etcd(cluster, timeout)
        self.refresh_s = refresh_s
        self.t_read = None              # monotonic time of the last read
        self.error = None               # why the last read failed, None when it worked
        self._members, self._owners = {}, {}

    def read(self, newer_than=None):
        """Re-reads members and owners unless the last read is recent (within
        refresh_s, and after the monotonic time newer_than when given).
        Returns True when the snapshot is usable; on an etcd error keeps the
        last one, sets .error and returns False."""
        now = time.monotonic()
        if self.t_read is not None and self.error is None and now - self.t_read < self.refresh_s and \
                (newer_than is None or self.t_read > newer_than):
            return True
        try:
            members = self.etcd.range_leases(MEMBERS_PREFIX, prefix=True)
            owners = self.etcd.range(OWNERS_PREFIX, prefix=True)
        except ClusterUnavailable as e:
            self.t_read, self.error = now, str(e)
            return False
        self._members = {}
        for v, lease in members.values():
            try:
                m = json.loads(v)
                m["lease"] = lease      # a member that lost its lease and registered again has a new one
                self._members[m["node"]] = m
            except (ValueError, KeyError, TypeError):
                continue                # a foreign key under the prefix: not a member
        self._owners = {}
        for k, v in owners.items():
            try:
                o = json.loads(v)
                self._owners[k[len(OWNERS_PREFIX):]] = {"node": o["node"], "ingest": o["ingest"]}
            except (ValueError, KeyError, TypeError):
                continue
        self.t_read, self.error = now, None
        return True

    def members(self):
        """{node: member dict (node, ingest, pub, control, epoch, max_streams, and lease: its key's
        lease)} of the last read."""
        return dict(self._members)

    def owners(self):
        """{stream: {"node", "ingest"}} of the last read."""
        return dict(self._owners)

    def locate(self, stream):
        """Where stream goes by the last read: {"node", "ingest", "epoch",
        "lease" (the member's, None when it is not listed), "by": "owner" |
        "placement"}, or None when there is no owner and no member."""
        o = self._owners.get(stream)
        if o is not None:
            m = self._members.get(o["node"], {})
            return {"node": o["node"], "ingest": o["ingest"], "epoch": m.get("epoch"), "lease": m.get("lease"),
                    "by": "owner"}
        node = hrw_pick(stream, self._members)
        if node is None:
            return None
        m = self._members[node]
        return {"node": node, "ingest": m["ingest"], "epoch": m.get("epoch"), "lease": m.get("lease"),
                "by": "placement"}


# ---- the pusher ---------------------------------------------------------------

class ClusterError(TimeoutError):
    """A ClusterPusher found no owner to continue with within failover_timeout
    (etcd silent, no member, only the dead owner listed), or its output
    cannot be made whole (a new owner resumed past the output received)."""


# how many NOT_OWNER redirections are followed in a row before etcd is asked again
MAX_REDIRECTS = 4


class ClusterPusher:
    """One pushed stream in a cluster of ssmd daemons.  cluster: an etcd URL
    ("etcd://HOST:PORT[,...]") or a Directory (share one among many
    pushers); stream: its name (1-64 of [A-Za-z0-9_.-], not starting with
    '.' or '_').  connect_timeout: seconds for a member's ingest socket to
    accept the connection before the member counts as lost; timeout:
    seconds of silence of the owner, while results are due, after which it
    counts as lost; failover_timeout: seconds to find a new owner after a
    loss (ClusterError after it).  Attributes: owner ({"node", "ingest",
    "epoch"} of the member pushed to, None between owners), meta (its
    stream meta), checkpoint (the last acknowledged checkpoint event),
    kept_from (the first input sample still kept), pushed, received (output
    samples collected), failovers (one dict per owner change: "from", "to",
    "reason", "t_lost", "t_attached", "t_output" (monotonic s; t_output: the
    first output sample beyond what had come back before), "replay_from",
    "replayed" (input samples kept then, sent again), "resumed" (the meta's,
    or None)).  Not thread-safe."""

    def __init__(self, cluster, stream, connect_timeout=2.0, timeout=10.0, failover_timeout=60.0,
                 context=None):
        self.topic = protocol.format_topic(stream, "audio")  # validates the name
        if stream.startswith("_"):
            raise ValueError(f"stream names starting with '_' are reserved: {stream!r}")
        self.directory = cluster if isinstance(cluster, Directory) else Directory(cluster)
        self.stream = stream
        self._topic_b = self.topic.encode()
        self._meta_topic = protocol.format_topic(stream, "meta").encode()
        self._event_topic = protocol.format_topic(stream, "event").encode()
        self.connect_timeout, self.timeout, self.failover_timeout = connect_timeout, timeout, failover_timeout
        self._ctx = context or zmq.Context.instance()
        self.rate = self.channels = self._dtype = None
        # the input kept for a replay: chunks (first sample, (rows, channels) array)
        self._chunks, self._starts = [], []
        self.kept_from = 0
        self.pushed = 0
        self.finished = False           # finish() called: the end-of-stream goes with the last sample
        self.ended = False              # the end-of-stream result came back
        self._out = []
        self.received = 0               # output samples collected (deduplicated, contiguous from 0)
        self.checkpoint = None
        self._ckpt_pending = None       # acknowledged, but its output has not all come back yet
        self.failovers = []
        self.owner = None
        self.meta = None
        self._sock = self._mon = None
        self._dead = None               # (node, epoch, ingest) of the owner lost last
        self._lost = {"reason": "start", "t": time.monotonic(), "from": None}
        self._retry_at = 0.0
        self._redirects = 0

    # -- public ------------------------------------------------------------

    def push(self, samples, rate, end=False, block=True):
        """Queues samples (frames,) or (frames, channels), float (sent as f32)
        or int16 (sent as i16), at rate Hz (the same for the whole stream),
        keeps them for a replay, and sends what the owner's window takes;
        end=True ends the stream after them.  block: wait (pumping) until
        all of it has been sent (through failovers: up to failover_timeout);
        False: return at once, pump() sends the rest.  Raises DaemonError for
        an error reply that a failover cannot cure, ClusterError, ValueError
        for bad samples."""
        if self.finished:
            raise RuntimeError("push after finish()")
        x = as_frames(samples)
        dtype = np.dtype("<i2") if x.dtype == np.int16 else np.dtype("<f4")
        rate = int(rate)
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if self.rate is not None and rate != self.rate:
            raise ValueError(f"rate {rate} Hz after {self.rate} Hz: a stream keeps its rate")
        if self._dtype is not None and x.shape[0] and dtype != self._dtype:
            raise ValueError(f"{dtype} samples after {self._dtype}: a cluster stream keeps its sample type")
        if self.channels is not None and x.shape[0] and x.shape[1] != self.channels:
            raise ValueError(f"{x.shape[1]} channels after {self.channels}: a stream keeps its channel count")
        self.rate = rate
        if x.shape[0]:
            self._dtype = self._dtype or dtype
            self.channels = self.channels or x.shape[1]
            self._chunks.append(np.ascontiguousarray(x, self._dtype))
            self._starts.append(self.pushed)
            self.pushed += x.shape[0]
        if end:
            self.finished = True
        self.pump()
        while block and not self._all_sent():
            self.pump(0.05)

    def finish(self, samples=None, rate=None, block=True):
        """Ends the stream (with optional last samples)."""
        if samples is None:
            samples = np.zeros((0, self.channels or 1), np.float32)
        rate = rate or self.rate
        if rate is None:
            raise ValueError("finish() before any push() needs a rate")
        self.push(samples, rate, end=True, block=block)

    def collect(self, timeout=None):
        """Waits (pumping, through failovers) until the end-of-stream result
        and returns the output, (pushed, 1) float32.  timeout: seconds
        (None: no limit but the pusher's own timeouts)."""
        if not self.finished:
            raise RuntimeError("collect() before finish()")
        t0 = time.monotonic()
        while not self.ended:
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{self.stream}: the end of the output did not come within {timeout:.1f} s "
                                   f"({self.received} of {self.pushed} samples came back)")
            self.pump(0.05)
        return self.output()

    def output(self):
        """The output collected so far, (received, 1) float32."""
        if len(self._out) > 1:
            self._out = [np.concatenate(self._out)]
        return self._out[0] if self._out else np.zeros((0, 1), np.float32)

    def pump(self, timeout=0.0):
        """Does what is due without blocking longer than timeout seconds:
        reads the owner's replies, sends the queued audio the window takes,
        notices a lost owner and finds the next.  Returns True while the
        stream is not over."""
        self._step()
        if timeout > 0 and not self.ended:
            if self._sock is None:
                time.sleep(min(timeout, max(0.0, self._retry_at - time.monotonic()), 0.05))
            else:
                poller = zmq.Poller()
                poller.register(self._sock, zmq.POLLIN)
                poller.register(self._mon, zmq.POLLIN)
                poller.poll(int(timeout * 1000))
            self._step()
        return not self.ended

    def close(self):
        """Closes the connection (nothing is sent: a stream left unfinished
        ends on its owner after push_idle_s)."""
        self._disconnect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the connection ----------------------------------------------------

    def _all_sent(self):
        if self.ended:
            return True
        return self._sock is not None and self._sent >= self.pushed and (not self.finished or self._eos_sent)

    def _disconnect(self):
        if self._sock is not None:
            self._sock.disable_monitor()
            self._mon.close(linger=0)
            self._sock.close(linger=0)
        self._sock = self._mon = None

    def _attach(self, target):
        """Connects to target ({"node", "ingest", "epoch"}) and sends the
        first message: the kept audio from kept_from (a replay when > 0)."""
        self._disconnect()
        s = self._ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 0)     # results are never dropped on our side
        s.setsockopt(zmq.MAXMSGSIZE, protocol.CLIENT_MAX_FRAME_BYTES)
        mon = s.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        try:
            s.connect(target["ingest"])
        except zmq.ZMQError as e:
            s.disable_monitor()
            mon.close(linger=0)
            s.close(linger=0)
            raise ValueError(f"{self.stream}: member {target['node']} advertises a bad ingest endpoint "
                             f"{target['ingest']!r}: {e}") from None
        self._sock, self._mon = s, mon
        self.owner = dict(target)
        self.meta = None
        self._connected = False
        self._t_attach = self._last_rx = time.monotonic()
        self._seq = 0
        self._sent = self.kept_from
        self._eos_sent = False
        self._replay_from = self.kept_from
        self._cap = protocol.MIN_INGEST_PAYLOAD_BYTES
        self._window = PUSH_WINDOW_FRAMES
        self._window_full = False
        self._send()

    def _lose(self, reason, retry_s=0.0, dead=True):
        """The current owner (or the member tried) is lost: close, and find
        another from etcd.  dead: remember it, so that it is not tried again
        while etcd still lists it (its lease has not expired)."""
        o = self.owner
        if dead and o is not None:
            self._dead = (o["node"], o.get("epoch"), o["ingest"], o.get("lease"))
        if self._lost is None:
            self._lost = {"reason": reason, "t": time.monotonic(), "from": o["node"] if o else None,
                          "received": self.received}
        self._disconnect()
        self.owner = None
        self._retry_at = time.monotonic() + retry_s

    def _is_dead(self, target):
        d = self._dead
        if d is None or target["node"] != d[0]:
            return False
        # a member that lost its lease (frozen longer than the TTL) and registered again keeps its
        # epoch but has a new lease: it is usable again
        if target.get("lease") and d[3]:
            return target["lease"] == d[3]
        # the same node restarted has another epoch (its member key); a target
        # without one (owner key of an unlisted member) is matched by endpoint
        return target.get("epoch") == d[1] if target.get("epoch") and d[1] else target["ingest"] == d[2]

    def _failover(self):
        """While no owner is attached: asks the directory (at most every
        refresh_s) where the stream goes and attaches there, unless that is
        the owner just lost."""
        now = time.monotonic()
        if now < self._retry_at:
            return
        if now - self._lost["t"] > self.failover_timeout:
            why = self.directory.error or "etcd lists no other owner or placement for it (is the old owner's " \
                                          "lease still alive, or no member left?)"
            raise ClusterError(f"{self.stream}: no owner to push to within {self.failover_timeout:.1f} s of "
                               f"'{self._lost['reason']}': {why}")
        if not self.directory.read(newer_than=self._lost["t"]):
            self._retry_at = now + self.directory.refresh_s
            return
        target = self.directory.locate(self.stream)
        if target is None or self._is_dead(target):
            self._retry_at = now + self.directory.refresh_s / 2
            return
        self._redirects = 0
        self._attach(target)

    def _step(self):
        if self.ended:
            return
        if self._sock is None:
            self._failover()
            if self._sock is None:
                return
        while True:                     # the monitor: connected, disconnected
            try:
                ev = self._mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            e = int.from_bytes(ev[0][:2], "little")
            if e == zmq.EVENT_CONNECTED:
                self._connected = True
            elif e == zmq.EVENT_DISCONNECTED:
                # what the owner sent before it went (a "moved" event from a member that
                # stops, results) is read first: a hand-over is not a loss
                self._read_all()
                if self._sock is not None and self._mon is not None and not self.ended:
                    self._lose("disconnected")
                return
        now = time.monotonic()
        if not self._connected and now - self._t_attach > self.connect_timeout:
            self._lose(f"no connection to {self.owner['ingest']} within {self.connect_timeout:.1f} s")
            return
        self._read_all()
        if self._sock is None or self.ended:
            return
        self._send()
        # an answer is due: the first reply (the meta), the end of the output, or results
        # that make room in a full window (a stream merely not pushed to is not due anything:
        # the owner holds back its latency's worth of output until more input comes)
        due = (self._seq > 0 and self.meta is None) or (self._eos_sent and not self.ended) or self._window_full
        if due and time.monotonic() - self._last_rx > self.timeout:
            self._lose(f"no answer from {self.owner['node']} for {self.timeout:.1f} s")

    def _read_all(self):
        """Takes every message waiting on the owner connection (until it is
        closed: a "moved" event or an error closes it)."""
        while self._sock is not None and not self.ended:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._last_rx = time.monotonic()
            self._take(frames)

    def _take(self, frames):
        if len(frames) != 3:
            return
        topic = frames[0]
        if topic == ERROR_TOPIC.encode():
            self._take_error(frames)
        elif topic == self._meta_topic:
            self._take_meta(frames)
        elif topic == self._event_topic:
            try:
                j = json.loads(frames[2].decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return
            if isinstance(j, dict) and j.get("event") == "checkpoint":
                self._take_checkpoint(j)
            elif isinstance(j, dict) and j.get("event") == "moved":
                # handed over to a member that joined (docs/cluster.md, "A member joining"): its
                # owner key is gone, its checkpoint stays; etcd's placement is the next owner
                node = (j.get("owner") or {}).get("node", "?")
                if self._dead is not None and self._dead[0] == node:
                    self._dead = None   # the member lost before is the new owner: it registered again
                self._lose(f"moved to {node}", dead=False)
        elif topic == self._topic_b:
            h = protocol.decode_header(frames[1], len(frames[2]))
            self._take_output(h, protocol.decode_payload(h, frames[2]))

    def _take_error(self, frames):
        try:
            j = json.loads(frames[2].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            j = {}
        code, msg, owner = j.get("error", "?"), j.get("message", ""), j.get("owner")
        if j.get("stream") not in (None, self.stream):
            return
        if self.meta is None and code == "NOT_OWNER" and isinstance(owner, dict) and owner.get("ingest"):
            node = owner.get("node", "?")
            m = self.directory.members().get(node, {})
            target = {"node": node, "ingest": owner["ingest"], "epoch": m.get("epoch"), "lease": m.get("lease")}
            self._redirects += 1
            if self._is_dead(target) or self._redirects > MAX_REDIRECTS:
                # the owner key still names the member lost (its lease has not
                # expired yet), or a redirection loop: ask etcd again shortly
                self._lose(f"NOT_OWNER: {msg}", retry_s=self.directory.refresh_s, dead=False)
                self._redirects = 0
            else:
                self._attach(target)
            return
        if self.meta is not None and code == "NOT_OWNER":
            # the stream is no longer this member's (handed over, its "moved" event missed)
            self._lose(f"NOT_OWNER: {msg}", dead=False)
            return
        if self.meta is None and code in ("CLUSTER_UNAVAILABLE", "TOO_MANY_STREAMS"):
            # etcd does not answer that member, it lost a claim race, or it is full: try again
            self._lose(f"{code}: {msg}", retry_s=max(0.2, self.directory.refresh_s), dead=False)
            return
        raise DaemonError(code, msg, j.get("stream"), owner)

    def _take_meta(self, frames):
        try:
            meta = json.loads(frames[2].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if not isinstance(meta, dict):
            return
        first = self.meta is None
        self.meta = meta
        cap = int(meta.get("ingest_max_payload_bytes", 0) or 0)
        window = int(meta.get("ingest_window_samples", 0) or 0)
        if cap >= protocol.MIN_INGEST_PAYLOAD_BYTES:
            self._cap = cap
        if window > 0:
            self._window = min(PUSH_WINDOW_FRAMES, window)
        if meta.get("epoch"):
            self.owner["epoch"] = meta["epoch"]
        if not first:
            return
        resumed = meta.get("resumed")
        if self._replay_from > 0 and not resumed:
            raise ClusterError(f"{self.stream}: {self.owner['node']} took the replay from sample "
                               f"{self._replay_from} without resuming from a checkpoint")
        if resumed and int(resumed.get("output_sample", 0)) > self.received:
            raise ClusterError(
                f"{self.stream}: {self.owner['node']} resumed from a checkpoint at input sample "
                f"{resumed.get('input_sample')} whose output starts at {resumed.get('output_sample')}, past the "
                f"{self.received} output samples received: output lost with the old owner")
        lost, self._lost = self._lost, None
        if lost["reason"] != "start":
            self.failovers.append({"from": lost["from"], "to": self.owner["node"], "reason": lost["reason"],
                                   "t_lost": lost["t"], "t_attached": time.monotonic(), "t_output": None,
                                   "received_before": lost["received"], "replay_from": self._replay_from,
                                   "replayed": self.pushed - self._replay_from,
                                   "resumed": resumed})

    def _take_checkpoint(self, ev):
        """A stored checkpoint: input before input_sample is never needed
        again once the output before output_sample has come back."""
        try:
            i = int(ev["input_sample"])
            ev = dict(ev, input_sample=i, output_sample=int(ev["output_sample"]))
        except (KeyError, TypeError, ValueError):
            return
        if self._ckpt_pending is None or i > int(self._ckpt_pending["input_sample"]):
            self._ckpt_pending = ev
        self._apply_checkpoint()

    def _apply_checkpoint(self):
        ev = self._ckpt_pending
        if ev is None or int(ev["output_sample"]) > self.received:
            return
        self._ckpt_pending = None
        self.checkpoint = ev
        i = int(ev["input_sample"])
        if i <= self.kept_from:
            return
        self.kept_from = i
        # drop the chunks wholly before it (the one it falls in stays whole)
        k = bisect.bisect_right(self._starts, i) - 1
        if k > 0:
            del self._chunks[:k]
            del self._starts[:k]

    def _take_output(self, h, x):
        """Output by first_sample (aligned with the input): what came before
        (from the previous owner) is dropped, a gap is an error."""
        end = h.first_sample + h.rows
        if h.first_sample > self.received:
            raise ClusterError(f"{self.stream}: output samples {self.received}..{h.first_sample - 1} never came "
                               f"(the next result from {self.owner['node']} starts at {h.first_sample})")
        if end > self.received:
            new = x[self.received - h.first_sample:]
            self._out.append(new)
            self.received = end
            if self.failovers and self.failovers[-1]["t_output"] is None and \
                    self.received > self.failovers[-1]["received_before"]:
                self.failovers[-1]["t_output"] = time.monotonic()
            self._apply_checkpoint()
        if h.flags & protocol.FLAG_END_OF_STREAM:
            self.ended = True
            self._disconnect()

    def _slice(self, a, n):
        """Input samples [a, a + n) as bytes (they are kept: a >= kept_from)."""
        k = bisect.bisect_right(self._starts, a) - 1
        parts = []
        while n > 0:
            c, s = self._chunks[k], self._starts[k]
            take = min(n, s + len(c) - a)
            parts.append(c[a - s:a - s + take])
            a += take
            n -= take
            k += 1
        return b"".join(p.tobytes() for p in parts)

    def _send(self):
        """Sends queued input within the owner's window; before the owner's
        meta (its answer to the first message), only the first message, so a
        member that refuses the stream gets one message, not a pipeline."""
        if self.rate is None:
            return
        frame_bytes = self.channels * self._dtype.itemsize if self.channels else 4
        self._window_full = False
        while self._sock is not None and not self._eos_sent:
            if self._seq > 0 and self.meta is None:
                return
            left = self.pushed - self._sent
            if left == 0 and not self.finished:
                if self._seq == 0 and self._replay_from > 0:
                    # attached again (a move, a failover) with nothing to replay: one empty
                    # message opens the stream on the new owner, which resumes it from the
                    # checkpoint now instead of at the next push
                    h = protocol.Header(kind=1, dtype=2 if self._dtype == np.dtype("<i2") else 1,
                                        sample_rate_hz=self.rate, rows=0, cols=self.channels or 1, seq=0,
                                        first_sample=self._sent, flags=protocol.FLAG_FOLLOWS)
                    self._sock.send_multipart([self._topic_b, protocol.encode_header(h), b""])
                    self._seq += 1
                return
            cap = min(PUSH_MESSAGE_BYTES, self._cap)
            window = self._window if self.meta is not None else PUSH_WINDOW_BEFORE_META
            rows = min(max(1, cap // frame_bytes), max(1, window // 2), left)
            if self._seq > 0 and self._sent + rows - self.received > window:
                self._window_full = True
                return
            last = self.finished and self._sent + rows == self.pushed
            h = protocol.Header(kind=1, dtype=2 if self._dtype == np.dtype("<i2") else 1,
                                sample_rate_hz=self.rate, rows=rows, cols=self.channels or 1, seq=self._seq,
                                first_sample=self._sent,
                                flags=protocol.FLAG_FOLLOWS | (protocol.FLAG_END_OF_STREAM if last else 0))
            self._sock.send_multipart([self._topic_b, protocol.encode_header(h),
                                       self._slice(self._sent, rows) if rows else b""])
            self._seq += 1
            self._sent += rows
            self._eos_sent = last


# ---- the subscriber -------------------------------------------------------------

# seconds a member etcd no longer lists stays connected (a clean stop leaves the list first:
# at most 5 s of hand-overs, then 1.5 s for its other streams' last output)
GONE_S = 10.0

class ClusterSubscriber(SocketClient):
    """Follows streams across owners (docs/cluster.md, "Subscribers across a
    failover"): one SUB socket connected to the pub endpoint of every member
    etcd lists (re-read every refresh_s while it waits: members that join
    are connected, members that leave disconnected GONE_S later), subscribed to topics
    (prefixes such as "room1/audio/"; None: everything).

    recv() and iteration give (topic, Header, value) as Subscriber does, with
    per topic: audio deduplicated by first_sample (a message that repeats
    samples delivered before, as a new owner resuming from a checkpoint
    publishes the output from the checkpoint's output_sample again, is
    trimmed to the new samples or dropped), per-frame topics by first_sample
    (a frame at or before the last one delivered is dropped), and
    Header.seq renumbered 0, 1, 2, ... per topic as delivered, so that an
    owner change (whose daemon counts its own seq from 0, with its own
    epoch) shows neither a gap nor a repeat; meta and event messages pass
    (renumbered).  Missing audio (a slow subscriber's drops, or output lost
    in a switch) sets FLAG_DISCONTINUITY on the next message and is counted
    in .dropped (samples) and .gaps ((topic, from_sample, to_sample)).
    .duplicates counts the samples and frames dropped as repeats, .switches
    lists (topic, old epoch, new epoch).  timeout: seconds iteration waits
    for a message (None: forever).  Not thread-safe."""

    def __init__(self, cluster, topics=None, timeout=None, refresh_s=1.0, context=None, rcvbuf=RCVBUF_BYTES,
                 rcvhwm=RCVHWM):
        self.directory = cluster if isinstance(cluster, Directory) else Directory(cluster)
        self.timeout, self.refresh_s = timeout, refresh_s
        self.dropped = self.duplicates = self.malformed = 0
        self.gaps, self.switches = [], []
        self.endpoints = set()
        self._gone = {}                 # endpoint: when etcd stopped listing its member
        self._state = {}
        self._t_refresh = None
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, protocol.CLIENT_MAX_FRAME_BYTES)
        if rcvbuf:
            self._sock.setsockopt(zmq.RCVBUF, int(rcvbuf))
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        for t in (topics or [""]):
            self._sock.setsockopt(zmq.SUBSCRIBE, t.encode() if isinstance(t, str) else t)
        self.refresh()

    def refresh(self):
        """Connects to the members etcd lists now and disconnects from those
        it no longer lists.  Returns False (and keeps the connections) when
        etcd does not answer."""
        self._t_refresh = time.monotonic()
        if not self.directory.read():
            return False
        eps = {m["pub"] for m in self.directory.members().values() if m.get("pub")}
        now = time.monotonic()
        for ep in sorted(eps - self.endpoints):
            self._sock.connect(ep)
        # a member no longer listed stays connected for GONE_S more: a member that stops
        # cleanly leaves the list first, then publishes its hand-overs ("moved") and the
        # last output of its other streams
        for ep in eps:
            self._gone.pop(ep, None)
        for ep in self.endpoints - eps:
            self._gone.setdefault(ep, now)
        for ep, t in sorted(self._gone.items()):
            if now - t >= GONE_S:
                try:
                    self._sock.disconnect(ep)
                except zmq.ZMQError:
                    pass
                del self._gone[ep]
        self.endpoints = eps | set(self._gone)
        return True

    def recv(self, timeout=None):
        """The next message as (topic, Header, value), or None after timeout
        seconds (None: wait forever; 0: only what is waiting)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if now - self._t_refresh >= self.refresh_s:
                self.refresh()
            left = self.refresh_s if deadline is None else min(self.refresh_s, max(0.0, deadline - now))
            if not self._sock.poll(int(left * 1000)):
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            frames = self._sock.recv_multipart()
            try:
                m = protocol.decode_message(frames)
            except protocol.ProtocolError:
                self.malformed += 1
                continue
            m = self._follow(*m)
            if m is not None:
                return m

    def __iter__(self):
        while True:
            m = self.recv(self.timeout)
            if m is None:
                return
            yield m

    def _follow(self, topic, h, value):
        st = self._state.setdefault(topic, {"seq": 0, "next": None, "epoch": None})
        if st["epoch"] is not None and h.epoch != st["epoch"]:
            self.switches.append((topic, st["epoch"], h.epoch))
        st["epoch"] = h.epoch
        nxt = st["next"]
        if h.kind == protocol.KIND_IDS["audio"]:
            if nxt is not None and h.first_sample + h.rows <= nxt and h.rows > 0:
                self.duplicates += h.rows
                return None
            if nxt is not None and h.rows == 0 and h.first_sample < nxt:
                h = dataclasses.replace(h, first_sample=nxt)    # a bare end-of-stream marker
            elif nxt is not None and h.first_sample < nxt:
                cut = nxt - h.first_sample
                self.duplicates += cut
                value = value[cut:]
                h = dataclasses.replace(h, first_sample=nxt, rows=h.rows - cut)
            elif nxt is not None and h.first_sample > nxt:
                self.dropped += h.first_sample - nxt
                self.gaps.append((topic, nxt, h.first_sample))
                h = dataclasses.replace(h, flags=h.flags | protocol.FLAG_DISCONTINUITY)
            st["next"] = h.first_sample + h.rows
        elif h.kind not in (protocol.KIND_IDS["meta"], protocol.KIND_IDS["event"]):
            if nxt is not None and h.first_sample < nxt:
                self.duplicates += h.rows
                return None
            st["next"] = h.first_sample + 1
        h = dataclasses.replace(h, seq=st["seq"])
        st["seq"] += 1
        return topic, h, value



__all__ = ["ClusterError", "ClusterPusher", "ClusterSubscriber", "ClusterUnavailable", "DaemonUnreachable", "Directory", "Etcd",
           "hrw_key", "hrw_pick", "hrw_weight", "parse_etcd_url"]
