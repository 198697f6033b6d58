#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the Debian packages of this checkout (debian/: dpkg-buildpackage -b
# -us -uc in a copy of the tree, niced, one job, DEB_BUILD_OPTIONS=nocheck:
# CI runs the suite separately), runs lintian on them when it is installed
# (fails on its errors), installs them with apt-get (root), then uses the
# installed files from a temporary directory, with the checkout out of reach:
# ssmd on examples/real_voice_48k.flac with no --model (it must load
# /usr/share/ssmd/models/default.safetensors), the Python client, pkg-config,
# examples/embed.c compiled against libssmd-dev, sox with the LADSPA plugin,
# the man pages, the conffile and the units.
#
# Packages that were not installed before are purged at the end (the machine
# is left as found); SSMD_KEEP_PACKAGES=1 keeps them.  Packages that were
# installed before stay installed (now this build).  Safe to run twice.
# Needs the packaging tools: SSMD_PACKAGING=1 scripts/setup.sh
# Usage: scripts/packages.sh [OUTDIR]   (OUTDIR: keep the .deb files there)
# Exit status: 0 ok, 1 on a failure (one line "packages: ..."), 77 when not
# root (meson counts it as skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PKGS=(ssmd libssmd0 libssmd-dev python3-ssmd ssmd-ladspa)

die() { echo "packages: $*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: scripts/packages.sh installs Debian packages: run it as root (CI does)"; exit 77
fi
for t in dpkg-buildpackage dh dh_python3 apt-get sox soxi pkg-config cc man git; do
  command -v "$t" >/dev/null || die "$t not found: install the packaging tools with SSMD_PACKAGING=1 scripts/setup.sh"
done
[ -f /usr/share/dh-python/dhpython/build/plugin_pyproject.py ] ||
  die "pybuild-plugin-pyproject not installed: SSMD_PACKAGING=1 scripts/setup.sh"

version=$(sed -n "s/^  version: '\([^']*\)'.*/\1/p" meson.build | head -1)
[ -n "$version" ] || die "no project version in meson.build"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ssmd-packages.XXXXXX")
installed_before=()
for p in "${PKGS[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then installed_before+=("$p"); fi
done
cleanup() {
  rm -rf "$TMP"
  if [ "${SSMD_KEEP_PACKAGES:-0}" != 1 ]; then
    local purge=()
    for p in "${PKGS[@]}"; do
      [[ " ${installed_before[*]} " == *" $p "* ]] && continue
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed$' && purge+=("$p")
    done
    if [ ${#purge[@]} -gt 0 ]; then
      echo "packages: purging what this run installed: ${purge[*]}"
      DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${purge[@]}" >/dev/null 2>&1 ||
        echo "packages: apt-get purge ${purge[*]} failed" >&2
    fi
  fi
}
trap cleanup EXIT

# 1. A copy of the tree (tracked and untracked-but-not-ignored files: what
#    would be committed), so the build writes nothing into the checkout.
mkdir -p "$TMP/src"
git ls-files -co --exclude-standard -z | xargs -0 cp -P --parents -t "$TMP/src" 2>/dev/null ||
  die "could not copy the tree (git ls-files)"

# 2. Build, with the system's interpreters only (PATH without pyenv, venvs, cuda).
echo "packages: dpkg-buildpackage -b -us -uc (version $version; log $TMP/build.log until the end)"
t0=$(date +%s)
if ! (cd "$TMP/src" && env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
      DEB_BUILD_OPTIONS="nocheck parallel=1 ${DEB_BUILD_OPTIONS:-}" \
      nice -n 19 dpkg-buildpackage -b -us -uc) >"$TMP/build.log" 2>&1; then
  grep -E "^(dpkg-checkbuilddeps|dpkg-buildpackage|dh_[a-z0-9_]+|E:)|error" "$TMP/build.log" | tail -15 >&2
  die "dpkg-buildpackage failed (above: the last error lines)"
fi
echo "packages: built in $(( $(date +%s) - t0 )) s:"
debs=()
for p in "${PKGS[@]}"; do
  f=$(find "$TMP" -maxdepth 1 -name "${p}_*.deb" | head -1)
  [ -n "$f" ] || die "no ${p}_*.deb was built"
  debs+=("$f")
  printf 'packages:   %-32s %8d bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
if [ -n "${1:-}" ]; then mkdir -p "$1" && cp "$TMP"/*.deb "$TMP"/*.changes "$TMP"/*.buildinfo "$1"/; fi

# 3. lintian (when installed): its errors fail the run, warnings are counted.
if command -v lintian >/dev/null; then
  lrc=0
  lint=$(cd "$TMP" && nice -n 19 lintian --tag-display-limit 0 ./*.changes 2>&1) || lrc=$?
  nerr=$(grep -c '^E: ' <<<"$lint" || true); nwarn=$(grep -c '^W: ' <<<"$lint" || true)
  [ "$lrc" -eq 0 ] || [ "$nerr" -gt 0 ] || die "lintian failed (exit $lrc): $(tail -1 <<<"$lint")"
  echo "packages: lintian: $nerr errors, $nwarn warnings"
  grep -E '^[EW]: ' <<<"$lint" | sed 's/^/packages:   /' || true
  [ "$nerr" -eq 0 ] || die "lintian reports $nerr errors"
else
  echo "packages: lintian not installed: not run"
fi

# 4. Install (--reinstall: a second run with the same version installs this build).
echo "packages: apt-get install --reinstall -y ${debs[*]##*/}"
if ! DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q --no-install-recommends "${debs[@]}" \
     >"$TMP/apt.log" 2>&1; then
  tail -5 "$TMP/apt.log" >&2; die "apt-get install of the built packages failed"
fi
grep -E "^(Setting up|Unpacking) " "$TMP/apt.log" | sed 's/^/packages:   /'

# 5. Use the installed files from an empty directory, the checkout out of
#    reach: a clean environment, nothing of $SRC on any path.
DEMO=$TMP/demo
mkdir -p "$DEMO/home"
cp "$SRC/examples/real_voice_48k.flac" "$SRC/examples/embed.c" "$DEMO/"
cd "$DEMO"
run() {
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$DEMO/home" LANG=C.UTF-8 SSMD_NO_SOURCE_MODELS=1 "$@"
}
[ "$(run sh -c 'command -v ssmd')" = /usr/bin/ssmd ] || die "ssmd on PATH is not /usr/bin/ssmd"

model=/usr/share/ssmd/models/default.safetensors
log=$(run ssmd real_voice_48k.flac -o out.wav --log-level debug --progress never 2>&1) ||
  { echo "$log" | tail -5 >&2; die "installed ssmd failed on real_voice_48k.flac"; }
grep -q "model: $model" <<<"$log" || { echo "$log" | tail -5 >&2; die "ssmd did not load $model"; }
n_in=$(run soxi -s real_voice_48k.flac); n_out=$(run soxi -s out.wav)
[ "$n_in" = "$n_out" ] || die "out.wav has $n_out samples, the input $n_in"
echo "packages: /usr/bin/ssmd real_voice_48k.flac -o out.wav: model $model, $n_in samples in, $n_out out"
echo "$log" | grep -E "^ssmd: (done|wrote|finished)|frames" | tail -2 | sed 's/^/packages:   /' || true

py=$(run /usr/bin/python3 -c 'import ssmd; print(ssmd.__version__, ssmd.__file__)') ||
  die "python3 -c 'import ssmd' failed"
read -r pyver pyfile <<<"$py"
[ "$pyver" = "$version" ] || die "python3 ssmd.__version__ is $pyver, meson.build says $version"
[[ "$pyfile" == /usr/lib/python3/dist-packages/ssmd/* ]] || die "import ssmd found $pyfile, not the package's"
echo "packages: python3 -c 'import ssmd': $pyver from $pyfile"

pcver=$(run pkg-config --modversion ssmd) || die "pkg-config --modversion ssmd failed"
[ "$pcver" = "$version" ] || die "pkg-config says ssmd $pcver, meson.build says $version"
echo "packages: pkg-config --modversion ssmd: $pcver"

# shellcheck disable=SC2046
run cc -std=c11 -Wall -Werror embed.c $(run pkg-config --cflags --libs ssmd) -lm -o embed 2>"$TMP/cc.log" ||
  { tail -5 "$TMP/cc.log" >&2; die "cc embed.c against libssmd-dev failed"; }
emb=$(run ./embed) || die "embed (linked with the installed libssmd) failed"
grep -q "$model: 48000 samples in, 48000 out" <<<"$emb" || die "embed: unexpected output: $emb"
lib=$(run ldd ./embed | awk '/libssmd\.so/ {print $3}')
[[ "$lib" == /usr/lib/* || "$lib" == /lib/* ]] || die "embed is linked with $lib, not the installed libssmd.so.0"
echo "packages: $emb (libssmd: $lib)"

# the plugin: /usr/lib/ladspa (PipeWire, Audacity, LADSPA_PATH) and a link in
# /usr/lib/<multiarch>/ladspa, Debian's sox default (no LADSPA_PATH here)
[ -f /usr/lib/ladspa/libssmd_ladspa.so ] || die "/usr/lib/ladspa/libssmd_ladspa.so not installed"
run sox real_voice_48k.flac -e floating-point -b 32 ladspa.wav \
  ladspa libssmd_ladspa ssmd_denoise_mono 100 0 200 0 0 2>"$TMP/sox.log" ||
  { tail -3 "$TMP/sox.log" >&2; die "sox with the installed LADSPA plugin failed"; }
n_lad=$(run soxi -s ladspa.wav)
[ "$n_lad" = "$n_in" ] || die "sox + plugin wrote $n_lad samples, the input has $n_in"
rms=$(run sox ladspa.wav -n stat 2>&1 | awk '/RMS +amplitude/ {print $3}')
awk -v r="$rms" 'BEGIN { exit !(r > 0.001) }' || die "sox + plugin output is silent (RMS $rms)"
echo "packages: sox ... ladspa libssmd_ladspa ssmd_denoise_mono: $n_lad samples, RMS $rms"
[ -f /usr/share/ssmd/pipewire/ssmd-noise-cancel.conf ] || die "no /usr/share/ssmd/pipewire/ssmd-noise-cancel.conf"

for prog in ssmd ssm-push ssm-sub ssm-ctl; do
  run man -w "$prog" >/dev/null 2>&1 || die "man -w $prog: no manual page"
  run "$prog" --help >/dev/null || die "$prog --help failed"
done
echo "packages: man -w ssmd: $(run man -w ssmd)"
dpkg-query -W -f='${Conffiles}\n' ssmd | grep -q '^ /etc/ssmd/ssmd.conf ' || die "/etc/ssmd/ssmd.conf is not a conffile of ssmd"
[ -f /lib/systemd/system/ssmd.service ] || die "no /lib/systemd/system/ssmd.service"
[ -f /usr/lib/systemd/user/ssmd.service ] || die "no /usr/lib/systemd/user/ssmd.service"
if [[ " ${installed_before[*]} " != *" ssmd "* ]]; then
  for w in /etc/systemd/system/*.wants/ssmd.service /etc/systemd/user/*.wants/ssmd.service; do
    [ -e "$w" ] && die "installing ssmd enabled a unit: $w"
  done
fi
echo "packages: conffile /etc/ssmd/ssmd.conf; units /lib/systemd/system/ssmd.service, /usr/lib/systemd/user/ssmd.service (not enabled)"
echo "packages: ok: ${PKGS[*]} $version built, installed and used from $DEMO"
