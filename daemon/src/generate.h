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
 *  outlive it).  Returns 0, or -1 with one line in err (bad model or
 *  parameters, out of memory). */
int ssmd_generator_create(const ssm_model *model, int n_streams, const ssm_sample_params *params,
                          uint64_t seed, ssmd_generator **out, char *err, size_t cap);

/** Releases a generator; NULL is a no-op. */
void ssmd_generator_destroy(ssmd_generator *g);

/** Feeds a prompt of n mu-law codes (n >= 1) to every stream (see above).
 *  Call before the first step.  Returns 0, or -1 with one line in err. */
int ssmd_generator_prompt(ssmd_generator *g, const uint8_t *codes, size_t n, char *err, size_t cap);

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

/** Reads the generation options of cfg (temperature, top_k, top_p,
 *  min_prob) into *p.  Returns 0, or -1 with "KEY: reason" in err. */
int ssmd_generate_params_from_config(const ssmd_config *cfg, ssm_sample_params *p, char *err, size_t cap);

/** The generation job (cfg->generate_s > 0): loads model_path, reads the
 *  prompt (cfg->prompt, any format libsndfile reads, downmixed to mono,
 *  resampled to the model's rate with cfg->resample_quality), generates
 *  cfg->generate_s seconds for cfg->generate_streams streams and writes them
 *  to cfg->output (stream s = channel s; the prompt is not repeated there)
 *  and/or, with cfg->generate_publish, publishes them on cfg->pub (an XPUB
 *  socket; loopback or ipc endpoints only, as nothing is encrypted) as topics
 *  "gen<s>/audio/" (ssmd/protocol.h header, float32 {320, 1} blocks of 20 ms
 *  at 16 kHz, the last flagged SSMD_FLAG_END_OF_STREAM), each block released
 *  when its last sample is due in real time; with cfg->wait_subscribers > 0
 *  it first waits for that many subscriptions.
 *  Stops early, keeping what was written, when *stop becomes non-zero.
 *  Prints one line on stderr for every error.  Returns the process exit
 *  status: 0, 1 (runtime failure) or 2 (bad option or input). */
int ssmd_generate_run(const ssmd_config *cfg, const char *model_path, volatile sig_atomic_t *stop);

#endif /* SSMD_GENERATE_H */
