# SPDX-License-Identifier: MIT
"""Subscriber: the data plane of ssmd (docs/protocol.md, "Data plane").

    with Subscriber("tcp://127.0.0.1:5560", ["mic/"]) as sub:
        for topic, header, value in sub:
            ...

value is a numpy array of shape (rows, cols) for numeric kinds (audio,
features, vad, mask, logits, embedding), a dict for meta and event messages
(their JSON payload).  seq is tracked per topic: sub.dropped counts the
messages lost to gaps (a slow subscriber loses messages when the daemon's
queue for it is full) and sub.gaps lists (topic, expected_seq, got_seq).
"""
import time

import zmq

from . import protocol
from ._net import SocketClient, connect, endpoint_source

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5560"
# the receive side's share of a slow subscriber's backlog: the kernel buffer
# (SO_RCVBUF, bytes; Linux reserves twice it) and ZeroMQ's queue (messages).
# Small, so that a slow reader sees drops (seq gaps) instead of ever older
# data; docs/protocol.md gives the age bound they make with the daemon's
# pub_hwm and pub_sndbuf (the same defaults as ssm-sub)
RCVBUF_BYTES = 65536
RCVHWM = 32


class Subscriber(SocketClient):
    """Iterable over (topic, Header, value) from ssmd's PUB socket.

    endpoint: the daemon's pub socket (None: $SSMD_PUB when set, else
    DEFAULT_ENDPOINT).  topics: prefixes ("mic/",
    "mic/features/"); None or [] subscribes to everything.  timeout: seconds
    iteration waits for a message before it stops (None: forever).
    connect_timeout: seconds to wait for the connection (raises
    DaemonUnreachable; None: do not wait).  on_drop(topic, expected, got) is
    called for each gap.  rcvbuf (bytes; 0: the OS default, autotuned up to
    megabytes) and rcvhwm (messages; 0: unlimited) size the receive side
    (RCVBUF_BYTES, RCVHWM).  A frame over protocol.CLIENT_MAX_FRAME_BYTES
    disconnects the daemon instead of being buffered.  Not thread-safe (one
    ZeroMQ socket)."""

    def __init__(self, endpoint=None, topics=None, timeout=None,
                 connect_timeout=5.0, on_drop=None, context=None, rcvbuf=RCVBUF_BYTES,
                 rcvhwm=RCVHWM):
        endpoint, env_name = endpoint_source(endpoint, "SSMD_PUB", DEFAULT_ENDPOINT)
        self.endpoint = endpoint
        self.timeout = timeout
        self.on_drop = on_drop
        self.dropped = 0
        self.malformed = 0
        self.gaps = []
        self._next = {}                 # topic -> (epoch, next seq)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, protocol.CLIENT_MAX_FRAME_BYTES)
        if rcvbuf:
            self._sock.setsockopt(zmq.RCVBUF, int(rcvbuf))
        self._sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        for t in (topics or [""]):
            self._sock.setsockopt(zmq.SUBSCRIBE, t.encode() if isinstance(t, str) else t)
        try:
            connect(self._sock, endpoint, connect_timeout, env_name)
        except Exception:
            self._sock.close()
            raise

    def recv(self, timeout=None):
        """The next well-formed message as (topic, Header, value), or None
        after timeout seconds (None: wait forever).  Malformed messages are
        counted in .malformed and skipped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._sock.poll(None if left is None else int(left * 1000)):
                return None
            frames = self._sock.recv_multipart()
            try:
                return self._decode(frames)
            except protocol.ProtocolError:
                self.malformed += 1

    def _decode(self, frames):
        topic, h, value = protocol.decode_message(frames)
        self._track(topic, h)
        return topic, h, value

    def _track(self, topic, h):
        prev = self._next.get(topic)
        if prev is not None and prev[0] == h.epoch and h.seq > prev[1]:
            lost = h.seq - prev[1]
            self.dropped += lost
            self.gaps.append((topic, prev[1], h.seq))
            if self.on_drop:
                self.on_drop(topic, prev[1], h.seq)
        self._next[topic] = (h.epoch, h.seq + 1)

    def __iter__(self):
        while True:
            m = self.recv(self.timeout)
            if m is None:
                return
            yield m

