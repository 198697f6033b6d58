/* SPDX-License-Identifier: MIT */
/* Pitch-correlation features (dsp/pitch.h; reference: train/model.py
 * pitch_features).  Per frame: a coarse lag search on the history decimated
 * by 4, a full-rate search of ±3 samples around it, one more forward STFT of
 * the delayed frame and per-band normalised correlations.  Every sum runs in
 * double (the reference computes the same sums through an FFT: they agree to
 * rounding, and the lag choice is rounded to 2^-20 so it does too).  The
 * coarse search is most of the cost (lags × n_fft/4 multiply-adds per frame).
 * Its sums run in chunks of hop/4 decimated samples, each chunk's chain from
 * zero and the chunks added in order: when hops tile the frame (n_fft a
 * multiple of the hop, the hop of 4), a chunk's sums are the same products in
 * the same order as those of the next chunk one frame earlier, so every chunk
 * but the newest is kept from the frames before (half the work at hop n_fft/2)
 * and the bits do not depend on whether it was kept.  AVX2 and AVX-512
 * versions, chosen at create, compute the same bits as the portable code. */
#include "dsp/pitch.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PITCH_EPS 1e-20
#define PITCH_QUANT 1048576.0 /* 2^20 */
#define PITCH_REL 1e-12       /* energies below this share of the history's count as 0 */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DSP_PITCH_AVX2 1
#define DSP_PITCH_AVX512 1
#else
#define DSP_PITCH_AVX2 0
#define DSP_PITCH_AVX512 0
#endif
#define PITCH_LAG_GROUP 64 /* lags per pass of the widest coarse version (AVX-512: 4 blocks of 16) */
#define PITCH_MAX_CHUNKS 4 /* most hops per frame whose coarse sums are kept between frames */

/* Two doubles as one value (GCC/Clang vector extension: SSE2 on x86-64, NEON
 * on AArch64, pairs of scalars elsewhere).  Each lane is an ordinary double
 * multiply and add, as in the AVX2 path below (mul then add, no FMA): the
 * results are the same bits on every ISA. */
typedef double dsp_v2d __attribute__((vector_size(16)));

static inline dsp_v2d load2(const double *p)
{
    dsp_v2d v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Σ a_i·b_i, i < n, floats multiplied and summed in double in eight partial
 * sums (and one more for the last n mod 8). */
static double dot_f(const float *a, const float *b, size_t n)
{
    dsp_v2d s0 = { 0, 0 }, s1 = s0, s2 = s0, s3 = s0;
    double tail = 0;
    for (size_t j = n - n % 8; j < n; j++) tail += (double)a[j] * b[j];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        const float *x = a + i, *y = b + i;
        s0 += (dsp_v2d){ x[0], x[1] } * (dsp_v2d){ y[0], y[1] };
        s1 += (dsp_v2d){ x[2], x[3] } * (dsp_v2d){ y[2], y[3] };
        s2 += (dsp_v2d){ x[4], x[5] } * (dsp_v2d){ y[4], y[5] };
        s3 += (dsp_v2d){ x[6], x[7] } * (dsp_v2d){ y[6], y[7] };
    }
    dsp_v2d t = (s0 + s1) + (s2 + s3);
    return (t[0] + t[1]) + tail;
}

#if DSP_PITCH_AVX2
/* dot_f with the same partial sums: lanes {0,1,2,3} of a0 are s0 and s1 above,
 * a1 holds s2 and s3, and they are combined in the same order. */
__attribute__((target("avx2"))) static double dot_f_avx2(const float *a, const float *b, size_t n)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = a0;
    double tail = 0;
    for (size_t j = n - n % 8; j < n; j++) tail += (double)a[j] * b[j];
    for (size_t i = 0; i + 8 <= n; i += 8) {
        a0 = _mm256_add_pd(a0, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                             _mm256_cvtps_pd(_mm_loadu_ps(b + i))));
        a1 = _mm256_add_pd(a1, _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)),
                                             _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4))));
    }
    __m128d s01 = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
    __m128d s23 = _mm_add_pd(_mm256_castpd256_pd128(a1), _mm256_extractf128_pd(a1, 1));
    __m128d t = _mm_add_pd(s01, s23);
    return (_mm_cvtsd_f64(t) + _mm_cvtsd_f64(_mm_unpackhi_pd(t, t))) + tail;
}
#endif

/* The coarse correlations of one chunk, num[16·blk + j] = Σ_{i0≤i<i1} cur_i ·
 * r_i[j], blk < nb, where cur_i = rd[c0 − i] and r_i = rd + (nd − 1 − i) + t0 +
 * 16·blk: each block of 16 lags keeps its sums in registers over i.  Every sum
 * is the same chain of double multiplies and adds (from zero, i ascending) in
 * every version. */
static void coarse_corr_generic(const double *rd, size_t c0, size_t nd, size_t i0, size_t i1, size_t t0,
                                size_t nb, double *num)
{
    for (size_t blk = 0; blk < 2 * nb; blk++) { /* blocks of 8 here: 4 + 4 SSE registers */
        dsp_v2d a0 = { 0, 0 }, a1 = a0, a2 = a0, a3 = a0;
        for (size_t i = i0; i < i1; i++) {
            const dsp_v2d c = { rd[c0 - i], rd[c0 - i] };
            const double *r = rd + (nd - 1 - i) + t0 + 8 * blk;
            a0 += c * load2(r);
            a1 += c * load2(r + 2);
            a2 += c * load2(r + 4);
            a3 += c * load2(r + 6);
        }
        const dsp_v2d a[4] = { a0, a1, a2, a3 };
        memcpy(num + 8 * blk, a, sizeof a);
    }
}

#if DSP_PITCH_AVX2
/* Blocks of 16 lags in pairs (eight accumulators hide the adds' latency);
 * an odd last block is computed with a 16-lag neighbour past n_lags, which
 * rdec's and num's padding hold (create).  Each lag's sum runs over i in the
 * same order as coarse_corr_generic's. */
__attribute__((target("avx2"))) static void coarse_corr_avx2(const double *rd, size_t c0, size_t nd, size_t i0,
                                                              size_t i1, size_t t0, size_t nb, double *num)
{
    for (size_t blk = 0; blk < nb; blk += 2) {
        __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (size_t i = i0; i < i1; i++) {
            const __m256d c = _mm256_set1_pd(rd[c0 - i]);
            const double *r = rd + (nd - 1 - i) + t0 + 16 * blk;
            a0 = _mm256_add_pd(a0, _mm256_mul_pd(c, _mm256_loadu_pd(r)));
            a1 = _mm256_add_pd(a1, _mm256_mul_pd(c, _mm256_loadu_pd(r + 4)));
            a2 = _mm256_add_pd(a2, _mm256_mul_pd(c, _mm256_loadu_pd(r + 8)));
            a3 = _mm256_add_pd(a3, _mm256_mul_pd(c, _mm256_loadu_pd(r + 12)));
            a4 = _mm256_add_pd(a4, _mm256_mul_pd(c, _mm256_loadu_pd(r + 16)));
            a5 = _mm256_add_pd(a5, _mm256_mul_pd(c, _mm256_loadu_pd(r + 20)));
            a6 = _mm256_add_pd(a6, _mm256_mul_pd(c, _mm256_loadu_pd(r + 24)));
            a7 = _mm256_add_pd(a7, _mm256_mul_pd(c, _mm256_loadu_pd(r + 28)));
        }
        double *o = num + 16 * blk;
        _mm256_storeu_pd(o, a0);
        _mm256_storeu_pd(o + 4, a1);
        _mm256_storeu_pd(o + 8, a2);
        _mm256_storeu_pd(o + 12, a3);
        _mm256_storeu_pd(o + 16, a4);
        _mm256_storeu_pd(o + 20, a5);
        _mm256_storeu_pd(o + 24, a6);
        _mm256_storeu_pd(o + 28, a7);
    }
}
#endif

#if DSP_PITCH_AVX512
/* Four blocks of 16 lags per pass (eight 8-lane accumulators), the lags past
 * n_lags computed into num's and rdec's padding (create); each lag's sum is
 * the chain of coarse_corr_generic's (multiply, then add: no FMA). */
__attribute__((target("avx512f"))) static void coarse_corr_avx512(const double *rd, size_t c0, size_t nd, size_t i0,
                                                                  size_t i1, size_t t0, size_t nb, double *num)
{
    for (size_t blk = 0; blk < nb; blk += 4) {
        __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (size_t i = i0; i < i1; i++) {
            const __m512d c = _mm512_set1_pd(rd[c0 - i]);
            const double *r = rd + (nd - 1 - i) + t0 + 16 * blk;
            a0 = _mm512_add_pd(a0, _mm512_mul_pd(c, _mm512_loadu_pd(r)));
            a1 = _mm512_add_pd(a1, _mm512_mul_pd(c, _mm512_loadu_pd(r + 8)));
            a2 = _mm512_add_pd(a2, _mm512_mul_pd(c, _mm512_loadu_pd(r + 16)));
            a3 = _mm512_add_pd(a3, _mm512_mul_pd(c, _mm512_loadu_pd(r + 24)));
            a4 = _mm512_add_pd(a4, _mm512_mul_pd(c, _mm512_loadu_pd(r + 32)));
            a5 = _mm512_add_pd(a5, _mm512_mul_pd(c, _mm512_loadu_pd(r + 40)));
            a6 = _mm512_add_pd(a6, _mm512_mul_pd(c, _mm512_loadu_pd(r + 48)));
            a7 = _mm512_add_pd(a7, _mm512_mul_pd(c, _mm512_loadu_pd(r + 56)));
        }
        double *o = num + 16 * blk;
        _mm512_storeu_pd(o, a0);
        _mm512_storeu_pd(o + 8, a1);
        _mm512_storeu_pd(o + 16, a2);
        _mm512_storeu_pd(o + 24, a3);
        _mm512_storeu_pd(o + 32, a4);
        _mm512_storeu_pd(o + 40, a5);
        _mm512_storeu_pd(o + 48, a6);
        _mm512_storeu_pd(o + 56, a7);
    }
}

/* dot_f of one vector a with the 7 vectors b_j = b − j, j < 7 (out[j] = Σ_i a_i ·
 * b[i − j]), each with dot_f's partial sums (lane l of an 8-lane accumulator is
 * dot_f's s_{l/2} lane l%2) and combination, so the same bits; the 7 chains
 * run side by side instead of each waiting on its own adds.  bd {n + 6}:
 * scratch for b[−6 … n) in double. */
__attribute__((target("avx512f"))) static void dots7_f_avx512(const float *a, const float *b, size_t n, double *bd,
                                                              double *out)
{
    size_t i = 0, nb = n + 6;
    for (; i + 8 <= nb; i += 8) _mm512_storeu_pd(bd + i, _mm512_cvtps_pd(_mm256_loadu_ps(b - 6 + i)));
    for (; i < nb; i++) bd[i] = (double)b[(ptrdiff_t)i - 6];
    const double *b0 = bd + 6; /* b0[i − j] = b_j[i] */
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0;
    const size_t n8 = n - n % 8;
    for (i = 0; i < n8; i += 8) {
        const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(a + i));
        const double *y = b0 + i;
        a0 = _mm512_add_pd(a0, _mm512_mul_pd(x, _mm512_loadu_pd(y)));
        a1 = _mm512_add_pd(a1, _mm512_mul_pd(x, _mm512_loadu_pd(y - 1)));
        a2 = _mm512_add_pd(a2, _mm512_mul_pd(x, _mm512_loadu_pd(y - 2)));
        a3 = _mm512_add_pd(a3, _mm512_mul_pd(x, _mm512_loadu_pd(y - 3)));
        a4 = _mm512_add_pd(a4, _mm512_mul_pd(x, _mm512_loadu_pd(y - 4)));
        a5 = _mm512_add_pd(a5, _mm512_mul_pd(x, _mm512_loadu_pd(y - 5)));
        a6 = _mm512_add_pd(a6, _mm512_mul_pd(x, _mm512_loadu_pd(y - 6)));
    }
    const __m512d acc[7] = { a0, a1, a2, a3, a4, a5, a6 };
    for (int j = 0; j < 7; j++) {
        double tail = 0;
        for (i = n8; i < n; i++) tail += (double)a[i] * b0[(ptrdiff_t)i - j];
        const __m256d lo = _mm512_castpd512_pd256(acc[j]), hi = _mm512_extractf64x4_pd(acc[j], 1);
        const __m128d s01 = _mm_add_pd(_mm256_castpd256_pd128(lo), _mm256_extractf128_pd(lo, 1));
        const __m128d s23 = _mm_add_pd(_mm256_castpd256_pd128(hi), _mm256_extractf128_pd(hi, 1));
        const __m128d t = _mm_add_pd(s01, s23);
        out[j] = (_mm_cvtsd_f64(t) + _mm_cvtsd_f64(_mm_unpackhi_pd(t, t))) + tail;
    }
}
#endif

/* dots7_f_avx512's result one dot_f at a time (the portable and AVX2 code). */
static void dots7_f_generic(const float *a, const float *b, size_t n, double *bd, double *out)
{
    (void)bd;
    for (int j = 0; j < 7; j++) out[j] = dot_f(a, b - j, n);
}

#if DSP_PITCH_AVX2
__attribute__((target("avx2"))) static void dots7_f_avx2(const float *a, const float *b, size_t n, double *bd,
                                                          double *out)
{
    (void)bd;
    for (int j = 0; j < 7; j++) out[j] = dot_f_avx2(a, b - j, n);
}
#endif

/* Three sums of squares, out[k] = dot_f(x[k], x[k], n[k]). */
static void sq3_f_generic(const float *const *x, const size_t *n, double *out)
{
    for (int k = 0; k < 3; k++) out[k] = dot_f(x[k], x[k], n[k]);
}

#if DSP_PITCH_AVX2
/* dot_f_avx2's accumulators for x[i … i+8) squared. */
__attribute__((target("avx2"), always_inline)) static inline void sq8_avx2(const float *x, __m256d *a0, __m256d *a1)
{
    const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + 4));
    *a0 = _mm256_add_pd(*a0, _mm256_mul_pd(lo, lo));
    *a1 = _mm256_add_pd(*a1, _mm256_mul_pd(hi, hi));
}

/* sq3_f_generic's sums, each dot_f_avx2's chain (the same bits): the three
 * chains run side by side over their common length, so that their adds'
 * latencies overlap, then each goes on alone. */
__attribute__((target("avx2"))) static void sq3_f_avx2(const float *const *x, const size_t *n, double *out)
{
    __m256d a00 = _mm256_setzero_pd(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    size_t m = n[0] < n[1] ? n[0] : n[1];
    m = m < n[2] ? m : n[2];
    size_t i = 0;
    for (; i + 8 <= m; i += 8) {
        sq8_avx2(x[0] + i, &a00, &a01);
        sq8_avx2(x[1] + i, &a10, &a11);
        sq8_avx2(x[2] + i, &a20, &a21);
    }
    for (size_t j = i; j + 8 <= n[0]; j += 8) sq8_avx2(x[0] + j, &a00, &a01);
    for (size_t j = i; j + 8 <= n[1]; j += 8) sq8_avx2(x[1] + j, &a10, &a11);
    for (size_t j = i; j + 8 <= n[2]; j += 8) sq8_avx2(x[2] + j, &a20, &a21);
    const __m256d a0[3] = { a00, a10, a20 }, a1[3] = { a01, a11, a21 };
    for (int k = 0; k < 3; k++) {
        double tail = 0;
        for (size_t j = n[k] - n[k] % 8; j < n[k]; j++) tail += (double)x[k][j] * x[k][j];
        __m128d s01 = _mm_add_pd(_mm256_castpd256_pd128(a0[k]), _mm256_extractf128_pd(a0[k], 1));
        __m128d s23 = _mm_add_pd(_mm256_castpd256_pd128(a1[k]), _mm256_extractf128_pd(a1[k], 1));
        __m128d t = _mm_add_pd(s01, s23);
        out[k] = (_mm_cvtsd_f64(t) + _mm_cvtsd_f64(_mm_unpackhi_pd(t, t))) + tail;
    }
}
#endif

/* The history decimated by 4, newest first: rd[n_dec − 1 − j] = (((x_{4j} +
 * x_{4j+1}) + x_{4j+2}) + x_{4j+3}) · 0.25 in double. */
static void decimate_generic(const float *x, size_t n_dec, double *rd)
{
    for (size_t j = 0; j < n_dec; j++) {
        const float *y = x + DSP_PITCH_DECIMATION * j;
        rd[n_dec - 1 - j] = ((((double)y[0] + y[1]) + y[2]) + y[3]) * 0.25;
    }
}

/* q_t = round(r_t · 2^20) for the coarse lags t < n_lags (lag tau_min + t, its
 * delayed window starting at d_{hd − tau_min − t}), r as corr() below. */
static void coarse_q_generic(const double *num, const double *cs, size_t hd, size_t nd, size_t tau_min,
                             size_t n_lags, double e0, double e_all, double *q);

#if DSP_PITCH_AVX2
/* decimate_generic, four blocks at a time: a 4×4 transpose puts sample i of
 * the four blocks in one register, so each lane adds in the same order. */
__attribute__((target("avx2"))) static void decimate_avx2(const float *x, size_t n_dec, double *rd)
{
    const __m256d quarter = _mm256_set1_pd(0.25);
    size_t j = 0;
    for (; j + 4 <= n_dec; j += 4) {
        const float *y = x + DSP_PITCH_DECIMATION * j;
        __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(y)), b = _mm256_cvtps_pd(_mm_loadu_ps(y + 4));
        __m256d c = _mm256_cvtps_pd(_mm_loadu_ps(y + 8)), d = _mm256_cvtps_pd(_mm_loadu_ps(y + 12));
        __m256d ab0 = _mm256_unpacklo_pd(a, b), ab1 = _mm256_unpackhi_pd(a, b); /* a0 b0 a2 b2 | a1 b1 a3 b3 */
        __m256d cd0 = _mm256_unpacklo_pd(c, d), cd1 = _mm256_unpackhi_pd(c, d);
        __m256d s0 = _mm256_permute2f128_pd(ab0, cd0, 0x20); /* a0 b0 c0 d0 */
        __m256d s1 = _mm256_permute2f128_pd(ab1, cd1, 0x20); /* a1 b1 c1 d1 */
        __m256d s2 = _mm256_permute2f128_pd(ab0, cd0, 0x31); /* a2 b2 c2 d2 */
        __m256d s3 = _mm256_permute2f128_pd(ab1, cd1, 0x31); /* a3 b3 c3 d3 */
        __m256d m = _mm256_mul_pd(_mm256_add_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), s2), s3), quarter);
        _mm256_storeu_pd(rd + n_dec - 4 - j, _mm256_permute4x64_pd(m, 0x1B)); /* newest first */
    }
    decimate_generic(x + DSP_PITCH_DECIMATION * j, n_dec - j, rd); /* rd[0 … n_dec − j) */
}

/* coarse_q_generic, four lags at a time (IEEE multiply, add, sqrt, divide,
 * min/max and rounding in the current mode, as nearbyint: the same bits as
 * the scalar code, also inside a host that changed the rounding mode). */
__attribute__((target("avx2"))) static void coarse_q_avx2(const double *num, const double *cs, size_t hd,
                                                           size_t nd, size_t tau_min, size_t n_lags, double e0,
                                                           double e_all, double *q)
{
    const __m256d ve0 = _mm256_set1_pd(e0), thr = _mm256_set1_pd(PITCH_REL * e_all);
    const __m256d eps = _mm256_set1_pd(PITCH_EPS), one = _mm256_set1_pd(1.0), mone = _mm256_set1_pd(-1.0);
    const __m256d quant = _mm256_set1_pd(PITCH_QUANT), zero = _mm256_setzero_pd();
    const __m256d e0_small = _mm256_cmp_pd(ve0, thr, _CMP_LT_OQ);
    size_t t = 0;
    for (; t + 4 <= n_lags; t += 4) {
        size_t k = hd - (tau_min + t) - 3; /* lags t … t+3 start at d_{k+3} … d_k */
        __m256d e = _mm256_sub_pd(_mm256_loadu_pd(cs + k + nd), _mm256_loadu_pd(cs + k));
        e = _mm256_permute4x64_pd(e, 0x1B);
        __m256d r = _mm256_div_pd(_mm256_loadu_pd(num + t), _mm256_sqrt_pd(_mm256_add_pd(_mm256_mul_pd(ve0, e), eps)));
        r = _mm256_max_pd(mone, _mm256_min_pd(one, r)); /* NaN stays NaN, as in corr() */
        __m256d small = _mm256_or_pd(e0_small, _mm256_cmp_pd(e, thr, _CMP_LT_OQ));
        r = _mm256_blendv_pd(r, zero, small);
        _mm256_storeu_pd(q + t, _mm256_round_pd(_mm256_mul_pd(r, quant), _MM_FROUND_CUR_DIRECTION));
    }
    if (t < n_lags) coarse_q_generic(num + t, cs, hd, nd, tau_min + t, n_lags - t, e0, e_all, q + t);
}
#endif

struct dsp_pitch {
    size_t n_fft, hop, n_bins, hist_len; /* hist_len = lag_max + 4 + n_fft */
    size_t n_edges;
    int lag_min, lag_max;
    int edges[DSP_PITCH_MAX_EDGES];
    float *hist;    /* {hist_len}: lag_max + 4 samples, then the current frame */
    double *rdec;   /* {hist_len / 4 + PITCH_LAG_GROUP}: the history decimated by 4, newest first, then zeros */
    double *cs;     /* {hist_len / 4 + 1}: prefix sums of its squares, oldest first */
    double *num;    /* {n_num}: coarse correlations (the chunks' sums added in order) */
    double *part;   /* {n_chunks, n_num}: each chunk's coarse sums, a ring: chunk c at (part_head + c) % n_chunks */
    double *q;      /* {n_lags}: their r rounded to 2^-20 */
    double *bd;     /* {n_fft + 6}: the full-rate search's delayed samples in double (AVX-512) */
    size_t n_dec, n_lags, n_lag_blocks, n_num;
    size_t n_chunks, chunk_len; /* the coarse sums' chunks: n_chunks of chunk_len decimated samples */
    int parts_kept;             /* the frame before left its chunks in part and its decimated history in
                                   rdec (0 after create, reset or load) */
    size_t part_head;           /* ring slot of the oldest chunk */
    void (*coarse)(const double *, size_t, size_t, size_t, size_t, size_t, size_t, double *); /* by ISA */
    void (*dots7)(const float *, const float *, size_t, double *, double *);
    void (*sq3)(const float *const *, const size_t *, double *);
    void (*decimate)(const float *, size_t, double *);
    void (*coarse_q)(const double *, const double *, size_t, size_t, size_t, size_t, double, double, double *);
    float *pspec;   /* {n_bins, 2} */
    int own_scratch; /* cs, num, q, bd and pspec (per-frame scratch) are this object's, else
                        another's (dsp_pitch_config.scratch_from) */
};

int dsp_pitch_create(dsp_pitch **out, const dsp_pitch_config *cfg, dsp_error *err)
{
    if (out) *out = NULL;
    if (!out || !cfg) return dsp_error_set(err, DSP_ERR_INVALID, "pitch: NULL argument");
    const int D = DSP_PITCH_DECIMATION;
    if (cfg->n_fft < 2 * D || cfg->n_fft % D || cfg->n_fft > (1u << 24))
        return dsp_error_set(err, DSP_ERR_INVALID, "pitch: n_fft %zu is not a multiple of %d in [%d, 2^24]",
                             cfg->n_fft, D, 2 * D);
    if (cfg->hop_samples == 0 || cfg->hop_samples > cfg->n_fft)
        return dsp_error_set(err, DSP_ERR_INVALID, "pitch: hop %zu is not in [1, n_fft %zu]", cfg->hop_samples,
                             cfg->n_fft);
    if (cfg->lag_min < 2 * D || cfg->lag_min % D || cfg->lag_max % D || cfg->lag_max <= cfg->lag_min ||
        cfg->lag_max > 65536)
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "pitch: lags %d..%d must be multiples of %d with %d <= lag_min < lag_max <= 65536",
                             cfg->lag_min, cfg->lag_max, D, 2 * D);
    size_t n_bins = cfg->n_fft / 2 + 1;
    if (!cfg->band_edges || cfg->n_edges < 2 || cfg->n_edges > DSP_PITCH_MAX_EDGES)
        return dsp_error_set(err, DSP_ERR_INVALID, "pitch: %zu band edges, expected 2..%d", cfg->n_edges,
                             DSP_PITCH_MAX_EDGES);
    for (size_t i = 0; i < cfg->n_edges; i++) {
        int e = cfg->band_edges[i];
        if (e < 0 || (size_t)e > n_bins || (i > 0 && e <= cfg->band_edges[i - 1]))
            return dsp_error_set(err, DSP_ERR_INVALID,
                                 "pitch: band edge %zu (%d) is not increasing within [0, %zu]", i, e, n_bins);
    }
    const dsp_pitch *o = cfg->scratch_from;
    if (o && (o->n_fft != cfg->n_fft || o->hop != cfg->hop_samples || o->lag_min != cfg->lag_min ||
              o->lag_max != cfg->lag_max))
        return dsp_error_set(err, DSP_ERR_INVALID,
                             "pitch: scratch_from has n_fft %zu, hop %zu, lags %d..%d; this one n_fft %zu, hop %zu, "
                             "lags %d..%d",
                             o->n_fft, o->hop, o->lag_min, o->lag_max, cfg->n_fft, cfg->hop_samples, cfg->lag_min,
                             cfg->lag_max);
    dsp_pitch *p = calloc(1, sizeof *p);
    if (!p) return dsp_error_set(err, DSP_ERR_NOMEM, "pitch: out of memory");
    p->n_fft = cfg->n_fft;
    p->hop = cfg->hop_samples;
    p->n_bins = n_bins;
    p->lag_min = cfg->lag_min;
    p->lag_max = cfg->lag_max;
    p->n_edges = cfg->n_edges;
    memcpy(p->edges, cfg->band_edges, cfg->n_edges * sizeof(int));
    p->hist_len = (size_t)cfg->lag_max + D + cfg->n_fft;
    p->hist = calloc(p->hist_len, sizeof(float));
    p->n_dec = p->hist_len / D;
    p->n_lags = (size_t)(cfg->lag_max - cfg->lag_min) / D + 1;
    p->n_lag_blocks = (p->n_lags + 15) / 16;
    p->n_num = (p->n_lags + PITCH_LAG_GROUP - 1) / PITCH_LAG_GROUP * PITCH_LAG_GROUP; /* whole groups */
    /* chunks of hop/4 decimated samples where hops tile the frame in at most
     * PITCH_MAX_CHUNKS hops (smaller hops would add more chunk sums per lag than
     * they save), else one chunk */
    const int tiles = cfg->hop_samples % D == 0 && cfg->n_fft % cfg->hop_samples == 0 &&
                      cfg->n_fft / cfg->hop_samples <= PITCH_MAX_CHUNKS;
    p->n_chunks = tiles ? cfg->n_fft / cfg->hop_samples : 1;
    p->chunk_len = cfg->n_fft / D / p->n_chunks;
    p->coarse = coarse_corr_generic;
    p->dots7 = dots7_f_generic;
    p->sq3 = sq3_f_generic;
    p->decimate = decimate_generic;
    p->coarse_q = coarse_q_generic;
#if DSP_PITCH_AVX2
    if (cfg->portable != 1 && __builtin_cpu_supports("avx2")) {
        p->coarse = coarse_corr_avx2;
        p->dots7 = dots7_f_avx2;
        p->sq3 = sq3_f_avx2;
        p->decimate = decimate_avx2;
        p->coarse_q = coarse_q_avx2;
    }
#endif
#if DSP_PITCH_AVX512
    if (cfg->portable == 0 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2")) {
        p->coarse = coarse_corr_avx512;
        p->dots7 = dots7_f_avx512;
    }
#endif
    p->rdec = calloc(p->n_dec + PITCH_LAG_GROUP, sizeof(double)); /* zeros past the end: the last lags' windows */
    p->part = calloc(p->n_chunks * p->n_num, sizeof(double));
    if (o) { /* the same sizes: checked above */
        p->cs = o->cs;
        p->num = o->num;
        p->q = o->q;
        p->bd = o->bd;
        p->pspec = o->pspec;
    } else {
        p->own_scratch = 1;
        p->cs = calloc(p->n_dec + 1, sizeof(double));
        p->num = calloc(p->n_num, sizeof(double));
        p->q = calloc(p->n_lags, sizeof(double));
        p->bd = calloc(cfg->n_fft + 2 * (D - 1), sizeof(double));
        p->pspec = calloc(2 * n_bins, sizeof(float));
    }
    if (!p->hist || !p->rdec || !p->cs || !p->num || !p->part || !p->q || !p->bd || !p->pspec) {
        dsp_pitch_destroy(p);
        return dsp_error_set(err, DSP_ERR_NOMEM, "pitch: out of memory");
    }
    *out = p;
    return DSP_OK;
}

void dsp_pitch_destroy(dsp_pitch *p)
{
    if (!p) return;
    free(p->hist);
    free(p->rdec);
    free(p->part);
    if (p->own_scratch) {
        free(p->cs);
        free(p->num);
        free(p->q);
        free(p->bd);
        free(p->pspec);
    }
    free(p);
}

size_t dsp_pitch_n_features(const dsp_pitch *p)
{
    return p->n_edges;
}

void dsp_pitch_reset(dsp_pitch *p)
{
    memset(p->hist, 0, p->hist_len * sizeof(float));
    p->parts_kept = 0;
}

size_t dsp_pitch_state_bytes(const dsp_pitch *p)
{
    return p->hist_len * 4;
}

void dsp_pitch_state_save(const dsp_pitch *p, void *buf)
{
    uint8_t *b = buf;
    for (size_t i = 0; i < p->hist_len; i++) {
        uint32_t u;
        memcpy(&u, &p->hist[i], 4);
        for (int j = 0; j < 4; j++) b[4 * i + (size_t)j] = (uint8_t)(u >> (8 * j));
    }
}

int dsp_pitch_state_check(const dsp_pitch *p, const void *buf, size_t n, dsp_error *err)
{
    if (n != dsp_pitch_state_bytes(p))
        return dsp_error_set(err, DSP_ERR_FORMAT, "pitch history: %zu bytes, expected %zu", n,
                             dsp_pitch_state_bytes(p));
    const uint8_t *b = buf;
    for (size_t i = 0; i < p->hist_len; i++) {
        uint32_t u = 0;
        for (int j = 0; j < 4; j++) u |= (uint32_t)b[4 * i + (size_t)j] << (8 * j);
        float x;
        memcpy(&x, &u, 4);
        if (!isfinite(x))
            return dsp_error_set(err, DSP_ERR_FORMAT, "pitch history: sample %zu is not finite", i);
    }
    return DSP_OK;
}

int dsp_pitch_state_load(dsp_pitch *p, const void *buf, size_t n, dsp_error *err)
{
    int rc = dsp_pitch_state_check(p, buf, n, err);
    if (rc != DSP_OK) return rc;
    const uint8_t *b = buf;
    for (size_t i = 0; i < p->hist_len; i++) {
        uint32_t u = 0;
        for (int j = 0; j < 4; j++) u |= (uint32_t)b[4 * i + (size_t)j] << (8 * j);
        memcpy(&p->hist[i], &u, 4);
    }
    p->parts_kept = 0; /* the chunks' sums are recomputed from the loaded history */
    return DSP_OK;
}

/* r = dot / √(e0·e + 1e-20), 0 where either energy is below PITCH_REL of the
 * whole history's (e_all: there the energies, which train/model.py takes as
 * differences of running sums, are rounding noise), clamped to [−1, 1]. */
static double corr(double dot, double e0, double e, double e_all)
{
    if (e0 < PITCH_REL * e_all || e < PITCH_REL * e_all) return 0.0;
    double r = dot / sqrt(e0 * e + PITCH_EPS);
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

static void coarse_q_generic(const double *num, const double *cs, size_t hd, size_t nd, size_t tau_min,
                             size_t n_lags, double e0, double e_all, double *q)
{
    for (size_t t = 0; t < n_lags; t++) {
        size_t k = hd - (tau_min + t); /* the delayed window starts at d_k */
        q[t] = nearbyint(corr(num[t], e0, cs[k + nd] - cs[k], e_all) * PITCH_QUANT);
    }
}

int dsp_pitch_frame(dsp_pitch *p, dsp_stft *stft, const float *frame, const float *spec, float *out)
{
    const size_t D = DSP_PITCH_DECIMATION;
    const size_t H = (size_t)p->lag_max + D, n = p->n_fft;
    /* the history: the previous H samples before this frame, then the frame */
    memmove(p->hist, p->hist + p->hop, H * sizeof(float));
    memcpy(p->hist + H, frame, n * sizeof(float));

    /* coarse search on the decimated signal d (oldest first; rdec holds it newest
     * first): num(τ) = Σ_{i<nd} cur_i·d_{hd−τ+i}, cur = d[hd…], accumulated over i with
     * the lags innermost in blocks of 16 (contiguous in rdec: 16 sums in registers);
     * energies from prefix sums of d² */
    size_t n_dec = p->n_dec, hd = H / D, nd = n / D;
    double *rd = p->rdec, *cs = p->cs, *num = p->num;
    if (p->parts_kept) {
        /* the frame before decimated all but the newest hop: its blocks moved by hop/4 (the
         * hop a multiple of 4 where chunks are kept), so only the newest hop/4 are computed */
        const size_t nh = p->hop / D;
        memmove(rd + nh, rd, (n_dec - nh) * sizeof(double));
        p->decimate(p->hist + p->hist_len - p->hop, nh, rd);
    } else {
        p->decimate(p->hist, n_dec, rd);
    }
    cs[0] = 0;
    for (size_t j = 0; j < n_dec; j++) cs[j + 1] = cs[j] + rd[n_dec - 1 - j] * rd[n_dec - 1 - j];
    const size_t tau_min = (size_t)p->lag_min / D;
    /* cur_i = d_{hd + i} = rd[n_dec − 1 − hd − i]; r_i[j] = d_{hd − τ + i}, τ = tau_min + 16·blk + j.
     * Chunk c (i in [c·len, (c+1)·len)) of this frame is chunk c + 1 of the frame before: the
     * same products (the history moved by one hop = len decimated samples), so the ring drops
     * its oldest chunk and only the newest is computed. */
    const size_t nc = p->n_chunks, len = p->chunk_len, nn = p->n_num;
    const size_t first = p->parts_kept ? nc - 1 : 0; /* the first chunk to compute */
    p->part_head = p->parts_kept ? (p->part_head + 1) % nc : 0;
    for (size_t c = first; c < nc; c++)
        p->coarse(rd, n_dec - 1 - hd, nd, c * len, (c + 1) * len, tau_min, p->n_lag_blocks,
                  p->part + (p->part_head + c) % nc * nn);
    p->parts_kept = nc > 1;
    /* num = ((chunk 0 + chunk 1) + chunk 2) + …, lag by lag */
    memcpy(num, p->part + p->part_head * nn, p->n_lags * sizeof(double));
    for (size_t c = 1; c < nc; c++) {
        const double *pc = p->part + (p->part_head + c) % nc * nn;
        for (size_t t = 0; t < p->n_lags; t++) num[t] += pc[t];
    }
    p->coarse_q(num, cs, hd, nd, tau_min, p->n_lags, cs[n_dec] - cs[hd], cs[n_dec], p->q);
    size_t t_best = 0;
    for (size_t t = 1; t < p->n_lags; t++)
        if (p->q[t] > p->q[t_best]) t_best = t;
    const int tau_best = (int)(tau_min + t_best);

    /* full-rate search around 4τ.  The seven delayed windows share the samples
     * fr[3 − 4τ … n − 3 − 4τ): their energies are that sum plus 3 + δ samples
     * before it and 3 − δ after (sums of squares only: no cancellation). */
    const float *fr = p->hist + H;
    const int T0 = tau_best * (int)D;
    const float *core = fr - T0 + ((int)D - 1);
    const float *const sq_x[3] = { fr, p->hist, core };
    const size_t sq_n[3] = { n, p->hist_len, n - 2 * (D - 1) };
    double sq[3];
    p->sq3(sq_x, sq_n, sq);
    const double e0f = sq[0], e_all = sq[1], e_core = sq[2];
    double dots[2 * DSP_PITCH_DECIMATION - 1]; /* dots[j] = Σ fr·(fr − (T0 − 3 + j)) */
    p->dots7(fr, core, n, p->bd, dots);
    int T_best = 0;
    double r_best = 0, q_best = -HUGE_VAL;
    for (int delta = -(int)D + 1; delta < (int)D; delta++) {
        int T = T0 + delta;
        const float *xd = fr - T;
        double head = 0, tail = 0;
        for (int i = 0; i < (int)D - 1 + delta; i++) head += (double)xd[i] * xd[i];
        for (int i = (int)n - ((int)D - 1 - delta); i < (int)n; i++) tail += (double)xd[i] * xd[i];
        double r = corr(dots[delta + (int)D - 1], e0f, (e_core + head) + tail, e_all);
        double q = nearbyint(r * PITCH_QUANT);
        if (q > q_best) {
            q_best = q;
            r_best = r;
            T_best = T;
        }
    }

    /* band correlations with the delayed frame's spectrum */
    dsp_stft_forward(stft, p->pspec, fr - T_best);
    for (size_t b = 0; b + 1 < p->n_edges; b++) {
        double xp = 0, ex = 0, ep = 0;
        for (int k = p->edges[b]; k < p->edges[b + 1]; k++) {
            double xr = spec[2 * k], xi = spec[2 * k + 1];
            double pr = p->pspec[2 * k], pi = p->pspec[2 * k + 1];
            xp += xr * pr + xi * pi;
            ex += xr * xr + xi * xi;
            ep += pr * pr + pi * pi;
        }
        out[b] = (float)(xp / sqrt(ex * ep + PITCH_EPS));
    }
    out[p->n_edges - 1] = (float)r_best;
    return T_best;
}
