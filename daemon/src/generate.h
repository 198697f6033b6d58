/* SPDX-License-Identifier: MIT */
/* Generation: autoregressive audio from a mu-law token model (models/mulaw_lm.md),
 * one model step per output sample, several streams batched in one ssm_step.
 *
 * Per stream s (0 <= s < n_streams): a state, a sampler seeded with seed + s
 * (ssm/sample.h), and the last token.  Without a prompt every stream starts
 * from the zero state with the previous token = the mu-law code of silence
 * (128 for μ = 255).  With a prompt (mu-law codes c_0..c_{n-1}) the codes
 * are run through ssm_forward in chunks on stream 0, whose state is then
 * copied to every stream (ssm_state_snapshot/restore); the first generated
 * sample of each stream is drawn from the prompt's last logits row.
 * Sample s_t of a stream is then drawn from the logits of step t with its
 * previous sample as input.  Outputs are mu-law codes; decode with
 * dsp_mulaw_decode.
 *
 * A stream's samples depend only on the model, the prompt, the sampling
 * parameters and seed + s: never on n_streams (ssm_step's default kernels
 * are batch-invariant) — so the same settings reproduce a file bit for bit.
 *
 * Threads: a generator is used by one thread.  ssmd_generator_step is
 * real-time safe (no allocation, lock or I/O); create/prompt are not.
 */
#ifndef SSMD_GENERATE_H
#define SSMD_GENERATE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ssm/model.h"
#include "ssm/sample.h"

typedef struct ssmd_generator ssmd_generator;

/** Checks that model is a mu-law token model ssmd can generate from: tokens
 *  input, lm head, vocab_size 256, __metadata__ frontend.features = mulaw and
 *  frontend.mulaw_mu = 255; *sample_rate_hz receives frontend.sample_rate_hz
 *  (default 16000 when absent).  Returns 0, or -1 with one line in err. */
int ssmd_generate_check_model(const ssm_model *model, int *sample_rate_hz, char *err, size_t cap);

/** Creates a generator of n_streams (>= 1) streams for model (which must
 *  outlive it); runner_flags are SSM_RUNNER_* bits for its runner (0, or the
 *  weights precision from ssmd_config_runner_flags).  Returns 0, or -1 with
 *  one line in err (bad model or parameters, out of memory). */
int ssmd_generator_create(const ssm_model *model, int n_streams, const ssm_sample_params *params,
                          uint64_t seed, unsigned runner_flags, ssmd_generator **out, char *err,
                          size_t cap);

/** Releases a generator; NULL is a no-op. */
void ssmd_generator_destroy(ssmd_generator *g);

/** Feeds a prompt of n mu-law codes (n >= 1) to every stream (see above).
 *  Call before the first step.  stop (may be NULL) is checked between chunks
 *  of the prompt: when it becomes non-zero the call gives up.  Returns 0, -1
 *  with one line in err, or -2 when stopped. */
int ssmd_generator_prompt(ssmd_generator *g, const uint8_t *codes, size_t n,
                          const volatile sig_atomic_t *stop, char *err, size_t cap);

/** Spreads each step of 32 or more streams over n_threads threads
 *  (ssm_runner_set_threads; same samples).  Returns 0, or -1 with one line
 *  in err. */
int ssmd_generator_set_threads(ssmd_generator *g, int n_threads, char *err, size_t cap);

/** Advances every stream by one sample: codes_out {n_streams} receives each
 *  stream's next mu-law code.  Returns 0, or -1 when the model step failed
 *  (a stream whose state went non-finite is reset by the model and goes on;
 *  that is counted, not an error: see ssmd_generator_resets). */
int ssmd_generator_step(ssmd_generator *g, uint8_t *codes_out);

/** Streams of the generator. */
int ssmd_generator_n_streams(const ssmd_generator *g);

/** Times a stream's state went non-finite and was reset, or the logits held
 *  no finite value (summed over streams). */
uint64_t ssmd_generator_resets(const ssmd_generator *g);

/** Stream i's model state (0 <= i < n_streams), owned by g; NULL for any
 *  other i.  For the control commands reset, snapshot and restore; call
 *  between steps, on the generator's thread. */
ssm_state *ssmd_generator_state(ssmd_generator *g, int i);
/** The generator's runner (owned by g), for status reports: kernels,
 *  weights and threads.  Not thread-safe against a concurrent step. */
const ssm_runner *ssmd_generator_runner(const ssmd_generator *g);

/** Reads the generation options of cfg (temperature, top_k, top_p,
 *  min_prob) into *p.  Returns 0, or -1 with "KEY: reason" in err. */
int ssmd_generate_params_from_config(const ssmd_config *cfg, ssm_sample_params *p, char *err, size_t cap);

/** Checks the options of a generation run that do not need the model:
 *  --output and/or --generate-publish, no --input, sockets unless
 *  --serve no.  Returns 0, or -1 with "KEY: reason" in err. */
int ssmd_generate_check_config(const ssmd_config *cfg, char *err, size_t cap);

/* ---- the generation job: generator + prompt + output file --------------
 *
 * Run by the server's generator source (source_gen.c): as fast as possible
 * into the output file, or, with --generate-publish, paced at real time and
 * published as streams gen0, gen1, ....  Samples come in blocks of block_samples per
 * stream (the last one shorter); a block is first generated, a few steps at
 * a time (ssmd_genjob_step), then released (ssmd_genjob_next), which writes
 * it to the output file: the file holds exactly the released blocks.
 * Threads: one thread; step/block/next are real-time safe apart from the
 * file write in next. */
typedef struct ssmd_genjob ssmd_genjob;

/** Opens a job for cfg (generate_s, generate_streams, seed, sampling
 *  options, prompt, resample_quality, threads, weights) on model, a mu-law
 *  token model (checked; model_path only names it in errors) that must
 *  outlive the job.  block_samples: samples per stream per block, in
 *  [1, 2^20].  Reads and feeds the prompt (giving up when *stop becomes
 *  non-zero; stop may be NULL).  The output file is opened separately
 *  (ssmd_genjob_open_output), once everything else that can fail has been
 *  set up, so that a failed start never truncates an existing file.
 *  Returns 0 with *out set; -1 when stopped while feeding the prompt (one
 *  line in err; the process should exit 0: nothing was written); or the
 *  process exit status with one line in err: 2 for a bad option, model or
 *  prompt, 1 for a runtime failure (out of memory, model step). */
int ssmd_genjob_open(const ssmd_config *cfg, const ssm_model *model, const char *model_path,
                     size_t block_samples, const volatile sig_atomic_t *stop, ssmd_genjob **out,
                     char *err, size_t cap);

/** Opens cfg->output for the job (channel s = stream s; nothing when empty).
 *  Refuses the prompt file itself as output.  Returns 0, or 2 with one line
 *  in err. */
int ssmd_genjob_open_output(ssmd_genjob *j, const ssmd_config *cfg, char *err, size_t cap);

/** Runs up to max_steps model steps (one sample of every stream each)
 *  toward the pending block.  Returns the steps run (0 once the block is
 *  complete or the job finished), or -1 when the model step failed. */
int ssmd_genjob_step(ssmd_genjob *j, int max_steps);

/** The pending block once complete: returns m, its samples per stream, and
 *  points *x (when x is not NULL) at {m, n_streams} float samples,
 *  interleaved, owned by j and valid until ssmd_genjob_next.  Returns 0
 *  while the block is incomplete or when the job has finished. */
size_t ssmd_genjob_block(const ssmd_genjob *j, const float **x);

/** Releases the complete pending block: appends it to the output file (if
 *  any) and starts the next one.  No-op while the block is incomplete.
 *  Returns 0, or -1 with one line in err when the file write failed. */
int ssmd_genjob_next(ssmd_genjob *j, char *err, size_t cap);

/** Finalises the output file (valid header, whatever was released so far);
 *  later calls do nothing.  Returns 0, or -1 with one line in err. */
int ssmd_genjob_close(ssmd_genjob *j, char *err, size_t cap);

/** Releases the job; an output file not closed with ssmd_genjob_close is
 *  deleted (a failed run leaves nothing half-written).  NULL is a no-op. */
void ssmd_genjob_destroy(ssmd_genjob *j);

int ssmd_genjob_n_streams(const ssmd_genjob *j);       /**< generation streams */
int ssmd_genjob_rate_hz(const ssmd_genjob *j);         /**< the model's sample rate, Hz */
size_t ssmd_genjob_block_samples(const ssmd_genjob *j); /**< samples per stream of a full block */
uint64_t ssmd_genjob_released(const ssmd_genjob *j);   /**< samples per stream released so far */
bool ssmd_genjob_finished(const ssmd_genjob *j);       /**< all generate_s seconds released */
ssmd_generator *ssmd_genjob_generator(ssmd_genjob *j); /**< the job's generator (owned by j) */

#endif /* SSMD_GENERATE_H */
