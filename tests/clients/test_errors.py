#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Error paths of the C clients: --help, bad options (one line, exit 2), an
unreadable audio file, and no daemon (one timeout line, exit 1, no hang).
Usage: test_errors.py SSM_SUB SSM_PUSH SSM_CTL"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, free_endpoint, run, tmpdir, write_wav_i16  # noqa: E402

SUB, PUSH, CTL = sys.argv[1:4]
T = tmpdir()
wav = os.path.join(T, "ok.wav")
write_wav_i16(wav, [[0]] * 100, 16000)
text = os.path.join(T, "notaudio.wav")
with open(text, "w") as f:
    f.write("this is not a sound file\n" * 10)

for prog in (SUB, PUSH, CTL):
    r = run([prog, "--help"])
    name = os.path.basename(prog)
    check(r.returncode == 0 and r.stdout.startswith("Usage: " + name), f"{name} --help")


def bad(args, code, needle, what):
    r = run(args, timeout=20)
    name = os.path.basename(args[0])
    one_line = r.stderr.count("\n") == 1 and r.stdout == ""
    check(r.returncode == code and needle in r.stderr and one_line,
          f"{name} {what}: exit {r.returncode}, {r.stderr.strip()!r}")
    return r


# malformed options: exit 2, one line naming what was wrong
bad([SUB, "--bogus"], 2, "unknown option '--bogus'", "unknown option")
bad([SUB, "--count"], 2, "needs a value", "missing value")
bad([SUB, "--count", "x3"], 2, "--count: 'x3'", "bad count")
bad([SUB, "--seconds", "-1"], 2, "--seconds: '-1'", "negative seconds")
bad([SUB, "--timeout", "nan"], 2, "--timeout: 'nan'", "NaN timeout")
bad([SUB, "--output", os.path.join(T, "x.xyz")], 2, "cannot tell the audio format", "bad extension")
bad([SUB, "--stream", "a"], 2, "--stream needs --output or --play", "--stream without --output")
bad([SUB, "--device", "x"], 2, "--device needs --play", "--device without --play")
bad([PUSH, wav], 2, "missing --stream", "no stream")
bad([PUSH, "--stream", "ok"], 2, "missing FILE", "no file")
bad([PUSH, "--stream", "bad/name", wav], 2, "not a valid stream name", "bad stream name")
bad([PUSH, "--stream", "_reserved", wav], 2, "not a valid stream name", "reserved stream name")
bad([PUSH, "--stream", "x" * 65, wav], 2, "not a valid stream name", "65-byte stream name")
bad([PUSH, "--stream", "ok", "--chunk", "0", wav], 2, "--chunk: '0'", "chunk 0")
bad([PUSH, "--stream", "ok", "--chunk", "2097153", wav], 2, "8 MiB of samples, the most a daemon takes per message", "chunk over the daemon's cap")
bad([PUSH, "--stream", "ok", wav, "extra"], 2, "unexpected argument 'extra'", "two files")
bad([CTL], 2, "missing command", "no command")
bad([CTL, "frobnicate"], 2, "unknown command 'frobnicate'", "unknown command")
bad([CTL, "reset"], 2, "reset needs --stream", "reset without stream")
bad([CTL, "snapshot", "--stream", "s"], 2, "snapshot needs --file", "snapshot without file")
bad([CTL, "status", "--stream", "s"], 2, "status takes no --stream", "status with stream")
bad([CTL, "reset", "--stream", ".hidden"], 2, "not a valid stream name", "bad stream name")
bad([CTL, "-t", "0", "status"], 2, "--timeout: '0'", "timeout 0")

# files: exit 1, the file named
bad([PUSH, "--stream", "ok", os.path.join(T, "missing.wav")], 1, "missing.wav", "missing file")
bad([PUSH, "--stream", "ok", text], 1, "notaudio.wav", "not an audio file")

# no daemon: a clear timeout line, exit 1, within the timeout (+ start-up)
ep = free_endpoint()
for args in ([SUB, "-e", ep, "--timeout", "1"],
             [PUSH, "-e", ep, "--timeout", "1", "--stream", "ok", wav],
             [CTL, "-e", ep, "--timeout", "1", "status"]):
    r = bad(args, 1, f"no connection to {ep} after 1.0 s (is ssmd running?)", "no daemon")
    check(0.9 < r.elapsed < 8, f"{os.path.basename(args[0])} no daemon: gave up after {r.elapsed:.2f} s")
bad([CTL, "-e", "tcp://nonsense", "status"], 1, "bad endpoint 'tcp://nonsense'", "bad endpoint")
bad([SUB, "-e", "bogus://x"], 1, "bad endpoint 'bogus://x'", "bad endpoint")

finish("test_errors")
