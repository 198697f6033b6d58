# SPDX-License-Identifier: MIT
"""ssmd.cluster without etcd or daemons: the placement weight against
docs/cluster.md's check values, the placement key, etcd URLs, and the
ClusterPusher's and ClusterSubscriber's bookkeeping (output deduplicated by
first_sample, input dropped only once a checkpoint's output has come back,
seq renumbered across an owner change).  The failover itself runs against
real daemons in tests/cluster/test_cluster.py --only failover.

Usage: test_cluster.py"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ssmd import protocol as P  # noqa: E402
from ssmd.cluster import (ClusterError, ClusterPusher, ClusterSubscriber, Directory, hrw_key,  # noqa: E402
                          hrw_pick, hrw_weight, parse_etcd_url)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def t_placement():
    # the check values docs/cluster.md gives for an implementation
    check(hrw_weight("n1", "mic") == 0x527a25d6fdc39d37, hex(hrw_weight("n1", "mic")))
    check(hrw_weight("node-a", "stream.0") == 0xef2ff668a361db5c, hex(hrw_weight("node-a", "stream.0")))
    for name, key in (("room.0", "room"), ("room.12", "room"), ("a.b", "a.b"), ("room.", "room."), ("room", "room"),
                      (".5", ".5")):
        check(hrw_key(name) == key, (name, hrw_key(name), key))
    members = ["a", "b", "c"]
    check(hrw_pick("room.0", members) == hrw_pick("room.1", members) == hrw_pick("room", members), "channels together")
    check(hrw_pick("x", []) is None, "no member")
    check(hrw_pick("x", members) == hrw_pick("x", list(reversed(members))), "order-free")
    # a join moves only names to the new member, about a quarter of them
    names = [f"s{i}" for i in range(2000)]
    moved = [n for n in names if hrw_pick(n, members) != hrw_pick(n, members + ["d"])]
    check(all(hrw_pick(n, members + ["d"]) == "d" for n in moved), "moves go to the joiner")
    check(0.2 < len(moved) / len(names) < 0.3, len(moved))
    print(f"placement: check values of docs/cluster.md, keys, a join moves {len(moved)} of {len(names)} names")


def t_urls():
    check(parse_etcd_url("etcd://127.0.0.1:2379,h:1") == ["http://127.0.0.1:2379", "http://h:1"], "two endpoints")
    for bad in ("http://127.0.0.1:2379", "etcd://host", "etcd://host:x", "etcd://host:0", "etcd://a/b:1",
                "etcd://" + ",".join(["h:1"] * 9)):
        try:
            parse_etcd_url(bad)
            raise AssertionError(f"{bad} accepted")
        except ValueError as e:
            check("\n" not in str(e) and str(e).startswith("cluster: "), str(e))
    print("etcd URLs: the daemon's syntax, bad ones refused in one line")


def audio(first, x, eos=False, epoch=1, seq=0):
    return P.Header(kind=1, dtype=1, sample_rate_hz=16000, rows=len(x), cols=1, seq=seq, first_sample=first,
                    epoch=epoch, flags=P.FLAG_END_OF_STREAM if eos else 0), np.asarray(x, np.float32)[:, None]


def t_pusher_bookkeeping():
    p = ClusterPusher(Directory("etcd://127.0.0.1:1"), "room1")
    p.owner = {"node": "a", "ingest": "tcp://127.0.0.1:1", "epoch": "0x1"}
    x = np.arange(1000, dtype=np.float32)
    for a in range(0, 1000, 100):          # kept as pushed, nothing sent (no connection)
        p._chunks.append(x[a:a + 100, None])
        p._starts.append(a)
    p.pushed, p.rate, p.channels, p._dtype = 1000, 16000, 1, np.dtype("<f4")
    p._take_output(*audio(0, x[:300]))
    # a checkpoint whose output has not all come back drops nothing yet
    p._take_checkpoint({"event": "checkpoint", "input_sample": 512, "output_sample": 400})
    check(p.kept_from == 0 and p.checkpoint is None, (p.kept_from, p.checkpoint))
    p._take_output(*audio(300, x[300:450]))
    check(p.kept_from == 512 and p.checkpoint["input_sample"] == 512, p.kept_from)
    check(p._starts[0] == 500 and np.array_equal(np.frombuffer(p._slice(512, 100), "<f4"), x[512:612]), p._starts)
    # the new owner repeats output from before what came back: dropped by first_sample
    p._take_output(*audio(256, x[256:600], epoch=2))
    p._take_output(*audio(600, x[600:1000], eos=True, epoch=2))
    check(p.ended and p.received == 1000 and np.array_equal(p.output()[:, 0], x), p.received)
    # a hole in the output is an error, never glued over
    q = ClusterPusher(Directory("etcd://127.0.0.1:1"), "room2")
    q.owner = p.owner
    q._take_output(*audio(0, x[:100]))
    try:
        q._take_output(*audio(200, x[200:300]))
        raise AssertionError("a gap accepted")
    except ClusterError as e:
        check("100..199 never came" in str(e), str(e))
    # a replay must be resumed, and not past the output received
    q._lost, q._replay_from = {"reason": "disconnected", "t": 0.0, "from": "a", "received": 100}, 512
    try:
        q._take_meta([b"room2/meta/", b"", b'{"stream":"room2","resumed":{"input_sample":768,"output_sample":512}}'])
        raise AssertionError("a resume past the output accepted")
    except ClusterError as e:
        check("past the 100 output samples received" in str(e), str(e))
    # a hand-over: the "moved" event is an owner change, the member left is not marked dead
    m = ClusterPusher(Directory("etcd://127.0.0.1:1"), "room3")
    m.owner, m._lost = {"node": "a", "ingest": "tcp://127.0.0.1:1", "epoch": "0x1"}, None
    m._take([b"room3/event/", b"", b'{"event":"moved","stream":"room3","input_sample":512,"output_sample":256,'
                                    b'"owner":{"node":"d","ingest":"tcp://127.0.0.1:2"}}'])
    check(m.owner is None and m._lost["reason"] == "moved to d" and m._dead is None, (m.owner, m._lost, m._dead))
    # a member lost (frozen longer than its lease TTL) that registered again: same epoch, new
    # lease -- usable again; and a "moved" naming it as the new owner clears the mark
    m._dead = ("a", "0x1", "tcp://127.0.0.1:1", 7)
    check(m._is_dead({"node": "a", "ingest": "tcp://127.0.0.1:1", "epoch": "0x1", "lease": 7}), "same lease: dead")
    check(not m._is_dead({"node": "a", "ingest": "tcp://127.0.0.1:1", "epoch": "0x1", "lease": 8}), "new lease")
    m.owner, m._lost = {"node": "b", "ingest": "tcp://127.0.0.1:3", "epoch": "0x2", "lease": 9}, None
    m._take([b"room3/event/", b"", b'{"event":"moved","stream":"room3","input_sample":512,"output_sample":256,'
                                    b'"owner":{"node":"a","ingest":"tcp://127.0.0.1:1"}}'])
    check(m._dead is None, m._dead)
    print("ClusterPusher: output deduplicated by first_sample, input dropped once the checkpoint's output came, "
          "a hole and a resume past the output refused, a moved event followed without marking the member dead, "
          "a member lost that registered again (new lease, or named by a moved event) usable again")


def t_subscriber_follow():
    s = ClusterSubscriber.__new__(ClusterSubscriber)     # the bookkeeping only: no socket, no etcd
    s.dropped = s.duplicates = 0
    s.gaps, s.switches, s._state = [], [], {}
    x = np.arange(1000, dtype=np.float32)
    got = []
    for first, n, epoch, seq in ((0, 300, 1, 0), (300, 300, 1, 1), (256, 200, 2, 0), (456, 300, 2, 1),
                                 (756, 100, 2, 2), (900, 100, 2, 3)):
        h, v = audio(first, x[first:first + n], epoch=epoch, seq=seq)
        m = s._follow("room1/audio/", h, v)
        if m is not None:
            got.append(m)
    hs = [h for _, h, _ in got]
    y = np.concatenate([v[:, 0] for _, _, v in got])
    check([h.seq for h in hs] == list(range(len(hs))), [h.seq for h in hs])
    check(len(y) == 1000 - 44 and np.array_equal(y[:856], x[:856]), len(y))
    check(s.duplicates == 344 and s.dropped == 44 and s.gaps == [("room1/audio/", 856, 900)], (s.duplicates, s.gaps))
    check(hs[-1].flags & P.FLAG_DISCONTINUITY and not hs[-2].flags & P.FLAG_DISCONTINUITY, "the gap is flagged")
    check(s.switches == [("room1/audio/", 1, 2)], s.switches)
    # a bare end-of-stream marker (no samples) whose first_sample is behind what was delivered
    # (the old owner's end after the new owner's output): passed with no samples, never
    # negative rows
    h, v = audio(950, x[:0], eos=True, epoch=1, seq=7)
    m = s._follow("room1/audio/", h, v)
    check(m is not None and m[1].rows == 0 and m[1].first_sample == 1000 and m[2].shape[0] == 0,
          m and (m[1].rows, m[1].first_sample))
    print(f"ClusterSubscriber: seq 0..{len(hs) - 1} across an owner change, {s.duplicates} repeated samples dropped, "
          f"a real gap of {s.dropped} flagged; an empty end-of-stream marker behind the delivered audio passed "
          f"with 0 rows")


if __name__ == "__main__":
    t_placement()
    t_urls()
    t_pusher_bookkeeping()
    t_subscriber_follow()
    print("cluster client: ok")
