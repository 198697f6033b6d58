# SPDX-License-Identifier: MIT
"""Writes the seed inputs of fuzz_push and fuzz_control into fuzz/corpus/push
and fuzz/corpus/control (layouts: the comments at the top of fuzz_push.c and
fuzz_control.c).  Usage: /usr/bin/python3 fuzz/corpus/make_seeds.py"""
import math
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
EOS = 1 << 3  # SSMD_FLAG_END_OF_STREAM


def hdr(kind=1, dtype=1, flags=0, rate=16000, rows=0, cols=1, magic=b"SSMD", version=1, hb=64):
    return magic + struct.pack("<HHHHIIIIIQQQQ", version, hb, kind, dtype, flags, rate, rows, cols,
                               0, 0, 0, 0, 0)


def audio(n, cols=1, dtype=1, f=440.0, rate=16000):
    vals = [0.3 * math.sin(2 * math.pi * f * i / rate) for i in range(n * cols)]
    if dtype == 1:
        return struct.pack("<%df" % len(vals), *vals)
    return struct.pack("<%dh" % len(vals), *[int(v * 32767) for v in vals])


def msg(*frames):
    out = bytes([len(frames) - 1])
    for fr in frames:
        out += struct.pack("<H", len(fr)) + fr
    return out


def push(name, data):
    os.makedirs(os.path.join(HERE, "push"), exist_ok=True)
    open(os.path.join(HERE, "push", name), "wb").write(data)


def control(name, text, mode=0, extra=b""):
    os.makedirs(os.path.join(HERE, "control"), exist_ok=True)
    t = text.encode()
    open(os.path.join(HERE, "control", name), "wb").write(
        bytes([mode]) + struct.pack("<H", len(t)) + t + extra)


assert len(hdr()) == 64
A = b"s/audio/"
push("mono_f32_eos", msg(A, hdr(rows=256), audio(256)) + msg(A, hdr(rows=256, flags=EOS), audio(256)))
push("eos_then_more", msg(A, hdr(rows=16), audio(16)) + msg(A, hdr(rows=0, flags=EOS), b"")
     + msg(A, hdr(rows=16), audio(16)))
push("stereo_i16_8k", msg(b"st/audio/", hdr(dtype=2, rate=8000, rows=512, cols=2), audio(512, 2, 2, rate=8000)))
push("f32_48k_two_msgs", msg(b"hi/audio/", hdr(rate=48000, rows=600), audio(600, rate=48000)) * 2)
push("bad_magic", msg(A, hdr(rows=16, magic=b"SSME"), audio(16)))
push("req_delimiter", msg(b"", A, hdr(rows=64), audio(64)))
push("two_frames", msg(A, hdr(rows=0)))
push("rate_changed", msg(A, hdr(rows=32), audio(32)) + msg(A, hdr(rows=32, rate=22050), audio(32)))
push("too_many_streams", b"".join(msg(b"n%d/audio/" % i, hdr(rows=8), audio(8)) for i in range(5)))
push("nonfinite", msg(A, hdr(rows=4), struct.pack("<4f", float("nan"), float("inf"), -float("inf"), 1.0)))
push("reserved_name", msg(b"_ssmd/audio/", hdr(rows=4), audio(4)))
push("features_kind", msg(b"s/features/", hdr(kind=2, rows=1, cols=4), audio(4)))
push("size_mismatch", msg(A, hdr(rows=100), audio(99)))
push("long_header", msg(A, hdr(rows=8, hb=80) + b"\0" * 16, audio(8)))

control("status", '{"version":1,"cmd":"status","id":7}')
control("streams", '{"version":1,"cmd":"streams","id":"x"}')
control("reset", '{"version":1,"cmd":"reset","stream":"a"}')
control("snapshot", '{"version":1,"cmd":"snapshot","stream":"a","id":[1,2]}')
control("restore_valid", '{"version":1,"cmd":"restore","stream":"a"}', 0x10)
control("restore_corrupt", '{"version":1,"cmd":"restore","stream":"a"}', 0x10, b"\0" * 8 + b"\xff\xff")
control("restore_truncated", '{"version":1,"cmd":"restore","stream":"a"}', 0x30, b"\0" * 100)
control("restore_garbage", '{"version":1,"cmd":"restore","stream":"a"}', 0x04, b"SSMS" + bytes(range(60)))
control("restore_missing_frame", '{"version":1,"cmd":"restore","stream":"a"}')
control("no_stream", '{"version":1,"cmd":"reset","stream":"nope\\u00e9"}')
control("unknown", '{"version":1,"cmd":"launch"}')
control("bad_json", '{"version":1,"cmd":"status"')
control("not_object", '[1,2,3]')
control("dup_keys", '{"version":1,"cmd":"status","cmd":"stop"}')
control("version2", '{"version":2,"cmd":"status"}')
control("req_style", '{"version":1,"cmd":"streams"}', 0x01)
control("too_many_frames", '{"version":1,"cmd":"status"}', 0x40)
control("stop", '{"version":1,"cmd":"stop"}')
