# SPDX-License-Identifier: MIT
"""The ssmd message header and topics (docs/protocol.md), in pure Python.

A data-plane message is three ZeroMQ frames [topic][header][payload].  The
header is 64 little-endian bytes in version 1; readers skip trailing bytes of
longer headers written by newer daemons.
"""
import json
import re
import struct
from dataclasses import dataclass

MAGIC = b"SSMD"
VERSION = 1
HEADER_BYTES = 64
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
# largest payload of one message pushed to the ingest socket (the daemon drops a
# client that sends more; Pusher.push splits longer pushes)
MAX_INGEST_PAYLOAD_BYTES = 8 * 1024 * 1024
# the smallest ingest cap a daemon may have (SSMD_INGEST_MIN_PAYLOAD_BYTES): a
# daemon advertises its own (ingest_max_payload_bytes in the stream's meta,
# sent back to the pusher first, and in status); pushers send at most this
# much a message until they have seen it
MIN_INGEST_PAYLOAD_BYTES = 64 * 1024
# largest frame a client accepts from the daemon (zmq.MAXMSGSIZE on every client
# socket; SSMD_CLIENT_MAX_FRAME_BYTES in protocol.h): a payload of
# MAX_PAYLOAD_BYTES, the largest any reader accepts
CLIENT_MAX_FRAME_BYTES = MAX_PAYLOAD_BYTES
# The largest frame the daemon's control socket takes (status
# limits.control_max_message_bytes): a restore's snapshot must fit.
CONTROL_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_LAYOUT = struct.Struct("<4sHHHHIIIIIQQQQ")
assert _LAYOUT.size == HEADER_BYTES

KINDS = {1: "audio", 2: "features", 3: "vad", 4: "mask", 5: "logits",
         6: "embedding", 7: "meta", 8: "event"}
KIND_IDS = {v: k for k, v in KINDS.items()}
DTYPES = {1: ("<f4", 4), 2: ("<i2", 2), 3: ("u1", 1), 4: ("u1", 1)}

FLAG_DISCONTINUITY = 1 << 0
FLAG_OVERFLOW = 1 << 1
FLAG_CLIPPED = 1 << 2
FLAG_END_OF_STREAM = 1 << 3
FLAG_STATE_RESET = 1 << 4
FLAG_FOLLOWS = 1 << 5  # ingest: the pushing client follows its stream to another member (docs/cluster.md)

_STREAM_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}\Z")


class ProtocolError(ValueError):
    """A malformed header or topic; .status is the name used in docs/protocol.md."""

    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


@dataclass
class Header:
    kind: int
    dtype: int
    sample_rate_hz: int
    rows: int
    cols: int
    hop_samples: int = 0
    seq: int = 0
    first_sample: int = 0
    capture_ns: int = 0
    epoch: int = 0
    flags: int = 0
    version: int = VERSION
    header_bytes: int = HEADER_BYTES

    @property
    def kind_name(self):
        return KINDS.get(self.kind, "?")

    @property
    def payload_bytes(self):
        return self.rows * self.cols * DTYPES[self.dtype][1]


def encode_header(h):
    """Header -> 64 bytes (version and length fields are always 1 and 64)."""
    return _LAYOUT.pack(MAGIC, VERSION, HEADER_BYTES, h.kind, h.dtype, h.flags,
                        h.sample_rate_hz, h.rows, h.cols, h.hop_samples, h.seq,
                        h.first_sample, h.capture_ns, h.epoch)


def decode_header(buf, payload_len, max_payload_bytes=MAX_PAYLOAD_BYTES):
    """Parse a header frame and check it against the payload frame's length.

    Raises ProtocolError with .status one of SSMD_PROTO_SHORT, _BAD_MAGIC,
    _BAD_VERSION, _BAD_LENGTH, _BAD_KIND, _BAD_DTYPE, _BAD_SIZE."""
    buf = bytes(buf)
    if len(buf) < HEADER_BYTES:
        raise ProtocolError("SSMD_PROTO_SHORT", f"header of {len(buf)} bytes, need {HEADER_BYTES}")
    (magic, version, header_bytes, kind, dtype, flags, rate, rows, cols, hop, seq,
     first, cap, epoch) = _LAYOUT.unpack_from(buf)
    if magic != MAGIC:
        raise ProtocolError("SSMD_PROTO_BAD_MAGIC", f"bad magic {magic!r}")
    if version == 0 or version > VERSION:
        raise ProtocolError("SSMD_PROTO_BAD_VERSION", f"unsupported version {version}")
    if header_bytes < HEADER_BYTES or header_bytes > len(buf):
        raise ProtocolError("SSMD_PROTO_BAD_LENGTH", f"header_bytes {header_bytes} for a {len(buf)}-byte frame")
    if kind not in KINDS:
        raise ProtocolError("SSMD_PROTO_BAD_KIND", f"unknown kind {kind}")
    if dtype not in DTYPES:
        raise ProtocolError("SSMD_PROTO_BAD_DTYPE", f"unknown dtype {dtype}")
    size = rows * cols * DTYPES[dtype][1]
    if size > max_payload_bytes or size != payload_len:
        raise ProtocolError("SSMD_PROTO_BAD_SIZE",
                            f"{rows} x {cols} of dtype {dtype} is {size} bytes, payload has {payload_len}")
    return Header(kind=kind, dtype=dtype, sample_rate_hz=rate, rows=rows, cols=cols,
                  hop_samples=hop, seq=seq, first_sample=first, capture_ns=cap, epoch=epoch,
                  flags=flags, version=version, header_bytes=header_bytes)


def decode_payload(h, payload):
    """Payload bytes -> numpy array of shape (rows, cols) (text kinds: str)."""
    if h.dtype == 4:
        return bytes(payload).decode("utf-8")
    import numpy as np
    return np.frombuffer(payload, dtype=DTYPES[h.dtype][0]).reshape(h.rows, h.cols)


def format_topic(stream, kind):
    """('mic', 'audio' or 1) -> 'mic/audio/'."""
    name = KINDS.get(kind, kind) if isinstance(kind, int) else kind
    if not _STREAM_RE.match(stream or "") or name not in KIND_IDS:
        raise ProtocolError("SSMD_PROTO_BAD_TOPIC", f"bad stream {stream!r} or kind {kind!r}")
    return f"{stream}/{name}/"


def parse_topic(topic):
    """'mic/features/logmel/' -> ('mic', 2)."""
    if isinstance(topic, (bytes, bytearray)):
        topic = topic.decode("utf-8", "replace")
    parts = topic.split("/")
    if len(parts) < 3 or parts[-1] != "" or not _STREAM_RE.match(parts[0]) \
            or parts[1] not in KIND_IDS or any(p == "" for p in parts[2:-1]):
        raise ProtocolError("SSMD_PROTO_BAD_TOPIC", f"malformed topic {topic!r}")
    return parts[0], KIND_IDS[parts[1]]


def decode_message(frames):
    """One data-plane message, [topic][header][payload] (three frames as
    bytes), as (topic str, Header, value): value is decode_payload's, with a
    JSON payload (dtype 4) parsed when it is valid JSON (else kept as text).
    Raises ProtocolError for a wrong frame count, a bad topic or header, or a
    header whose kind differs from the topic's."""
    if len(frames) != 3:
        raise ProtocolError("SSMD_PROTO_BAD_TOPIC", f"{len(frames)} frames")
    topic = frames[0].decode("utf-8", "replace")
    _, kind = parse_topic(topic)
    h = decode_header(frames[1], len(frames[2]))
    if h.kind != kind:
        raise ProtocolError("SSMD_PROTO_BAD_KIND", "header kind differs from topic")
    value = decode_payload(h, frames[2])
    if h.dtype == 4:
        try:
            value = json.loads(value)
        except ValueError:
            pass                    # keep the text
    return topic, h, value
