#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Downloads (here, where apt works) the Debian 12 packages that a gpu_only
# build needs and the device machine lacks: jansson and cmocka with their
# headers, and pkgconf in case the machine has no pkg-config.  They land in
# .gpu-debs/ (ignored by git); the device call carries that folder and
# tests/gpu/run.sh unpacks them with dpkg -x into a private prefix.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu-debs
cd .gpu-debs
apt-get download libjansson4 libjansson-dev libcmocka0 libcmocka-dev \
  pkgconf pkgconf-bin libpkgconf3 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
ls -1 *.deb
