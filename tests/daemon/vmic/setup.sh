#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes DIR/asoundrc from asoundrc.in (beside this script) with @DIR@ = DIR
# and prints the line to export, e.g. for a manual run of the daemon:
#   eval "$(tests/daemon/vmic/setup.sh /tmp/vmic)"
#   python3 -c '...write /tmp/vmic/mono.f32 (raw float32 LE)...'
#   build/daemon/ssmd --list-devices
# The input files (mono.f32, stereo.f32, two_ch.f32) must exist before PortAudio starts,
# or their devices are not listed.  See README.md.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$(cd "$1" 2>/dev/null && pwd) || { echo "$0: $1: not a directory" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
sed "s#@DIR@#${dir}#g" "$here/asoundrc.in" > "$dir/asoundrc"
echo "export ALSA_CONFIG_PATH='$dir/asoundrc'"
