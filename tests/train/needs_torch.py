# SPDX-License-Identifier: MIT
"""Imported first by the tests of train/ code: exits with status 77 (meson's "skipped") and a
line saying so when torch is not importable."""
import sys

try:
    import torch  # noqa: F401
except ImportError:
    print("torch is not importable: skipped")
    sys.exit(77)
