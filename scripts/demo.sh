#!/usr/bin/env bash
# Set-up (scripts/setup.sh) plus the main job on the bundled example.
#
# The ssmd daemon and its bundled default model do not exist yet, so this runs
# the most end-to-end path the project has today: the dsp/ pipeline on
# examples/noisy_speech.flac (decode -> resample -> frame -> STFT -> log-mel ->
# iSTFT -> resample back -> encode) and a Mamba model stepped frame by frame on
# the log-mel features (a random model built for the demo, not a trained one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
mkdir -p build/demo
exec build/examples/ssmd-pipeline-demo examples/noisy_speech.flac build/demo/roundtrip.wav "$@"
