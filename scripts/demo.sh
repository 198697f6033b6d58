#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Set-up (scripts/setup.sh) plus the main job with the bundled default model
# (models/default.safetensors: a causal speech denoiser with voice activity,
# trained in-project, see models/README.md).
#
# 1. `ssmd IN -o OUT` (no --model: the bundled default, a 48 kHz denoiser)
#    denoises examples/real_voice_48k.flac (real voices + real rain at 5 dB SNR);
#    examples/compare.py checks length and alignment.
# 2. train/demo_report.py measures what it achieved (SI-SDR against the clean
#    speech) on that example, on real voice recordings of alsa-utils (48 kHz)
#    mixed with generated noise, on a 16 kHz synthetic example, and on noise
#    alone, and draws spectrograms of noisy and denoised audio into a PNG.
# Extra arguments go to that first ssmd run only (e.g. --weights int8); the
# SI-SDR report of step 2 runs ssmd with its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p build/demo
build/daemon/ssmd examples/real_voice_48k.flac -o build/demo/real_voice_48k.out.wav "$@"
/usr/bin/python3 examples/compare.py examples/real_voice_48k.flac build/demo/real_voice_48k.out.wav
/usr/bin/python3 train/demo_report.py build/daemon/ssmd build/demo
echo "demo: denoised example: build/demo/real_voice_48k.out.wav; all files in build/demo/"
