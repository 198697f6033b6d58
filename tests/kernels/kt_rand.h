/* SPDX-License-Identifier: MIT */
/* Deterministic random inputs for the kernel tests (xorshift64; each test file
 * sets its own KT_SEED before including).  Include after cmocka.h. */
#ifndef KT_RAND_H
#define KT_RAND_H

#include <stdint.h>
#include <stdlib.h>

#ifndef KT_SEED
#define KT_SEED 0x9E3779B97F4A7C15ull
#endif

static uint64_t rng_state = KT_SEED;

/* uniform in [lo, hi), 24-bit resolution */
static float frand(float lo, float hi)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

/* n such values in a malloc'd array (caller frees) */
static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v + 1);
    assert_non_null(v);
    for (size_t i = 0; i < n; ++i)
        v[i] = frand(lo, hi);
    return v;
}

#endif /* KT_RAND_H */
