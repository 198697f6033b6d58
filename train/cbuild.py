# SPDX-License-Identifier: MIT
"""Builds a C helper of train/ into a shared library in train/cache/ on first use.

`load(name, srcs, cflags, libs=(), deps=())` compiles srcs with the system's C compiler (`cc`)
into train/cache/NAME-TAG.so, TAG a hash of the sources, the headers in deps and the flags, so
an edited source is rebuilt; a finished library is renamed into place (concurrent runs building
the same one do not see a partial file).  Returns (ctypes.CDLL, None), or (None, a one-line
reason with the compiler's first messages) when it cannot be built or loaded.  Used by
scan_ext.py and pitch_ext.py.
"""
import ctypes
import hashlib
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, srcs, cflags, libs=(), deps=()):
    try:
        h = hashlib.sha256(" ".join(list(cflags) + list(libs)).encode())
        for p in list(srcs) + list(deps):
            with open(p, "rb") as f:
                h.update(f.read())
        cache = os.path.join(HERE, "cache")
        os.makedirs(cache, exist_ok=True)
        so = os.path.join(cache, f"{name}-{h.hexdigest()[:12]}.so")
        if not os.path.exists(so):
            tmp = f"{so}.{os.getpid()}.tmp"
            subprocess.run(["cc", *cflags, "-o", tmp, *srcs, *libs], check=True, capture_output=True)
            os.replace(tmp, so)
        return ctypes.CDLL(so), None
    except subprocess.CalledProcessError as e:
        return None, f"{e}: {' '.join(e.stderr.decode(errors='replace').split())[:500]}"
    except OSError as e:
        return None, str(e)
