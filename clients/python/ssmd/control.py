# SPDX-License-Identifier: MIT
"""Control: ssmd's control socket (docs/protocol.md, "Control").

    c = Control("tcp://127.0.0.1:5562")
    c.status()["counters"]["frames"]
    blob = c.snapshot("mic"); c.reset("mic"); c.restore("mic", blob)
    c.cluster()["members"]; c.locate("room1")["ingest"]     # --cluster daemons

Each method sends one request and returns the reply dict; a reply with
"ok": false raises ControlError (.code, .message), no reply within timeout
raises TimeoutError."""
import itertools
import json
import os

import zmq

from . import protocol
from ._net import SocketClient, connect, endpoint_source

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5562"


class ControlError(RuntimeError):
    """A reply with "ok": false: .code (e.g. "NO_SUCH_STREAM"), .message, .reply."""

    def __init__(self, reply):
        self.code = reply.get("error", "?")
        self.message = reply.get("message", "")
        self.reply = reply
        super().__init__(f"{self.code}: {self.message}")


class Control(SocketClient):
    """endpoint: the daemon's control socket (None: $SSMD_CONTROL when set,
    else DEFAULT_ENDPOINT); timeout: seconds to wait for a
    reply (and for the connection).  Requests go through a DEALER with an
    empty delimiter frame, so a lost reply never wedges the socket.  Not
    thread-safe."""

    def __init__(self, endpoint=None, timeout=5.0, context=None):
        endpoint, env_name = endpoint_source(endpoint, "SSMD_CONTROL", DEFAULT_ENDPOINT)
        self.endpoint, self.timeout = endpoint, timeout
        self._ids = itertools.count((os.getpid() << 16) + 1)
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, protocol.CLIENT_MAX_FRAME_BYTES)
        try:
            connect(self._sock, endpoint, timeout, env_name)
        except Exception:
            self._sock.close()
            raise

    def request(self, cmd, extra=None, **fields):
        """Sends {"version":1,"cmd":cmd,"id":..,**fields} (plus the frame
        extra, bytes) and returns (reply dict, extra frames list)."""
        rid = next(self._ids)
        req = dict(version=1, cmd=cmd, id=rid, **fields)
        frames = [b"", json.dumps(req).encode()] + ([bytes(extra)] if extra is not None else [])
        self._sock.send_multipart(frames)
        while True:
            if not self._sock.poll(int(self.timeout * 1000)):
                raise TimeoutError(f"no reply from {self.endpoint} within {self.timeout:.1f} s")
            rep = self._sock.recv_multipart()
            if len(rep) < 2 or rep[0] != b"":
                raise RuntimeError(f"malformed reply ({len(rep)} frames, not [\"\"][JSON])")
            reply = json.loads(rep[1].decode("utf-8"))
            if reply.get("id", rid) != rid:
                continue                # a late reply to an earlier request
            if not reply.get("ok"):
                raise ControlError(reply)
            return reply, rep[2:]

    def status(self):
        return self.request("status")[0]

    def streams(self):
        """The list of stream dicts (name, source, sample_rate_hz, frames, ...)."""
        return self.request("streams")[0]["streams"]

    def reset(self, stream):
        return self.request("reset", stream=stream)[0]

    def snapshot(self, stream):
        """The stream's model state as bytes (model/ snapshot format)."""
        reply, extra = self.request("snapshot", stream=stream)
        if not extra:
            raise RuntimeError("snapshot reply has no state frame")
        return extra[0]

    def restore(self, stream, snapshot):
        """Loads snapshot (bytes from snapshot()) into the stream.  Raises
        ValueError, before sending, for more than CONTROL_MAX_MESSAGE_BYTES
        (the daemon's control socket drops larger frames without a reply),
        ControlError for the daemon's refusals (SNAPSHOT_MISMATCH, BAD_SNAPSHOT)."""
        if len(snapshot) > protocol.CONTROL_MAX_MESSAGE_BYTES:
            raise ValueError(f"snapshot of {len(snapshot)} bytes is more than the {protocol.CONTROL_MAX_MESSAGE_BYTES} "
                             f"bytes a control message to the daemon may hold")
        return self.request("restore", extra=snapshot, stream=stream)[0]

    def stop(self):
        return self.request("stop")[0]

    def cluster(self):
        """Cluster mode (docs/cluster.md): dict with node, healthy, members
        [{node, ingest, pub, control, max_streams, self}], owners [{stream,
        node, ingest}] (None while etcd does not answer), owned, refused.
        A standalone daemon raises ControlError NOT_CLUSTERED."""
        return self.request("cluster")[0]["cluster"]

    def locate(self, stream):
        """Cluster mode: {"stream", "node", "ingest", "by", "checkpoint"}: the
        member that owns the stream ("by": "owner") or would get it
        ("placement"), and its last checkpoint ({input_sample,
        output_sample, age_s, node, bytes, stored[, path]}, or None)."""
        reply = self.request("locate", stream=stream)[0]
        return {k: reply.get(k) for k in ("stream", "node", "ingest", "by", "checkpoint")}

