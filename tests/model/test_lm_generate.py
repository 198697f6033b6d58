# SPDX-License-Identifier: MIT
"""Generation through the daemon (ssmd --generate-s) with the bundled mu-law model.

  test_lm_generate.py SSMD MODEL BOUNDS_JSON OUTDIR [SECONDS]

1. SECONDS (default 60) generated with each of 3 seeds (one run, 3 batched
   streams: seeds 1, 2, 3) stay finite, non-silent and within level and
   spectral bounds derived from the training audio (tests/model/lm_bounds.json,
   percentiles of 1-second windows, made by train/lm_golden.py):
     - no collapse to silence: at most half of the 1-s windows below the
       training 1st percentile − 20 dB, and the whole stream's RMS above the
       training 1st percentile − 10 dB;
     - no runaway: the whole stream's RMS below the training 99th percentile
       + 6 dB; the median window's spectral flatness and the stream's fraction
       of power above 4 kHz below the training 99th percentiles (white noise
       has flatness ≈ 1 and half its power above 4 kHz).
2. Same seed, temperature and prompt → byte-identical files; another seed →
   different samples; stream 0 of a batch of 3 = the same seed alone.
   The prompt is speech from espeak-ng resampled to 16 kHz, made here.
3. --generate-publish: 2 streams of 2 s published on the data socket arrive
   complete (topics gen0/audio/, gen1/audio/, float32), equal the file
   written in the same run, and are paced at real time (the run lasts 2 s).
4. A prompt at 22050 Hz is resampled (accepted); bad input gives exit status 2
   and one line naming it: an empty prompt, a file that is not a model, a bad
   temperature.
"""
import json
import os
import subprocess
import sys

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

ok = True


def check(cond, msg):
    global ok
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    ok &= bool(cond)


def run(ssmd, *args):
    p = subprocess.run([ssmd, *args], capture_output=True, text=True, timeout=900)
    return p.returncode, p.stderr.strip()


def stats(x, sr=16000):
    n = len(x) // sr
    w = x[:n * sr].reshape(n, sr).astype(np.float64)
    rms_db = 20 * np.log10(np.sqrt((w ** 2).mean(1)) + 1e-12)
    fr = np.lib.stride_tricks.sliding_window_view(w, 512, axis=1)[:, ::256] * np.hanning(512)
    P = np.abs(np.fft.rfft(fr, axis=-1)) ** 2 + 1e-12
    Pm = P.mean(1)
    flat = np.exp(np.log(Pm).mean(1)) / Pm.mean(1)
    hf = Pm[:, 128:].sum() / Pm.sum()
    total_db = 20 * np.log10(np.sqrt((x.astype(np.float64) ** 2).mean()) + 1e-12)
    return rms_db, flat, hf, total_db


def main():
    ssmd, model, bounds_path, out = sys.argv[1:5]
    seconds = int(sys.argv[5]) if len(sys.argv) > 5 else 60
    os.makedirs(out, exist_ok=True)
    b = json.load(open(bounds_path))
    q = b["percentiles"]
    p1, p99 = q.index(1), q.index(99)
    lo_db, hi_db = b["rms_dbfs"][p1] - 10, b["rms_dbfs"][p99] + 6
    silent_db = b["rms_dbfs"][p1] - 20
    flat_max, hf_max = b["flatness"][p99], b["hf_fraction"][p99]

    # 1. three seeds, SECONDS each; then the same with int8 projections
    #    (--weights int8), 20 s, which must stay within the same bounds
    for weights, secs in (("f32", seconds), ("int8", min(seconds, 20))):
        g3 = os.path.join(out, f"gen3_{weights}.wav")
        rc, err = run(ssmd, "--model", model, "--generate-s", str(secs), "--generate-streams", "3",
                      "--seed", "1", "--weights", weights, "-o", g3)
        print(err)
        check(rc == 0, f"{weights}: ssmd generated {secs} s x 3 streams (exit {rc})")
        check("resets 0" in err, f"{weights}: no stream was reset (non-finite state or logits)")
        sr, y = wavfile.read(g3)
        y = y.astype(np.float64) / 32768.0
        check(sr == 16000 and y.shape == (secs * 16000, 3), f"file is {sr} Hz, shape {y.shape}")
        for s in range(3):
            x = y[:, s]
            rms_db, flat, hf, total_db = stats(x)
            frac_silent = float((rms_db < silent_db).mean())
            print(f"{weights} seed {s + 1}: RMS {total_db:.1f} dBFS (bounds [{lo_db:.1f}, {hi_db:.1f}]), "
                  f"windows below {silent_db:.1f} dBFS {frac_silent:.2f} (max 0.5), "
                  f"median flatness {np.median(flat):.4f} (max {flat_max:.4f}), "
                  f"power above 4 kHz {hf:.4f} (max {hf_max:.4f})")
            check(np.isfinite(x).all(), f"{weights} seed {s + 1}: finite")
            check(lo_db <= total_db <= hi_db, f"{weights} seed {s + 1}: level within bounds")
            check(frac_silent <= 0.5, f"{weights} seed {s + 1}: not collapsed to silence")
            check(np.median(flat) <= flat_max,
                  f"{weights} seed {s + 1}: spectral flatness below the training 99th percentile")
            check(hf <= hf_max, f"{weights} seed {s + 1}: high-band power below the training 99th percentile")
        check(not np.array_equal(y[:, 0], y[:, 1]), f"{weights}: seeds 1 and 2 differ")

    # 2. reproducibility with a prompt
    wav22 = os.path.join(out, "prompt22k.wav")
    subprocess.run(["espeak-ng", "-w", wav22, "the quick brown fox jumps over the lazy dog"], check=True)
    sr22, p = wavfile.read(wav22)
    p = resample_poly(p.astype(np.float64) / 32768.0, 16000, sr22)[:16000]  # 1 s: ends inside speech
    prompt = os.path.join(out, "prompt.wav")
    wavfile.write(prompt, 16000, (np.clip(p, -1, 1) * 32767).astype(np.int16))
    files = {}
    for name, seed, n in (("a", 7, 1), ("b", 7, 1), ("c", 8, 1), ("d", 7, 3)):
        f = os.path.join(out, f"rep_{name}.wav")
        rc, err = run(ssmd, "--model", model, "--generate-s", "2", "--seed", str(seed), "--temperature", "0.95",
                      "--top-k", "200", "--prompt", prompt, "--generate-streams", str(n), "-o", f)
        check(rc == 0, f"run {name} (seed {seed}, {n} stream(s)) exit {rc}: {err}")
        files[name] = f
    ra, rb = open(files["a"], "rb").read(), open(files["b"], "rb").read()
    check(ra == rb, f"same seed, temperature and prompt: byte-identical files ({len(ra)} bytes)")
    xa, xc, xd = (wavfile.read(files[k])[1] for k in "acd")
    nd = int((xa != xc).sum())
    check(nd > len(xa) // 2, f"another seed: {nd} of {len(xa)} samples differ")
    check(np.array_equal(xa, xd[:, 0]), "stream 0 of a batch of 3 equals the same seed alone")
    check(not np.array_equal(xd[:, 0], xd[:, 1]), "streams of a batch differ (seeds 7, 8)")
    check(np.array_equal(xd[:, 1], xc), "stream 1 of the batch (seed 8) equals seed 8 alone")

    # 3. publishing, paced at real time
    import socket
    import struct
    import time
    import zmq
    eps = []
    for _ in range(3):  # data, ingest, control: free loopback ports
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            eps.append(f"tcp://127.0.0.1:{so.getsockname()[1]}")
    ep = eps[0]
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.connect(ep)
    for i in range(2):  # the audio topics (meta/ carries JSON)
        sub.setsockopt(zmq.SUBSCRIBE, f"gen{i}/audio/".encode())
    fpub = os.path.join(out, "pub.wav")
    t0 = time.time()
    proc = subprocess.Popen([ssmd, "--model", model, "--generate-s", "2", "--generate-streams", "2",
                             "--generate-publish", "--pub", ep, "--ingest", eps[1], "--control", eps[2],
                             "--wait-subscribers", "2", "-o", fpub], stderr=subprocess.PIPE, text=True)
    got, ends = {}, 0
    while ends < 2 and sub.poll(5000):
        topic, hdr, payload = sub.recv_multipart()
        got.setdefault(topic.decode(), []).append(np.frombuffer(payload, np.float32))
        ends += bool(struct.unpack("<I", hdr[12:16])[0] & 8)  # SSMD_FLAG_END_OF_STREAM
    _, perr = proc.communicate(timeout=60)
    wall = time.time() - t0
    sub.close()
    ctx.term()
    print(perr.strip())
    check(proc.returncode == 0, f"publishing run exit {proc.returncode}")
    yp = wavfile.read(fpub)[1].astype(np.float64) / 32768.0
    for i in range(2):
        xs = np.concatenate(got.get(f"gen{i}/audio/", [np.zeros(0, np.float32)]))
        check(len(xs) == 32000, f"gen{i}/audio/: {len(xs)} of 32000 samples received")
        if len(xs) == 32000:
            d = np.abs(xs - yp[:, i]).max()
            check(d <= 1.0 / 32768 + 1e-6, f"gen{i}: published samples equal the file's (max diff {d:.2g})")
    # pacing: 2 s of audio cannot arrive sooner (the upper bound only catches a hang)
    check(1.9 <= wall <= 30.0, f"paced at real time: 2 s of audio took {wall:.2f} s of wall time")

    # 4. bad input
    rc, err = run(ssmd, "--model", model, "--generate-s", "1", "--prompt", wav22, "-o", os.path.join(out, "x.wav"))
    check(rc == 0, f"prompt at 22050 Hz is resampled to 16 kHz: exit {rc}: {err}")
    empty = os.path.join(out, "empty.wav")
    wavfile.write(empty, 16000, np.zeros(0, np.int16))
    rc, err = run(ssmd, "--model", model, "--generate-s", "1", "--prompt", empty, "-o", os.path.join(out, "x.wav"))
    check(rc == 2 and "no samples" in err, f"empty prompt refused: {err}")
    rc, err = run(ssmd, "--model", model, "--generate-s", "1", "--temperature", "-1", "-o", os.path.join(out, "x.wav"))
    check(rc == 2 and "temperature" in err, f"bad temperature refused: {err}")
    rc, err = run(ssmd, "--model", prompt, "--generate-s", "1", "-o", os.path.join(out, "x.wav"))
    check(rc == 2 and err.count("\n") == 0, f"a non-model file refused: {err}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
