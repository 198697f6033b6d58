/* SPDX-License-Identifier: MIT */
/* ssm/sample.h — drawing the next token from a token model's logits
 * (autoregressive generation, e.g. 8-bit mu-law audio one sample per step).
 *
 * One ssm_sampler per generated stream: it holds the stream's PRNG state and
 * scratch for one vocabulary, so a stream's tokens depend only on its seed,
 * its parameters and its logits — never on which other streams share a batch.
 *
 * The distribution a draw uses, from logits l {V} (ssm_outputs.logits row):
 *  1. temperature T: q_i ∝ exp((l_i − max l)/T) (T = 0: greedy, the first
 *     index of the largest logit; no randomness is consumed).  Non-finite
 *     logits (NaN, ±Inf) are excluded (q_i = 0).
 *  2. top-k (k >= 1): keep the k largest q_i (ties broken by lower index);
 *     k = 0 keeps all (Fan et al. 2018, "Hierarchical Neural Story Generation").
 *  3. top-p (0 < p < 1): keep the smallest set of largest q_i whose mass is
 *     >= p of what remains after top-k (Holtzman et al. 2020, nucleus
 *     sampling); p = 1 keeps all.
 *  4. probability floor f (0 <= f < 1): with q normalised to sum 1,
 *     q_i ← max(q_i − f, 0) (LPCNet's pdf floor, Valin & Skoglund 2019:
 *     the long tail of unlikely codes is what makes long sample-level
 *     generations drift into noise, the failure SaShiMi's README warns of).
 *     If nothing survives, the largest q_i is kept.
 *  5. the token is the first i whose running sum of q (in index order,
 *     float64) exceeds u·Σq, u uniform in [0, 1) from 53 bits of the PRNG.
 * PRNG: xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64 from
 * a 64-bit seed: one 64-bit draw per sampled token.  Results are bit-exact
 * for the same seed, parameters and logits on one build (expf of the C
 * library; x86-64 builds with the same libm agree).
 *
 * Cost: O(V) per draw; top-p (p < 1) adds a sort of the kept tokens,
 * O(V log V).
 *
 * Thread safety: a sampler is used by one thread at a time; distinct
 * samplers are independent.  ssm_sample / ssm_sampler_reseed /
 * ssm_sampler_set_params are real-time safe (no allocation, lock or I/O).
 */
#ifndef SSM_SAMPLE_H
#define SSM_SAMPLE_H

#include <stdint.h>

#include "ssm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ssm_sampler ssm_sampler;

/** Sampling parameters (see the numbered steps above). */
typedef struct ssm_sample_params {
    float temperature; /**< >= 0, finite; 0 = greedy; default 1 */
    int   top_k;       /**< >= 0; 0 = off; default 0 */
    float top_p;       /**< in (0, 1]; 1 = off; default 1 */
    float min_prob;    /**< probability floor in [0, 1); 0 = off; default 0 */
} ssm_sample_params;

/** Fills *p with the defaults (T 1, top-k off, top-p off, no floor). */
void ssm_sample_params_default(ssm_sample_params *p);

/** Checks ranges; SSM_OK or SSM_ERR_INVALID with one line in err naming the
 *  field and the range, e.g. "top_p 1.5 is outside (0, 1]". */
int ssm_sample_params_check(const ssm_sample_params *p, ssm_error *err);

/** Creates a sampler for a vocabulary of vocab_size tokens (>= 1) with
 *  parameters p (NULL = defaults) and seed.  Returns SSM_OK, SSM_ERR_INVALID
 *  (bad vocab_size or parameters, line in err) or SSM_ERR_NOMEM; *out is NULL
 *  on failure.  Not real-time safe (allocates). */
int ssm_sampler_create(int vocab_size, const ssm_sample_params *p, uint64_t seed,
                       ssm_sampler **out, ssm_error *err);

/** Releases a sampler; NULL is a no-op. */
void ssm_sampler_destroy(ssm_sampler *s);

/** Restarts the PRNG from seed (as after create with that seed). */
void ssm_sampler_reseed(ssm_sampler *s, uint64_t seed);

/** Replaces the parameters; SSM_OK or SSM_ERR_INVALID (sampler unchanged). */
int ssm_sampler_set_params(ssm_sampler *s, const ssm_sample_params *p, ssm_error *err);

/** Draws one token from logits {vocab_size} into *token.  Returns SSM_OK;
 *  SSM_ERR_NONFINITE when no logit is finite (then *token = vocab_size/2,
 *  the middle code — silence for 8-bit mu-law — and no randomness is
 *  consumed); SSM_ERR_INVALID for NULL arguments. */
int ssm_sample(ssm_sampler *s, const float *logits, int32_t *token);

/** The next raw 64-bit output of the sampler's PRNG (for tests). */
uint64_t ssm_sampler_next_u64(ssm_sampler *s);

#ifdef __cplusplus
}
#endif
#endif /* SSM_SAMPLE_H */
