/* SPDX-License-Identifier: MIT */
/* Checkpoints of pushed streams in cluster mode (docs/cluster.md,
 * "Checkpoints"): the format, its description in etcd and its files.
 *
 * A checkpoint is a stream's whole state between two frames
 * (ssmd_stream_save: model state, framer history and overlap-add, counters)
 * behind a 64-byte header:
 *
 *   0  8  magic "SSMDCKPT"
 *   8  4  version (1)                   12 4  reserved (0)
 *   16 8  input_sample   I: input samples the state has consumed (the
 *                         stream's rate = the model's); the stream goes on
 *                         with input sample I
 *   24 8  output_sample  O: output samples produced; the stream goes on
 *                         with output sample O (for the aligned push
 *                         streams O = floor(I / hop)·hop - latency, >= 0)
 *   32 8  frames         model frames stepped
 *   40 8  resets         state resets so far (non-finite state)
 *   48 8  vad_quiet      the voice-activity gate's count (--vad-gate)
 *   56 8  reserved (0)
 *   64 .. the stream save
 *
 * every integer little-endian.  Its description (ssmd_ckpt_info) is the JSON
 * value of /ssmd/checkpoints/STREAM/meta; the bytes are the value of
 * /ssmd/checkpoints/STREAM/state, or a file in the checkpoint directory,
 * written atomically (a temporary file, fsync, rename, fsync of the
 * directory), whose path the description names.  Integrity: the
 * description's checksum (FNV-1a 64) covers the whole checkpoint.
 *
 * Threads: the functions here are pure or touch files only; the daemon calls
 * the encoders on its loop thread and the file functions on the cluster
 * thread (writes) or the loop thread (a read when a stream resumes).
 * Allocates (JSON, file buffers). */
#ifndef SSMD_CHECKPOINT_H
#define SSMD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

enum { SSMD_CKPT_HEADER = 64, SSMD_CKPT_PATH_MAX = 4096 };

/** The counters a checkpoint carries besides the stream save. */
typedef struct ssmd_ckpt_counters {
    uint64_t input_sample, output_sample, frames, resets, vad_quiet_frames;
} ssmd_ckpt_counters;

/** A checkpoint's description: the JSON of /ssmd/checkpoints/STREAM/meta. */
typedef struct ssmd_ckpt_info {
    char stream[65];
    char node[65];          /**< the member that wrote it */
    char epoch[32];         /**< that member's run ("0x" + 16 hex digits) */
    uint64_t input_sample, output_sample;
    long sample_rate_hz;
    uint64_t model_hash;
    uint64_t time_ms;       /**< when it was taken, Unix time in ms (the writer's clock) */
    uint64_t bytes;         /**< the checkpoint's size */
    uint64_t checksum;      /**< FNV-1a 64 of the checkpoint */
    char path[SSMD_CKPT_PATH_MAX]; /**< its file in the checkpoint directory; "" = in etcd */
} ssmd_ckpt_info;

/** FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t ssmd_ckpt_fnv1a64(const void *p, size_t n);

/** Bytes of a checkpoint of stream s: SSMD_CKPT_HEADER + ssmd_stream_save_bytes;
 *  0 when s cannot be saved (it resamples). */
size_t ssmd_ckpt_bytes(const ssmd_stream *s);

/** Writes a checkpoint of s (ssmd_stream_savable) with counters c into buf.
 *  Returns the bytes written, or -1.  Does not allocate. */
long ssmd_ckpt_encode(void *buf, size_t cap, const ssmd_stream *s, const ssmd_ckpt_counters *c);

/** Loads checkpoint buf (n bytes) into s and fills *c.  Returns 0, or -1
 *  with one line in err (s untouched). */
int ssmd_ckpt_decode(ssmd_stream *s, const void *buf, size_t n, ssmd_ckpt_counters *c, char *err, size_t cap);

/** The description as compact JSON (malloc'd); NULL when out of memory. */
char *ssmd_ckpt_info_json(const ssmd_ckpt_info *m);

/** Parses a description.  Returns 0, or -1 with one line in err. */
int ssmd_ckpt_info_parse(ssmd_ckpt_info *m, const char *json, size_t n, char *err, size_t cap);

/** Checks that dir is a directory this process can create files in (it
 *  creates and removes a probe file).  Returns 0, or -1 with the reason in
 *  err ("'/x': No such file or directory"). */
int ssmd_ckpt_dir_check(const char *dir, char *err, size_t cap);

/** Writes checkpoint buf (n bytes) of m->stream atomically to
 *  dir/STREAM.INPUT_SAMPLE.ckpt and stores that path in m->path.  The file
 *  is synced before its rename; with sync_dir the directory too (so the
 *  rename survives a crash), otherwise the caller syncs it once for several
 *  files (ssmd_ckpt_dir_sync) before naming them anywhere.  Returns 0, or -1
 *  with one line in err (nothing left behind).  Blocks on the disk. */
int ssmd_ckpt_file_write(const char *dir, ssmd_ckpt_info *m, const void *buf, size_t n, bool sync_dir, char *err,
                         size_t cap);

/** fsync of directory dir.  Returns 0, or -1 with one line in err. */
int ssmd_ckpt_dir_sync(const char *dir, char *err, size_t cap);

/** Reads the checkpoint file m->path; checks its size (m->bytes) and
 *  checksum (m->checksum).  Returns the bytes (malloc'd), or NULL with one
 *  line in err. */
void *ssmd_ckpt_file_read(const ssmd_ckpt_info *m, char *err, size_t cap);

#endif /* SSMD_CHECKPOINT_H */
