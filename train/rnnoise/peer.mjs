// RNNoise (the @shiguredo/rnnoise-wasm build, RNNoise 0.2 with its 2025 model) as
// train/evaluate.py's peer.  Usage:
//   node train/rnnoise/peer.mjs IN.f32 N_CLIPS CLIP_SAMPLES OUT.f32 VAD.f32
// IN.f32: N_CLIPS clips of CLIP_SAMPLES float32 samples at 48 kHz (full scale 1.0),
// each denoised with a fresh state in frames of 480 samples at int16 scale.
// OUT.f32: the output as RNNoise emits it (not delay-compensated); VAD.f32: one
// voice probability per frame per clip.  Prints {"cpu_s", "wall_s"} of the
// processing loop on stdout.
import { readFileSync, writeFileSync } from "node:fs";
globalThis.window = globalThis; // the build expects a browser global
const { Rnnoise } = await import("@shiguredo/rnnoise-wasm");
const [inPath, nClipsS, clipS, outPath, vadPath] = process.argv.slice(2);
const nClips = Number(nClipsS), clip = Number(clipS);
const buf = readFileSync(inPath);
const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
if (!(nClips > 0 && clip > 0) || x.length !== nClips * clip) {
  console.error(`peer: ${inPath}: ${x.length} samples, expected ${nClips} x ${clip}`);
  process.exit(2);
}
const rn = await Rnnoise.load();
const fs = rn.frameSize;
const nFrames = Math.floor(clip / fs);
const out = new Float32Array(x.length);
const vad = new Float32Array(nClips * nFrames);
const frame = new Float32Array(fs);
const cpu0 = process.cpuUsage(), t0 = process.hrtime.bigint();
for (let c = 0; c < nClips; c++) {
  const st = rn.createDenoiseState();
  for (let m = 0; m < nFrames; m++) {
    const o = c * clip + m * fs;
    for (let i = 0; i < fs; i++) frame[i] = x[o + i] * 32768;
    vad[c * nFrames + m] = st.processFrame(frame);
    for (let i = 0; i < fs; i++) out[o + i] = frame[i] / 32768;
  }
  st.destroy();
}
const cpu = process.cpuUsage(cpu0), wall = Number(process.hrtime.bigint() - t0) / 1e9;
writeFileSync(outPath, Buffer.from(out.buffer));
writeFileSync(vadPath, Buffer.from(vad.buffer));
console.error(`peer: rnnoise ${nClips} clips x ${nFrames} frames of ${fs}`);
// the processing loop alone (no start-up, wasm compile or file I/O), for the benchmarks
console.log(JSON.stringify({ cpu_s: (cpu.user + cpu.system) / 1e6, wall_s: wall }));
