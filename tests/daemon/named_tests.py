# SPDX-License-Identifier: MIT
"""Runs a list of test functions of the daemon's Python suites: each one's
failure is printed and counted, the others still run; ends with the
"N passed, N failed" line and the exit status the meson tests read."""
import sys


def run(tests, cleanup=None):
    """Calls every function in tests (each raises on failure), then cleanup()
    if given; exits 1 when any failed, else 0."""
    failed = 0
    for t in tests:
        try:
            t()
            print(f"ok   {t.__name__}")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL {t.__name__}: {e!r}")
    if cleanup:
        cleanup()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
