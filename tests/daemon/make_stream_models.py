# SPDX-License-Identifier: MIT
"""Models for tests/daemon/test_stream.c, written into OUTDIR:
random.safetensors (untrained, non-trivial mask), allpass.safetensors (mask
exactly 1), quiet.safetensors (gains about 0.0025: ~50 dB down), pitch.safetensors (log powers and
pitch features), random_la2 / allpass_la2 / pitch_la1 (the same weights with
frontend.lookahead_frames), and models with broken front-end metadata.
Usage: make_stream_models.py OUTDIR"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import make_random_model as m  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
m.build(os.path.join(out, "random.safetensors"))
m.build(os.path.join(out, "allpass.safetensors"), allpass=True)
m.build(os.path.join(out, "quiet.safetensors"), mask_bias=-6.0)
m.build(os.path.join(out, "no_nfft.safetensors"), meta_overrides={"frontend.n_fft": None})
m.build(os.path.join(out, "bad_window.safetensors"), meta_overrides={"frontend.window": "kaiser"})
m.build(os.path.join(out, "mels_mismatch.safetensors"), meta_overrides={"frontend.n_mels": "80"})
m.build(os.path.join(out, "hop_gt_nfft.safetensors"), meta_overrides={"frontend.hop": "1024"})
m.build(os.path.join(out, "bad_features.safetensors"), meta_overrides={"frontend.features": "mfcc"})
# n_fft 512 with hop 300 does not overlap-add; a window shorter than the frame is not supported
m.build(os.path.join(out, "hop_no_ola.safetensors"), meta_overrides={"frontend.hop": "300"})
m.build(os.path.join(out, "short_window.safetensors"), meta_overrides={"frontend.win_length": "400"})
m.build(os.path.join(out, "pitch.safetensors"), pitch=True)
m.build(os.path.join(out, "pitch_no_edges.safetensors"), pitch=True,
        meta_overrides={"frontend.pitch_band_edges": None})
m.build(os.path.join(out, "pitch_bad_edges.safetensors"), pitch=True,
        meta_overrides={"frontend.pitch_band_edges": "1,3,x"})
m.build(os.path.join(out, "pitch_bad_lags.safetensors"), pitch=True, meta_overrides={"frontend.pitch_lag_min": "33"})
m.build(os.path.join(out, "pitch_spaced_edges.safetensors"), pitch=True,
        meta_overrides={"frontend.pitch_band_edges": "1, 3,+6"})
m.build(os.path.join(out, "pitch_mismatch.safetensors"), pitch=True,
        meta_overrides={"frontend.pitch_band_edges": "1,3,6"})
# the same weights as random / allpass, masking each frame with the row of the step 2 frames later
m.build(os.path.join(out, "random_la2.safetensors"), meta_overrides={"frontend.lookahead_frames": "2"})
m.build(os.path.join(out, "allpass_la2.safetensors"), allpass=True, meta_overrides={"frontend.lookahead_frames": "2"})
m.build(os.path.join(out, "pitch_la1.safetensors"), pitch=True, meta_overrides={"frontend.lookahead_frames": "1"})
m.build(os.path.join(out, "bad_lookahead.safetensors"), meta_overrides={"frontend.lookahead_frames": "9"})
