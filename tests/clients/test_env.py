#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The endpoint environment variables (docs/protocol.md, "Sockets"): without
-e, ssm-sub, ssm-push and ssm-ctl connect to $SSMD_PUB, $SSMD_INGEST and
$SSMD_CONTROL, and the Python Subscriber, Pusher and Control (no endpoint
argument) to the same; -e and an explicit endpoint win over them; an empty
variable means the daemon's default.  Against the fake daemon on free ports.
Usage: test_env.py SSM_SUB SSM_PUSH SSM_CTL"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fake, check, finish, free_endpoint, run, tmpdir, write_wav_i16  # noqa: E402

SUB, PUSH, CTL = sys.argv[1:4]
T = tmpdir()
dead = free_endpoint()  # nobody listens there

with Fake(T, "--frames", "20") as f:
    env = dict(os.environ, SSMD_PUB=f.ep["pub"], SSMD_INGEST=f.ep["ingest"], SSMD_CONTROL=f.ep["control"])
    r = run([CTL, "--timeout", "3", "status"], env=env)
    ok = r.returncode == 0 and json.loads(r.stdout or "{}").get("ok") is True
    check(ok, f"ssm-ctl status without -e: the daemon at $SSMD_CONTROL answers ({r.stderr.strip()!r})")

    r = run([SUB, "--timeout", "3", "--until-end", "demo/"], env=env)
    check(r.returncode == 0 and "demo/audio/" in r.stdout,
          f"ssm-sub without -e: the stream from $SSMD_PUB ({r.returncode}, {r.stderr.strip()!r})")

    wav = os.path.join(T, "in.wav")
    write_wav_i16(wav, np.arange(-500, 500, dtype=np.int16), 16000)
    out = os.path.join(T, "out.wav")
    r = run([PUSH, "--timeout", "3", "--stream", "envpush", "-o", out, wav], env=env)
    check(r.returncode == 0 and os.path.exists(out),
          f"ssm-push without -e: pushed to $SSMD_INGEST ({r.stderr.strip()!r})")

    bad = dict(env, SSMD_CONTROL=dead)
    r = run([CTL, "-e", f.ep["control"], "--timeout", "3", "status"], env=bad)
    check(r.returncode == 0, f"ssm-ctl -e wins over $SSMD_CONTROL ({r.stderr.strip()!r})")
    r = run([CTL, "--timeout", "1", "status"], env=bad)
    check(r.returncode == 1 and dead in r.stderr,
          f"ssm-ctl with $SSMD_CONTROL at a dead endpoint: names it ({r.stderr.strip()!r})")
    r = run([CTL, "--timeout", "1", "status"], env=dict(env, SSMD_CONTROL=""))
    check("127.0.0.1:5562" in r.stderr or r.returncode == 0,
          f"empty $SSMD_CONTROL: the default endpoint ({r.stderr.strip()!r})")
    r = run([CTL, "--help"], env=env)
    check("$SSMD_CONTROL" in r.stdout, "ssm-ctl --help names $SSMD_CONTROL")

    # the Python package reads the same variables
    code = """
import json, os, numpy as np
from ssmd import Control, Pusher, Subscriber
c = Control(timeout=3)
st = c.status()
with Pusher(stream="envpy") as p:
    p.push(np.zeros(512, np.float32), 16000)
    p.finish()
    n = p.collect().shape[0]
with Subscriber(timeout=0.2, connect_timeout=3) as s:
    sub_ep = s.endpoint
print(json.dumps({"status_ok": st.get("ok"), "pushed_back": n, "control": c.endpoint, "sub": sub_ep}))
"""
    r = run([sys.executable, "-c", code], env=env)
    try:
        got = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        got = {}
    check(got.get("status_ok") is True and got.get("pushed_back") == 512
          and got.get("control") == f.ep["control"] and got.get("sub") == f.ep["pub"],
          f"Python Control/Pusher/Subscriber without an endpoint: the variables ({got}, {r.stderr.strip()[-300:]!r})")

# a malformed endpoint from a variable: one line naming the variable and its value, exit 1
for prog, var, args in ((SUB, "SSMD_PUB", ["--timeout", "1"]), (PUSH, "SSMD_INGEST", ["--stream", "e", wav]),
                        (CTL, "SSMD_CONTROL", ["status"])):
    r = run([prog, *args], env=dict(os.environ, **{var: "tcp://x:y"}))
    name = os.path.basename(prog)
    line = r.stderr.strip()
    check(r.returncode == 1 and line.count("\n") == 0 and f'{var}="tcp://x:y": invalid endpoint' in line,
          f"{name} with {var}=tcp://x:y: one line naming the variable, exit 1 ({r.returncode}, {line!r})")
r = run([CTL, "--timeout", "0.5", "status"], env=dict(os.environ, SSMD_CONTROL=dead))
check(r.returncode == 1 and "$SSMD_CONTROL" in r.stderr and dead in r.stderr,
      f"ssm-ctl, nobody at $SSMD_CONTROL: the timeout names the variable ({r.stderr.strip()!r})")
code = """
import os
from ssmd import Control, Pusher, Subscriber
for cls, var in ((Subscriber, "SSMD_PUB"), (Pusher, "SSMD_INGEST"), (Control, "SSMD_CONTROL")):
    os.environ[var] = "tcp://x:y"
    try:
        cls(stream="e") if cls is Pusher else cls()
        print(var, "no error")
    except ValueError as e:
        print(e)
    del os.environ[var]
"""
r = run([sys.executable, "-c", code])
lines = r.stdout.strip().splitlines()
check(len(lines) == 3 and all(f'{v}="tcp://x:y": invalid endpoint' in ln
                              for v, ln in zip(("SSMD_PUB", "SSMD_INGEST", "SSMD_CONTROL"), lines)),
      f"Python Subscriber/Pusher/Control with a malformed variable: ValueError naming it ({lines}, "
      f"{r.stderr.strip()[-300:]!r})")

finish("test_env")
