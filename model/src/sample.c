/* SPDX-License-Identifier: MIT */
/* sample.c — token sampling for autoregressive generation (ssm/sample.h). */
#include "ssm/sample.h"

#include <math.h>
#include <stdlib.h>

struct ssm_sampler {
    int vocab;
    ssm_sample_params p;
    uint64_t s[4];   /* xoshiro256** state */
    float *q;        /* {vocab} unnormalised probabilities */
    int32_t *idx;    /* {vocab} kept token ids (top-k / top-p) */
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ssm_sampler_next_u64(ssm_sampler *s)
{
    uint64_t *st = s->s;
    uint64_t r = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return r;
}

void ssm_sampler_reseed(ssm_sampler *s, uint64_t seed)
{
    if (!s)
        return;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s->s[i] = splitmix64(&x);
}

void ssm_sample_params_default(ssm_sample_params *p)
{
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_prob = 0.0f;
}

int ssm_sample_params_check(const ssm_sample_params *p, ssm_error *err)
{
    if (!p)
        return ssm_error_set(err, SSM_ERR_INVALID, "sample parameters are NULL");
    if (!isfinite(p->temperature) || p->temperature < 0)
        return ssm_error_set(err, SSM_ERR_INVALID, "temperature %g is not a finite value >= 0",
                             (double)p->temperature);
    if (p->top_k < 0)
        return ssm_error_set(err, SSM_ERR_INVALID, "top_k %d is negative (0 = off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return ssm_error_set(err, SSM_ERR_INVALID, "top_p %g is outside (0, 1] (1 = off)",
                             (double)p->top_p);
    if (!(p->min_prob >= 0 && p->min_prob < 1))
        return ssm_error_set(err, SSM_ERR_INVALID, "min_prob %g is outside [0, 1) (0 = off)",
                             (double)p->min_prob);
    return SSM_OK;
}

int ssm_sampler_create(int vocab_size, const ssm_sample_params *p, uint64_t seed,
                       ssm_sampler **out, ssm_error *err)
{
    if (!out)
        return ssm_error_set(err, SSM_ERR_INVALID, "sampler output pointer is NULL");
    *out = NULL;
    if (vocab_size < 1 || vocab_size > (1 << 24))
        return ssm_error_set(err, SSM_ERR_INVALID, "vocab_size %d is outside [1, 16777216]", vocab_size);
    ssm_sample_params d;
    ssm_sample_params_default(&d);
    if (!p)
        p = &d;
    int rc = ssm_sample_params_check(p, err);
    if (rc)
        return rc;
    ssm_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return ssm_error_set(err, SSM_ERR_NOMEM, "sampler: out of memory");
    s->q = malloc((size_t)vocab_size * sizeof *s->q);
    s->idx = malloc((size_t)vocab_size * sizeof *s->idx);
    if (!s->q || !s->idx) {
        ssm_sampler_destroy(s);
        return ssm_error_set(err, SSM_ERR_NOMEM, "sampler: out of memory for vocab_size %d", vocab_size);
    }
    s->vocab = vocab_size;
    s->p = *p;
    ssm_sampler_reseed(s, seed);
    *out = s;
    return SSM_OK;
}

void ssm_sampler_destroy(ssm_sampler *s)
{
    if (!s)
        return;
    free(s->q);
    free(s->idx);
    free(s);
}

int ssm_sampler_set_params(ssm_sampler *s, const ssm_sample_params *p, ssm_error *err)
{
    if (!s)
        return ssm_error_set(err, SSM_ERR_INVALID, "sampler is NULL");
    int rc = ssm_sample_params_check(p, err);
    if (rc)
        return rc;
    s->p = *p;
    return SSM_OK;
}

/* a before b when q larger, ties by lower index (a strict total order). */
static int before(const float *q, int32_t a, int32_t b)
{
    return q[a] > q[b] || (q[a] == q[b] && a < b);
}

/* Heap sort of idx[0..n) by `before` (descending q): no allocation, O(n log n). */
static void sift(const float *q, int32_t *idx, int i, int n)
{
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            return;
        /* max-heap on "after": the root is the element that sorts last */
        if (c + 1 < n && before(q, idx[c], idx[c + 1]))
            c++;
        if (!before(q, idx[i], idx[c]))
            return;
        int32_t t = idx[i];
        idx[i] = idx[c];
        idx[c] = t;
        i = c;
    }
}

static void sort_desc(const float *q, int32_t *idx, int n)
{
    for (int i = n / 2 - 1; i >= 0; i--)
        sift(q, idx, i, n);
    for (int e = n - 1; e > 0; e--) {
        int32_t t = idx[0];
        idx[0] = idx[e];
        idx[e] = t;
        sift(q, idx, 0, e);
    }
}

/* k-th element (0-based) by `before` among idx[0..n) (quickselect, partial
 * reorder; deterministic middle pivot). */
static int32_t select_kth(const float *q, int32_t *idx, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t pv = idx[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (before(q, idx[i], pv))
                i++;
            while (before(q, pv, idx[j]))
                j--;
            if (i <= j) {
                int32_t t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return idx[k];
}

int ssm_sample(ssm_sampler *s, const float *logits, int32_t *token)
{
    if (!s || !logits || !token)
        return SSM_ERR_INVALID;
    const int V = s->vocab;
    float *q = s->q;
    int best = -1;
    for (int i = 0; i < V; i++)
        if (isfinite(logits[i]) && (best < 0 || logits[i] > logits[best]))
            best = i;
    if (best < 0) {
        *token = V / 2;
        return SSM_ERR_NONFINITE;
    }
    const float T = s->p.temperature;
    if (T == 0.0f) {
        *token = best;
        return SSM_OK;
    }
    const float mx = logits[best], inv_t = 1.0f / T;
    for (int i = 0; i < V; i++)
        q[i] = isfinite(logits[i]) ? expf((logits[i] - mx) * inv_t) : 0.0f;
    /* q[best] == 1 exactly; every other q in [0, 1]. */

    int k = s->p.top_k;
    if (k > 0 && k < V) {
        int32_t *idx = s->idx;
        for (int i = 0; i < V; i++)
            idx[i] = i;
        int32_t kth = select_kth(q, idx, V, k - 1);
        for (int i = 0; i < V; i++)
            if (before(q, kth, i))
                q[i] = 0.0f; /* sorts after the k-th: dropped */
    }
    if (s->p.top_p < 1.0f) {
        int32_t *idx = s->idx;
        int n = 0;
        double tot = 0;
        for (int i = 0; i < V; i++)
            if (q[i] > 0) {
                idx[n++] = i;
                tot += q[i];
            }
        sort_desc(q, idx, n);
        double target = (double)s->p.top_p * tot, acc = 0;
        int keep = 0;
        while (keep < n && acc < target)
            acc += q[idx[keep++]];
        if (keep < 1)
            keep = 1;
        for (int j = keep; j < n; j++)
            q[idx[j]] = 0.0f;
    }
    if (s->p.min_prob > 0) {
        double tot = 0;
        for (int i = 0; i < V; i++)
            tot += q[i];
        const float f = (float)(s->p.min_prob * tot);
        int any = 0;
        for (int i = 0; i < V; i++) {
            float v = q[i] - f;
            q[i] = v > 0 ? v : 0.0f;
            any |= v > 0;
        }
        if (!any) {
            *token = best;
            (void)ssm_sampler_next_u64(s); /* one draw per token, always */
            return SSM_OK;
        }
    }
    double tot = 0;
    for (int i = 0; i < V; i++)
        tot += q[i];
    double u = (double)(ssm_sampler_next_u64(s) >> 11) * 0x1.0p-53 * tot;
    double acc = 0;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (q[i] <= 0)
            continue;
        acc += q[i];
        last = i;
        if (acc > u) {
            *token = i;
            return SSM_OK;
        }
    }
    *token = last; /* u·tot rounded up to tot: the last kept token */
    return SSM_OK;
}
