#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every Debian package ssmd needs to build and test (idempotent: it
# only calls apt when something is missing, and is silent when nothing is),
# then configures and builds ./build.  Usage: scripts/setup.sh [builddir]
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  # toolchain
  build-essential meson ninja-build pkg-config clang
  # libraries (pkg-config names in meson.build)
  libsndfile1-dev libsoxr-dev libfftw3-dev libzmq3-dev portaudio19-dev
  libasound2-dev  # tests/daemon/vmic/pcm_paced.c, the paced virtual microphone
  libjansson-dev libcmocka-dev libopenblas-dev
  # cluster mode: etcd's v3 JSON gateway over HTTP (daemon/src/etcd.c), and a real
  # etcd on loopback for the cluster test suite (tests/cluster; etcdctl for debugging)
  libcurl4-openssl-dev etcd-server etcd-client
  # numpy references and the Python client
  python3-numpy python3-scipy python3-zmq
  # clients/python/examples/live_spectrogram.py (tests/clients draw a PNG headless)
  python3-matplotlib
  # parses the Kubernetes example dist/kubernetes/ssmd.yaml (tests/docs/test_kubernetes.py)
  python3-yaml
  # pip install ./clients/python into a venv, offline (tests/clients/test_pip_install.py)
  python3-venv python3-setuptools python3-wheel python3-pip
  # virtual microphone (ALSA file PCM) and sound file tools used by tests
  alsa-utils libasound2-plugins sndfile-programs
  # reads the output of a killed file job (tests/daemon/test_audio_io.py; python3-soundfile too)
  sox python3-soundfile
  # speech synthesis for the 16 kHz example (examples/make_example.py, the demo)
  espeak-ng
  # the LADSPA plugin (ladspa.h; plugin/ladspa) and its PipeWire filter-chain test
  # (a private pipewire + wireplumber, which wants a D-Bus session bus)
  ladspa-sdk pipewire pipewire-bin wireplumber dbus-daemon
)
# Training the default model (train/, models/README.md): SSMD_TRAIN=1 scripts/setup.sh
if [ "${SSMD_TRAIN:-0}" = 1 ]; then
  PKGS+=(python3-torch flite libopenblas0-pthread)
  # train/banks.py decodes the packages' Ogg/FLAC audio with libsndfile
  PKGS+=(python3-soundfile)
  # train/evaluate.py and bench/daemon_streams.py run RNNoise (npm @shiguredo/rnnoise-wasm) under Node
  command -v node >/dev/null && command -v npm >/dev/null || PKGS+=(nodejs npm)
  # the mu-law generation model's music (train/lm_data.py renders MIDI with fluidsynth)
  PKGS+=(fluidsynth fluid-soundfont-gm)
fi
# Building and testing the Debian packages (debian/, scripts/packages.sh, the
# 'packaging' pass of .ci/run): SSMD_PACKAGING=1 scripts/setup.sh
if [ "${SSMD_PACKAGING:-0}" = 1 ]; then
  PKGS+=(dpkg-dev debhelper dh-python python3-all pybuild-plugin-pyproject python3-build python3-installer
         fakeroot lintian man-db)
fi
# Extra packages a caller may ask for (training, benchmarks against PyTorch).
# e.g. SSMD_EXTRA_PKGS=python3-torch scripts/setup.sh for bench/model_torch_peer.py
# (the PyTorch peer of bench/model_bench.sh).
if [ -n "${SSMD_EXTRA_PKGS:-}" ]; then
  # shellcheck disable=SC2206
  PKGS+=(${SSMD_EXTRA_PKGS})
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts an etcd service on install; the tests start their own on free
  # ports, so a service that this script brought in is stopped and disabled again
  if [[ " ${missing[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
    echo "setup: disabling the etcd service etcd-server started (tests/cluster runs its own)"
    $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# The test suite (scripts/test.sh sets SSMD_TESTS=1): the exporters' tests
# (tests/model export_mamba2, lm_model_export) compare with PyTorch references.
# Best effort: where python3-torch cannot be installed (an architecture or a
# mirror without it, no network) those two tests skip and say so.
if [ "${SSMD_TESTS:-0}" = 1 ] &&
   ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q '^install ok installed$'; then
  SUDO=
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
  echo "setup: installing python3-torch (the PyTorch references of two exporter tests)"
  if ! { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; } ||
     ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null; then
    echo "setup: python3-torch could not be installed; tests/model export_mamba2 and lm_model_export will skip" >&2
  fi
fi

BUILD=${1:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  echo "setup: configuring $BUILD (meson)"
  meson setup "$BUILD" --buildtype=debugoptimized >/dev/null
  echo "setup: building $BUILD (ninja; about a minute the first time)"
fi
ninja -C "$BUILD" >/dev/null
