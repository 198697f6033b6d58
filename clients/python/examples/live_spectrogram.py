#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Live spectrogram and voice-activity trace of one ssmd stream.

Subscribes to <stream>/meta/, <stream>/features/ and <stream>/vad/ and draws
the model's input features (log-mel or log-power, one column per model frame)
over the last --history frames, with the voice-activity probability below.

    live_spectrogram.py --stream mic                       # a window, live (ssmd --input mic)
    live_spectrogram.py --stream mic --save out.png --seconds 10    # headless

With the bundled 48 kHz denoiser the features are the log power of 481 bins
(0-24 kHz, 10 ms per column) followed by 18 pitch features (features.kind
log_power_pitch in meta/); only the 481 log powers are drawn.  To watch the real-voice example instead of a
microphone, serve it at real time and subscribe to the stream named after it:

    build/daemon/ssmd examples/real_voice_48k.flac --realtime --serve yes --wait-subscribers 1 &
    live_spectrogram.py --stream real_voice_48k.flac --save voice.png --seconds 14

With --save the figure is drawn once, after --seconds (or at the end of the
stream), with matplotlib's Agg backend: no display needed.
"""
import argparse
import collections
import os
import sys
import time

import numpy as np

try:
    from ssmd import DaemonUnreachable, Subscriber
except ImportError:  # not installed (pip install ./clients/python): the checkout's copy
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from ssmd import DaemonUnreachable, Subscriber


class Trace:
    """Rolling buffers of the last `history` frames."""

    def __init__(self, history):
        self.feats = collections.deque(maxlen=history)
        self.vad = collections.deque(maxlen=history)
        self.meta = {}
        self.ended = False
        self.frames = 0

    def add(self, topic, h, v):
        kind = topic.split("/")[1]
        if kind == "meta" and isinstance(v, dict):
            self.meta = v
        elif kind == "features":
            for row in v:
                self.feats.append(np.asarray(row, np.float32))
                self.frames += 1
        elif kind == "vad":
            for row in v:
                self.vad.append(float(row[0]))
        elif kind == "event" and isinstance(v, dict) and v.get("event") == "end":
            self.ended = True

    def image(self):
        if not self.feats:
            return np.zeros((1, 1), np.float32)
        n = max(len(f) for f in self.feats)
        if self.meta.get("features", {}).get("kind") == "log_power_pitch" and self.meta.get("n_fft"):
            n = min(n, int(self.meta["n_fft"]) // 2 + 1)  # the log powers; the pitch features follow
        return np.stack([np.pad(f[:n], (0, n - len(f[:n]))) for f in self.feats], axis=1)


def title(trace, stream):
    m = trace.meta
    feat = m.get("features", {})
    return (f"{stream}: {feat.get('kind', 'features')} x {feat.get('n', '?')}, "
            f"{m.get('sample_rate_hz', '?')} Hz, model {m.get('model', {}).get('name', '?')} "
            f"({trace.frames} frames)")


def make_figure(plt):
    fig, (ax_s, ax_v) = plt.subplots(2, 1, figsize=(10, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [3, 1]})
    ax_s.set_ylabel("feature bin")
    ax_v.set_ylabel("voice activity")
    ax_v.set_xlabel("model frame (most recent on the right)")
    ax_v.set_ylim(-0.05, 1.05)
    return fig, ax_s, ax_v


def draw(trace, stream, ax_s, ax_v, img=None, line=None):
    data = trace.image()
    if img is None:
        img = ax_s.imshow(data, origin="lower", aspect="auto", cmap="magma",
                          interpolation="nearest")
        line, = ax_v.plot([], [], color="tab:green")
    img.set_data(data)
    img.set_extent((0, data.shape[1], 0, data.shape[0]))
    if trace.feats:
        img.set_clim(float(np.min(data)), float(np.max(data)) + 1e-6)
    v = np.array(trace.vad, np.float32)
    line.set_data(np.arange(len(v)) + (data.shape[1] - len(v)), v)
    ax_v.set_xlim(0, max(1, data.shape[1]))
    ax_s.set_title(title(trace, stream))
    return img, line


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default=None,
                    help="daemon PUB socket (default: $SSMD_PUB when set, else tcp://127.0.0.1:5560)")
    ap.add_argument("--stream", required=True, help="stream name, e.g. mic")
    ap.add_argument("--history", type=int, default=400, help="frames shown (default 400)")
    ap.add_argument("--save", metavar="PNG", help="draw once into this file (headless)")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="with --save: how long to listen (default 10)")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds to wait for the connection (default 5)")
    a = ap.parse_args()
    if a.history < 1 or a.seconds <= 0:
        ap.error("--history and --seconds must be > 0")

    import matplotlib
    if a.save:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topics = [f"{a.stream}/{k}/" for k in ("meta", "features", "vad", "event")]
    try:
        sub = Subscriber(a.endpoint, topics, connect_timeout=a.timeout)
    except (DaemonUnreachable, ValueError) as e:
        print(f"live_spectrogram: {e}", file=sys.stderr)
        return 1
    trace = Trace(a.history)
    with sub:
        if a.save:
            end = time.monotonic() + a.seconds
            while not trace.ended and time.monotonic() < end:
                m = sub.recv(timeout=max(0.0, end - time.monotonic()))
                if m is not None:
                    trace.add(*m)
            if sub.dropped:
                print(f"live_spectrogram: {sub.dropped} messages dropped", file=sys.stderr)
            if trace.frames == 0:
                print(f"live_spectrogram: no features from {a.stream} in {a.seconds:g} s",
                      file=sys.stderr)
                return 1
            fig, ax_s, ax_v = make_figure(plt)
            draw(trace, a.stream, ax_s, ax_v)
            fig.tight_layout()
            fig.savefig(a.save, dpi=100)
            print(f"live_spectrogram: {trace.frames} frames drawn into {a.save}")
            return 0

        from matplotlib.animation import FuncAnimation
        fig, ax_s, ax_v = make_figure(plt)
        state = {"img": None, "line": None}

        def update(_):
            while True:  # take everything that arrived since the last redraw
                m = sub.recv(timeout=0)
                if m is None:
                    break
                trace.add(*m)
            state["img"], state["line"] = draw(trace, a.stream, ax_s, ax_v, state["img"],
                                               state["line"])
            return state["img"], state["line"]

        anim = FuncAnimation(fig, update, interval=50, cache_frame_data=False)  # noqa: F841
        plt.show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
