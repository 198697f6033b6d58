#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs a numpy reference script with Debian's interpreter (/usr/bin/python3 by
# default, override with SSMD_PYTHON).  Fails with one clear line when numpy is
# missing instead of a traceback.  Usage: run_ref.sh script.py [args...]
PY=${SSMD_PYTHON:-/usr/bin/python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "run_ref: $PY not found (install Debian's python3: scripts/setup.sh)" >&2
  exit 1
fi
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
  echo "run_ref: numpy is missing for $PY (install python3-numpy: scripts/setup.sh)" >&2
  exit 1
fi
exec "$PY" "$@"
