# SPDX-License-Identifier: MIT
"""Pusher: send audio to ssmd as a named stream and get the processed audio
back on the same connection (docs/protocol.md, "Ingest").

    p = Pusher("tcp://127.0.0.1:5561", "take1")
    for block in blocks:
        p.push(block, 16000)          # float (frames,) or (frames, channels)
    p.finish()
    out = p.collect()                 # every pushed sample, processed: (n, 1)

One Pusher is one stream: a (frames, channels) array is downmixed by the
daemon (the mean of the channels) into that one stream.  There is no
file-level helper here; to keep a multi-channel file's channels as ssm-push
does (and ssmd's file job, --channels auto), push each channel with its own
Pusher, named NAME.0, NAME.1, ..., and stack the collected results.

Results that arrive while pushing are queued (never dropped); an error reply
from the daemon raises DaemonError at the next call.  Long pushes are split
into messages within the daemon's advertised cap (ingest_max_payload_bytes in
the stream's meta, the daemon's first reply), and push() keeps at most the
advertised window (ingest_window_samples) pushed ahead of the results, so a
push as fast as possible never holds up other clients' streams at the daemon
(docs/protocol.md, "Window, and live streams first")."""
import collections
import json

import numpy as np
import zmq

from . import protocol
from ._net import SocketClient, connect, endpoint_source

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5561"
ERROR_TOPIC = "_ssmd/event/"



def as_frames(samples):
    """samples (a 1-D array of frames or a 2-D {frames, channels} array, any
    numpy-convertible) as a 2-D array; raises ValueError for other shapes."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or (x.shape[1] == 0 and x.shape[0] > 0):
        raise ValueError(f"samples must be (frames,) or (frames, channels), got {x.shape}")
    return x

class DaemonError(RuntimeError):
    """An error reply: .code (e.g. "NAME_IN_USE"), .message, .stream; for
    NOT_OWNER (cluster mode, docs/cluster.md) .owner is {"node", "ingest"},
    the member to push the stream to, else None."""

    def __init__(self, code, message, stream=None, owner=None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.stream, self.owner = code, message, stream, owner


# pushes are split into messages of at most this many payload bytes, and of at
# most the daemon's advertised cap (Pusher.max_message_bytes; before the daemon
# has said it, protocol.MIN_INGEST_PAYLOAD_BYTES, the smallest any daemon has)
PUSH_MESSAGE_BYTES = 256 * 1024
assert protocol.MIN_INGEST_PAYLOAD_BYTES <= PUSH_MESSAGE_BYTES <= protocol.MAX_INGEST_PAYLOAD_BYTES
# at most this many pushed sample frames may be ahead of the results received:
# push() waits for results beyond it, so the daemon's replies (a message per
# engine pass, one hop or more) never overflow the client's queue, where they would be dropped;
# and at most the daemon's advertised ingest_window_samples (the stream's meta): within it a
# message always fits the stream's pending input, so a bulk push never stops the daemon from
# reading the other clients' messages (docs/protocol.md, "Ingest")
PUSH_WINDOW_FRAMES = 1 << 17
# ... and, until the meta has said the window, two messages of the smallest cap any daemon has
# (32 768 frames: 2 s at 16 kHz, within every daemon's 4 s of pending input from 8 192 Hz up)
PUSH_WINDOW_BEFORE_META = 2 * protocol.MIN_INGEST_PAYLOAD_BYTES // 4


class Pusher(SocketClient):
    """One pushed stream.  endpoint: the daemon's ingest socket (None:
    $SSMD_INGEST when set, else DEFAULT_ENDPOINT); stream: its
    name (1-64 of [A-Za-z0-9_.-], not starting with '.' or '_').
    connect_timeout: seconds to wait for the connection (DaemonUnreachable).
    timeout: seconds of daemon silence after which results() raises
    TimeoutError.  Not thread-safe."""

    def __init__(self, endpoint=None, stream=None, connect_timeout=5.0,
                 timeout=10.0, context=None):
        endpoint, env_name = endpoint_source(endpoint, "SSMD_INGEST", DEFAULT_ENDPOINT)
        self.topic = protocol.format_topic(stream, "audio")  # validates the name
        self._meta_topic = protocol.format_topic(stream, "meta").encode()
        self._event_topic = protocol.format_topic(stream, "event").encode()
        if stream.startswith("_"):
            raise ValueError(f"stream names starting with '_' are reserved: {stream!r}")
        self.stream, self.endpoint, self.timeout = stream, endpoint, timeout
        self.seq = 0                    # next seq to send
        self.pushed = 0                 # samples sent
        self.received = 0               # samples come back
        self.rate = None
        self.channels = None
        self.finished = False
        self.ended = False              # end-of-stream came back
        self.meta = None                # the stream's meta (dict), the daemon's first reply
        # cluster mode with checkpoints (docs/cluster.md): the last "checkpoint" event, a dict
        # with input_sample (input before it is never needed again) and output_sample; the
        # meta's "resumed" says where a stream taken over from a checkpoint goes on
        self.checkpoint = None
        self.max_message_bytes = None   # the daemon's advertised ingest cap, from the meta
        self.window_frames = PUSH_WINDOW_FRAMES  # frames pushed ahead of the results, at most
        self._next_result = 0
        self._queued_rows = 0           # samples in results drained but not yet consumed
        self._queue = collections.deque()
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, 0)  # results are never dropped on our side
        self._sock.setsockopt(zmq.MAXMSGSIZE, protocol.CLIENT_MAX_FRAME_BYTES)
        try:
            connect(self._sock, endpoint, connect_timeout, env_name)
        except Exception:
            self._sock.close()
            raise

    def push(self, samples, rate, end=False):
        """Sends samples (frames,) or (frames, channels), float (sent as f32)
        or int16 (sent as i16), at rate Hz; end=True flags end-of-stream.
        Any length: it goes as consecutive messages of at most PUSH_MESSAGE_BYTES
        (256 KiB) and at most the daemon's advertised cap (max_message_bytes;
        protocol.MIN_INGEST_PAYLOAD_BYTES, 64 KiB, until the daemon's first
        reply has said it), with the results received so far drained between
        them so that the daemon's replies never pile up."""
        if self.finished:
            raise RuntimeError("push after finish()")
        x = as_frames(samples)
        if x.dtype == np.int16:
            dtype, payload = 2, np.ascontiguousarray(x, "<i2").tobytes()
        else:
            dtype, payload = 1, np.ascontiguousarray(x, "<f4").tobytes()
        rate = int(rate)
        if rate <= 0:
            raise ValueError(f"rate must be > 0 Hz, got {rate}")
        if self.channels is not None and x.shape[1] != self.channels and x.shape[0] > 0:
            raise ValueError(f"{x.shape[1]} channels after {self.channels}: a stream keeps its "
                             "channel count")
        self.rate = rate
        if x.shape[0] > 0 or self.channels is None:
            self.channels = max(1, x.shape[1])
        frame_bytes = self.channels * (2 if dtype == 2 else 4)
        o = 0
        while True:
            self._drain()               # may bring the meta with the daemon's cap
            cap = min(PUSH_MESSAGE_BYTES, self.max_message_bytes or protocol.MIN_INGEST_PAYLOAD_BYTES)
            # at most half the window a message: the daemon holds back its pipeline's delay
            # (resamplers, framer) until more input comes, so a message of the whole window
            # would wait for results that never come
            rows = min(max(1, cap // frame_bytes), max(1, self.window_frames // 2), x.shape[0] - o)
            last = o + rows >= x.shape[0]
            h = protocol.Header(kind=1, dtype=dtype, sample_rate_hz=rate, rows=rows,
                                cols=self.channels, seq=self.seq, first_sample=self.pushed,
                                flags=protocol.FLAG_END_OF_STREAM if end and last else 0)
            self._wait_window(rows)
            self._sock.send_multipart([self.topic.encode(), protocol.encode_header(h),
                                       payload[o * frame_bytes:(o + rows) * frame_bytes]])
            self.seq += 1
            self.pushed += rows
            o += rows
            if last:
                break
        if end:
            self.finished = True
        self._drain()

    def finish(self, samples=None, rate=None):
        """Ends the stream (with optional last samples); the daemon flushes it."""
        if samples is None:
            samples = np.zeros((0, self.channels or 1), np.float32)
        rate = rate or self.rate
        if rate is None:
            raise ValueError("finish() before any push() needs a rate")
        self.push(samples, rate, end=True)

    def _wait_window(self, rows):
        """Waits (draining results) until sending rows more frames keeps the push
        within window_frames of the results received (at the input rate)."""
        while self.pushed + rows - (self.received + self._queued_rows) > self._window(rows):
            if not self._sock.poll(int(self.timeout * 1000)):
                raise TimeoutError(f"no answer from the daemon at {self.endpoint} for {self.timeout:.1f} s "
                                   f"({self.received + self._queued_rows} of {self.pushed} samples came back)")
            self._drain()

    def _window(self, rows):
        """Frames that may be ahead of the results: window_frames once the daemon's meta (its
        first reply) has said its window; before, PUSH_WINDOW_BEFORE_META (at least the first
        message), so that a daemon whose window is smaller than PUSH_WINDOW_FRAMES is not pushed
        beyond it while its meta is on the way."""
        return self.window_frames if self.meta is not None else max(rows, PUSH_WINDOW_BEFORE_META)

    def _drain(self):
        while self._sock.poll(0):
            frames = self._sock.recv_multipart()
            if len(frames) == 3 and frames[0] == self._meta_topic:
                self._take_meta(frames)
                continue
            if len(frames) == 3 and frames[0] == self._event_topic:
                self._take_event(frames)
                continue
            self._queue.append(frames)
            if len(frames) == 3 and frames[0] == self.topic.encode():
                try:
                    self._queued_rows += protocol.decode_header(frames[1], len(frames[2])).rows
                except protocol.ProtocolError:
                    pass
        # an error reply is raised as soon as it is seen
        for i, frames in enumerate(self._queue):
            if frames and frames[0] == ERROR_TOPIC.encode():
                del self._queue[i]
                self._raise(frames)

    def _take_meta(self, frames):
        """The stream's meta (the daemon's first reply): keeps it and its ingest cap
        (a daemon that does not advertise one leaves the safe default)."""
        try:
            self.meta = json.loads(frames[2].decode("utf-8"))
            cap = int(self.meta.get("ingest_max_payload_bytes", 0))
            window = int(self.meta.get("ingest_window_samples", 0))
        except (ValueError, TypeError, AttributeError):
            return
        if cap >= protocol.MIN_INGEST_PAYLOAD_BYTES:
            self.max_message_bytes = cap
        if window > 0:  # a daemon that does not advertise one leaves PUSH_WINDOW_FRAMES
            self.window_frames = min(PUSH_WINDOW_FRAMES, window)

    def _take_event(self, frames):
        """An event of the stream sent to its pusher: a stored checkpoint."""
        try:
            j = json.loads(frames[2].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(j, dict) and j.get("event") == "checkpoint":
            self.checkpoint = j

    def _raise(self, frames):
        try:
            j = json.loads(frames[2].decode("utf-8"))
        except (IndexError, ValueError):
            j = {}
        raise DaemonError(j.get("error", "?"), j.get("message", ""), j.get("stream"), j.get("owner"))

    def results(self, timeout=None):
        """Yields (Header, array (rows, cols) float32) of the processed audio
        until the end-of-stream result; raises TimeoutError after timeout
        (default self.timeout) seconds without a message, DaemonError on an
        error reply."""
        timeout = self.timeout if timeout is None else timeout
        while not self.ended:
            from_queue = bool(self._queue)
            if from_queue:
                frames = self._queue.popleft()
            else:
                if not self._sock.poll(int(timeout * 1000)):
                    raise TimeoutError(
                        f"no answer from the daemon at {self.endpoint} for {timeout:.1f} s "
                        f"({self.received} of {self.pushed} samples came back)")
                frames = self._sock.recv_multipart()
            if frames and frames[0] == ERROR_TOPIC.encode():
                self._raise(frames)
            if len(frames) == 3 and frames[0] == self._meta_topic:
                self._take_meta(frames)
                continue
            if len(frames) == 3 and frames[0] == self._event_topic:
                self._take_event(frames)
                continue
            if len(frames) != 3 or frames[0] != self.topic.encode():
                continue
            h = protocol.decode_header(frames[1], len(frames[2]))
            if from_queue:
                self._queued_rows -= h.rows
            if h.seq != self._next_result:
                raise RuntimeError(f"result messages lost: expected seq {self._next_result}, "
                                   f"got {h.seq}")
            self._next_result += 1
            x = protocol.decode_payload(h, frames[2])
            self.received += h.rows
            if h.flags & protocol.FLAG_END_OF_STREAM:
                self.ended = True
            yield h, x

    def __iter__(self):
        return self.results()

    def collect(self, timeout=None):
        """Waits for every result and returns them concatenated, (n, cols) float32."""
        parts = [x for _, x in self.results(timeout)]
        return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)

