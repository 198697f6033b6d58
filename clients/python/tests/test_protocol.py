# SPDX-License-Identifier: MIT
"""Checks clients/python/ssmd/protocol.py against the golden vectors of
docs/protocol.md (tests/daemon/protocol_golden.json), as the C test does.
Usage: test_protocol.py protocol_golden.json"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ssmd import protocol as p  # noqa: E402


def u64(v):
    return int(v, 16) if isinstance(v, str) else v


def main(path):
    g = json.load(open(path))
    n_ok = n_err = 0
    for v in g["vectors"]:
        buf = bytes.fromhex(v["hex"].replace(" ", ""))
        try:
            h = p.decode_header(buf, v["payload_len"])
            got = "SSMD_PROTO_OK"
        except p.ProtocolError as e:
            got = e.status
        assert got == v["status"], f"{v['name']}: got {got}, expected {v['status']}"
        if got != "SSMD_PROTO_OK":
            n_err += 1
            continue
        n_ok += 1
        for k, want in v["fields"].items():
            assert getattr(h, k) == u64(want), f"{v['name']}: {k} = {getattr(h, k)}, expected {want}"
        if v.get("encode"):
            assert p.encode_header(h) == buf, f"{v['name']}: encoded bytes differ"
    for t in g["topics"]:
        try:
            stream, kind = p.parse_topic(t["topic"])
            ok = True
        except p.ProtocolError:
            ok = False
        assert ok == t["ok"], f"topic {t['topic']!r}: accepted={ok}"
        if ok:
            assert (stream, kind) == (t["stream"], t["kind"]), t["topic"]
            assert t["topic"].startswith(p.format_topic(stream, kind))
    print(f"protocol (python): {n_ok} valid and {n_err} invalid golden headers matched, "
          f"{len(g['topics'])} topics")
    assert n_ok >= 4 and n_err >= 8


if __name__ == "__main__":
    main(sys.argv[1])
