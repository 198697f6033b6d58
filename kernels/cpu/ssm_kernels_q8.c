/* int8 linear layers (ssm_kernels.h, "q8"): out = x · wᵀ + bias with int8
 * weights (one scale per output column) and int8 activations (one scale per
 * row, made on the fly), multiplied and summed exactly in int32, scaled back
 * to fp32 once per output — the W8A8 scheme of LLM.int8()'s vector-wise
 * quantization (Dettmers et al. 2022, §3.1, without its outlier split) and
 * of llama.cpp's q8 dot products; on x86-64 the dot products are VNNI
 * (vpdpbusd, AVX-512) or vpmaddubsw/vpmaddwd (AVX2).
 *
 * Every variant computes, for row i and column j:
 *   amax   = max_k |x[i,k]|                      (exact)
 *   sx     = amax / 127,  inv = 127 / amax       (one rounding each)
 *   q[k]   = clamp(rint(x[i,k] · inv), ±127)     (round to nearest even)
 *   acc    = Σ_k q[k] · wq[k,j]                  (int32, exact)
 *   out    = ((float)acc · sx) · sw[j] + bias[j] (each op rounded once)
 * Integer sums are exact whatever their order, and the float steps are the
 * same IEEE operations in the same order, so the scalar, AVX2 and AVX-512
 * variants give identical bits, and a row's result does not depend on the
 * batch (the scale is per row).  A row holding NaN or ±Inf gives NaN in
 * every column (sx = NaN), as an fp32 product would propagate it; an
 * all-zero row, or one whose max |x| is below 2⁻¹⁰⁰, gives bias (sx = 0).
 *
 * Panel (ssm_pack_q8): wq in blocks of 64 output columns (n_pad = d_out
 * rounded up to 64), each block {k4 = ⌈d_in/4⌉, 64, 4} int8 — for each group
 * of four inputs, the four weights of a column side by side, the operand
 * layout of vpdpbusd (each 32-bit lane sums four byte products) — so that a
 * register tile of 64 columns reads one contiguous run of memory; then colq
 * {n_pad} int32 = 128 · Σ_k wq[k,j] (VNNI multiplies unsigned activations
 * q + 128 by signed weights and subtracts this), then sw {n_pad} float.
 * Padding inputs and columns hold zero weights. */
#include "kernels/ssm_kernels.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SSM_X86 1
#include <immintrin.h>
#endif

static size_t up64(size_t n) { return (n + 63) / 64 * 64; }

/* A row (or weight column) whose largest |value| is below this counts as
 * all zero: 127 / amax would overflow to +Inf below 127/FLT_MAX ≈ 3.7e-37,
 * and Inf·x does not convert to the same integer on every ISA.  The output
 * such a row could have is below d_in · 2⁻¹⁰⁰ · max|w|. */
#define Q8_TINY 0x1p-100f

enum { QB = 64 }; /* columns per panel block */

static size_t q8_cols(int d_out) { return ((size_t)d_out + QB - 1) / QB * QB; }

static size_t q8_wbytes(int d_in, int d_out)
{
    return (size_t)((d_in + 3) / 4) * q8_cols(d_out) * 4;
}

/* byte offset of (input group g, column j, input k % 4 = t) */
static size_t q8_at(int k4, int g, int j, int t)
{
    return (((size_t)(j / QB) * (size_t)k4 + (size_t)g) * QB + (size_t)(j % QB)) * 4 + (size_t)t;
}

size_t ssm_pack_q8_bytes(int d_in, int d_out)
{
    return q8_wbytes(d_in, d_out) + 2 * up64(q8_cols(d_out) * 4);
}

/* The three parts of a panel. */
static const int8_t *q8_w(const void *wp) { return wp; }
static const int32_t *q8_colq(const void *wp, int d_in, int d_out)
{
    return (const int32_t *)((const unsigned char *)wp + q8_wbytes(d_in, d_out));
}
static const float *q8_sw(const void *wp, int d_in, int d_out)
{
    return (const float *)((const unsigned char *)wp + q8_wbytes(d_in, d_out) +
                           up64(q8_cols(d_out) * 4));
}

/* max |x[k]| over n values; *bad set when one is NaN or ±Inf. */
static inline float q8_amax(const float *x, int n, int *bad)
{
    float amax = 0.0f;
    int b = 0;
    for (int k = 0; k < n; ++k) {
        float a = fabsf(x[k]);
        b |= !(a <= FLT_MAX);
        amax = a > amax ? a : amax;
    }
    *bad = b;
    return amax;
}

/* clamp(rint(v · inv), ±127): the quantization of one value (inv finite) */
static inline int8_t q8_round(float v, float inv)
{
    float r = rintf(v * inv);
    r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
    return (int8_t)r;
}

int ssm_pack_q8(void *wp, const float *w, int d_in, int d_out)
{
    assert(wp && w && d_in >= 1 && d_out >= 1);
    if (d_in > SSM_Q8_MAX_D_IN)
        return -1;
    int k4 = (d_in + 3) / 4;
    int8_t *q = wp;
    int32_t *colq = (int32_t *)q8_colq(wp, d_in, d_out);
    float *sw = (float *)q8_sw(wp, d_in, d_out);
    memset(wp, 0, ssm_pack_q8_bytes(d_in, d_out));
    for (int j = 0; j < d_out; ++j) {
        int bad;
        float amax = q8_amax(w + (size_t)j * d_in, d_in, &bad);
        if (bad)
            return -1;
        if (amax < Q8_TINY)
            continue; /* zero (or negligible) column: q 0, scale 0 */
        float inv = 127.0f / amax;
        int32_t sum = 0;
        for (int k = 0; k < d_in; ++k) {
            int8_t b = q8_round(w[(size_t)j * d_in + k], inv);
            q[q8_at(k4, k / 4, j, k % 4)] = b;
            sum += b;
        }
        colq[j] = 128 * sum;
        sw[j] = amax / 127.0f;
    }
    return 0;
}

/* Output of a call with d_in > SSM_Q8_MAX_D_IN (a programming error the
 * assertions catch in debug builds): NaN everywhere, which the runner's
 * non-finite check would report, instead of a stack overflow. */
static void q8_refuse(float *out, size_t ld_out, int n_rows, int d_out)
{
    for (int i = 0; i < n_rows; ++i)
        for (int j = 0; j < d_out; ++j)
            out[(size_t)i * ld_out + (size_t)j] = NAN;
}

/* Quantizes row x {n} into q {⌈n/4⌉·4} (signed, padding 0) and returns sx
 * (NaN for a non-finite row, 0 for an all-zero row). */
static float quant_row_scalar(int8_t *q, const float *x, int n)
{
    int bad;
    float amax = q8_amax(x, n, &bad);
    int n4 = (n + 3) / 4 * 4;
    memset(q, 0, (size_t)n4);
    if (bad)
        return NAN;
    if (amax < Q8_TINY)
        return 0.0f;
    float inv = 127.0f / amax;
    for (int k = 0; k < n; ++k)
        q[k] = q8_round(x[k], inv);
    return amax / 127.0f;
}

void ssm_linear_q8_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                          const void *wp, const float *bias, int n_rows, int d_in, int d_out)
{
    assert(out && x && wp && d_in >= 1 && d_out >= 1 && d_in <= SSM_Q8_MAX_D_IN);
    if (d_in > SSM_Q8_MAX_D_IN) { /* refused by ssm_pack_q8; never overflow the stack */
        q8_refuse(out, ld_out, n_rows, d_out);
        return;
    }
    int8_t q[SSM_Q8_MAX_D_IN + 4];
    const int8_t *w = q8_w(wp);
    const float *sw = q8_sw(wp, d_in, d_out);
    int k4 = (d_in + 3) / 4;
    for (int i = 0; i < n_rows; ++i) {
        float sx = quant_row_scalar(q, x + (size_t)i * ld_x, d_in);
        float *oi = out + (size_t)i * ld_out;
        for (int j = 0; j < d_out; ++j) {
            int32_t acc = 0;
            for (int g = 0; g < k4; ++g)
                for (int t = 0; t < 4; ++t)
                    acc += (int32_t)q[4 * g + t] * w[q8_at(k4, g, j, t)];
            float f = (float)acc * sx;
            f = f * sw[j];
            oi[j] = bias ? f + bias[j] : f;
        }
    }
}

#ifdef SSM_X86

/* Quantization of one row with AVX-512: the scalar function's operations
 * lane by lane (max of |x|, one multiply, round to nearest even by
 * vcvtps2dq under the default MXCSR, clamp). */
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline float
quant_row_512(int8_t *q, const float *x, int n)
{
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 bad = 0;
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 a = _mm512_abs_ps(_mm512_loadu_ps(x + k));
        bad |= _mm512_cmp_ps_mask(a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);
        vmax = _mm512_max_ps(vmax, a);
    }
    if (k < n) {
        __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, x + k));
        bad |= _mm512_cmp_ps_mask(a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);
        vmax = _mm512_max_ps(vmax, a);
    }
    float amax = _mm512_reduce_max_ps(vmax);
    int n4 = (n + 3) / 4 * 4;
    if (bad || amax < Q8_TINY) {
        memset(q, 0, (size_t)n4);
        return bad ? NAN : 0.0f;
    }
    float inv = 127.0f / amax;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    for (k = 0; k < n; k += 16) {
        __mmask16 m = n - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - k)) - 1u);
        __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vinv));
        v = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
        _mm_mask_storeu_epi8(q + k, m, _mm512_cvtepi32_epi8(v));
    }
    for (k = n; k < n4; ++k)
        q[k] = 0;
    return amax / 127.0f;
}

/* ---- AVX-512 VNNI ---------------------------------------------------------
 * Activations enter vpdpbusd as unsigned bytes q + 128; the weights' column
 * sums times 128 (colq) are subtracted afterwards, which leaves Σ q·w. */
#define T512Q __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline)) static inline

/* MR rows × NV vectors of 16 columns of block jb (NV ≤ 4); with one row,
 * odd and even input groups go to two sets of accumulators (integer sums:
 * the order does not matter) so that 2·NV chains hide vpdpbusd's latency. */
T512Q void tile512_q8(float *out, size_t ld_out, const uint8_t *xu, size_t ld_xu, const float *sx,
                      const int8_t *w, const int32_t *colq, const float *sw, const float *bias,
                      int k4, int d_out, int jb, const int MR, const int NV)
{
    __m512i acc[6][4], acc2[4];
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_si512();
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc2[v] = _mm512_setzero_si512();
    const int8_t *wb = w + (size_t)jb * (size_t)k4 * QB * 4;
    int g = 0;
    if (MR == 1) {
        for (; g + 2 <= k4; g += 2) {
            int32_t b0, b1;
            memcpy(&b0, xu + 4 * (size_t)g, 4);
            memcpy(&b1, xu + 4 * (size_t)g + 4, 4);
            const __m512i x0 = _mm512_set1_epi32(b0), x1 = _mm512_set1_epi32(b1);
            const int8_t *wg = wb + (size_t)g * QB * 4;
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
                acc[0][v] = _mm512_dpbusd_epi32(acc[0][v], x0, _mm512_loadu_si512((const void *)(wg + 64 * v)));
                acc2[v] = _mm512_dpbusd_epi32(acc2[v], x1, _mm512_loadu_si512((const void *)(wg + 256 + 64 * v)));
            }
        }
    }
    for (; g < k4; ++g) {
        __m512i wv[4];
        const int8_t *wg = wb + (size_t)g * QB * 4;
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)
            wv[v] = _mm512_loadu_si512((const void *)(wg + 64 * v));
        _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r) {
            int32_t xb4;
            memcpy(&xb4, xu + (size_t)r * ld_xu + 4 * (size_t)g, 4);
            __m512i xb = _mm512_set1_epi32(xb4);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)
                acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xb, wv[v]);
        }
    }
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
        int j = QB * jb + 16 * v;
        if (j >= d_out)
            break;
        int left = d_out - j;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512i cq = _mm512_loadu_si512((const void *)(colq + j));
        if (MR == 1)
            cq = _mm512_sub_epi32(cq, acc2[v]);
        __m512 s = _mm512_loadu_ps(sw + j);
        __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + j) : _mm512_setzero_ps();
        _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r) {
            __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], cq));
            f = _mm512_mul_ps(_mm512_mul_ps(f, _mm512_set1_ps(sx[r])), s);
            if (bias)
                f = _mm512_add_ps(f, b);
            _mm512_mask_storeu_ps(out + (size_t)r * ld_out + (size_t)j, m, f);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void
ssm_linear_q8_avx512(float *out, size_t ld_out, const float *x, size_t ld_x, const void *wp,
                     const float *bias, int n_rows, int d_in, int d_out)
{
    assert(out && x && wp && d_in >= 1 && d_out >= 1 && d_in <= SSM_Q8_MAX_D_IN);
    if (d_in > SSM_Q8_MAX_D_IN) { /* refused by ssm_pack_q8; never overflow the stack */
        q8_refuse(out, ld_out, n_rows, d_out);
        return;
    }
    enum { MRB = 6 };
    uint8_t xu[MRB][SSM_Q8_MAX_D_IN + 4];
    float sx[MRB];
    const int nblk = (int)(q8_cols(d_out) / QB), k4 = (d_in + 3) / 4;
    const int8_t *w = q8_w(wp);
    const int32_t *colq = q8_colq(wp, d_in, d_out);
    const float *sw = q8_sw(wp, d_in, d_out);
    const __m512i off = _mm512_set1_epi8((char)0x80);
    const size_t ldu = sizeof xu[0];
    for (int i0 = 0; i0 < n_rows; i0 += MRB) {
        int mr = n_rows - i0 >= MRB ? MRB : n_rows - i0;
        for (int r = 0; r < mr; ++r) {
            int8_t *qr = (int8_t *)xu[r];
            sx[r] = quant_row_512(qr, x + (size_t)(i0 + r) * ld_x, d_in);
            for (int k = 0; k < 4 * k4; k += 64) { /* q + 128 as unsigned bytes */
                int left = 4 * k4 - k;
                __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
                __m512i v = _mm512_maskz_loadu_epi8(m, qr + k);
                _mm512_mask_storeu_epi8(xu[r] + k, m, _mm512_xor_si512(v, off));
            }
        }
        float *oi = out + (size_t)i0 * ld_out;
        for (int jb = 0; jb < nblk; ++jb) {
            /* vectors of this block holding columns < d_out */
            int nv = (d_out - QB * jb + 15) / 16;
            nv = nv > 4 ? 4 : nv;
            if (mr == MRB) {
                switch (nv) {
                case 4: tile512_q8(oi, ld_out, xu[0], ldu, sx, w, colq, sw, bias, k4, d_out, jb, MRB, 4); break;
                case 3: tile512_q8(oi, ld_out, xu[0], ldu, sx, w, colq, sw, bias, k4, d_out, jb, MRB, 3); break;
                case 2: tile512_q8(oi, ld_out, xu[0], ldu, sx, w, colq, sw, bias, k4, d_out, jb, MRB, 2); break;
                default: tile512_q8(oi, ld_out, xu[0], ldu, sx, w, colq, sw, bias, k4, d_out, jb, MRB, 1); break;
                }
                continue;
            }
            for (int r = 0; r < mr; ++r) {
                float *o = oi + (size_t)r * ld_out;
                switch (nv) {
                case 4: tile512_q8(o, ld_out, xu[r], ldu, sx + r, w, colq, sw, bias, k4, d_out, jb, 1, 4); break;
                case 3: tile512_q8(o, ld_out, xu[r], ldu, sx + r, w, colq, sw, bias, k4, d_out, jb, 1, 3); break;
                case 2: tile512_q8(o, ld_out, xu[r], ldu, sx + r, w, colq, sw, bias, k4, d_out, jb, 1, 2); break;
                default: tile512_q8(o, ld_out, xu[r], ldu, sx + r, w, colq, sw, bias, k4, d_out, jb, 1, 1); break;
                }
            }
        }
    }
}

/* ---- AVX2 -------------------------------------------------------------------
 * No VNNI: signed activations and weights through vpmaddubsw with the sign
 * moved onto the weights (|q| · sign(q)·w, at most 2·127·127 = 32 258 per
 * int16 pair: no saturation), vpmaddwd by ones into int32 lanes.  The sum is
 * Σ q·w directly (no colq). */
#define T256Q __attribute__((target("avx2,fma"), always_inline)) static inline

T256Q float quant_row_256(int8_t *q, const float *x, int n)
{
    /* the scalar quantizer's rule; vcvtps2dq rounds to nearest even like
     * rintf under the default MXCSR */
    int bad;
    float amax = q8_amax(x, n, &bad);
    int n4 = (n + 3) / 4 * 4;
    if (bad || amax < Q8_TINY) {
        memset(q, 0, (size_t)n4);
        return bad ? NAN : 0.0f;
    }
    const float inv = 127.0f / amax;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv));
        v = _mm256_min_epi32(_mm256_max_epi32(v, lo), hi);
        int32_t tmp[8];
        _mm256_storeu_si256((__m256i *)tmp, v);
        for (int t = 0; t < 8; ++t)
            q[k + t] = (int8_t)tmp[t];
    }
    for (; k < n; ++k)
        q[k] = q8_round(x[k], inv);
    for (; k < n4; ++k)
        q[k] = 0;
    return amax / 127.0f;
}

/* MR rows × NV vectors of 8 columns from column QB·jb + 8·v0 (NV ≤ 4). */
T256Q void tile256_q8(float *out, size_t ld_out, const int8_t *xq, size_t ld_xq, const float *sx,
                      const int8_t *w, const float *sw, const float *bias, int k4, int d_out,
                      int jb, int v0, const int MR, const int NV)
{
    __m256i acc[3][4];
    const __m256i ones = _mm256_set1_epi16(1);
    _Pragma("GCC unroll 3") for (int r = 0; r < MR; ++r)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_si256();
    const int8_t *wb = w + (size_t)jb * (size_t)k4 * QB * 4 + 32 * (size_t)v0;
    for (int g = 0; g < k4; ++g) {
        __m256i wv[4], wa[4];
        const int8_t *wg = wb + (size_t)g * QB * 4;
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
            wv[v] = _mm256_loadu_si256((const __m256i *)(wg + 32 * v));
            wa[v] = _mm256_abs_epi8(wv[v]);
        }
        _Pragma("GCC unroll 3") for (int r = 0; r < MR; ++r) {
            int32_t xb4;
            memcpy(&xb4, xq + (size_t)r * ld_xq + 4 * (size_t)g, 4);
            __m256i xb = _mm256_set1_epi32(xb4);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
                /* |w| · (sign(w)·q): q·w per byte pair, no saturation */
                __m256i p = _mm256_maddubs_epi16(wa[v], _mm256_sign_epi8(xb, wv[v]));
                acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(p, ones));
            }
        }
    }
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
        int j = QB * jb + 8 * (v0 + v);
        if (j >= d_out)
            break;
        int left = d_out - j;
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 s = _mm256_loadu_ps(sw + j);
        __m256 b = bias ? _mm256_maskload_ps(bias + j, m) : _mm256_setzero_ps();
        _Pragma("GCC unroll 3") for (int r = 0; r < MR; ++r) {
            __m256 f = _mm256_cvtepi32_ps(acc[r][v]);
            f = _mm256_mul_ps(_mm256_mul_ps(f, _mm256_set1_ps(sx[r])), s);
            if (bias)
                f = _mm256_add_ps(f, b);
            _mm256_maskstore_ps(out + (size_t)r * ld_out + (size_t)j, m, f);
        }
    }
}

__attribute__((target("avx2,fma"))) static void
ssm_linear_q8_avx2(float *out, size_t ld_out, const float *x, size_t ld_x, const void *wp,
                   const float *bias, int n_rows, int d_in, int d_out)
{
    assert(out && x && wp && d_in >= 1 && d_out >= 1 && d_in <= SSM_Q8_MAX_D_IN);
    if (d_in > SSM_Q8_MAX_D_IN) { /* refused by ssm_pack_q8; never overflow the stack */
        q8_refuse(out, ld_out, n_rows, d_out);
        return;
    }
    enum { MRB = 3 };
    int8_t xq[MRB][SSM_Q8_MAX_D_IN + 4];
    float sx[MRB];
    const int nblk = (int)(q8_cols(d_out) / QB), k4 = (d_in + 3) / 4;
    const int8_t *w = q8_w(wp);
    const float *sw = q8_sw(wp, d_in, d_out);
    const size_t ldq = sizeof xq[0];
    for (int i0 = 0; i0 < n_rows; i0 += MRB) {
        int mr = n_rows - i0 >= MRB ? MRB : n_rows - i0;
        for (int r = 0; r < mr; ++r)
            sx[r] = quant_row_256(xq[r], x + (size_t)(i0 + r) * ld_x, d_in);
        float *oi = out + (size_t)i0 * ld_out;
        for (int jb = 0; jb < nblk; ++jb) {
            int nvb = (d_out - QB * jb + 7) / 8; /* vectors of 8 holding columns < d_out */
            nvb = nvb > 8 ? 8 : nvb;
            if (mr == MRB) { /* 3 rows × 2 vectors */
                for (int v0 = 0; v0 < nvb; v0 += 2) {
                    if (nvb - v0 >= 2)
                        tile256_q8(oi, ld_out, xq[0], ldq, sx, w, sw, bias, k4, d_out, jb, v0, MRB, 2);
                    else
                        tile256_q8(oi, ld_out, xq[0], ldq, sx, w, sw, bias, k4, d_out, jb, v0, MRB, 1);
                }
                continue;
            }
            for (int r = 0; r < mr; ++r) /* 1 row × 4 vectors */
                for (int v0 = 0; v0 < nvb; v0 += 4) {
                    float *o = oi + (size_t)r * ld_out;
                    switch (nvb - v0 >= 4 ? 4 : nvb - v0) {
                    case 4: tile256_q8(o, ld_out, xq[r], ldq, sx + r, w, sw, bias, k4, d_out, jb, v0, 1, 4); break;
                    case 3: tile256_q8(o, ld_out, xq[r], ldq, sx + r, w, sw, bias, k4, d_out, jb, v0, 1, 3); break;
                    case 2: tile256_q8(o, ld_out, xq[r], ldq, sx + r, w, sw, bias, k4, d_out, jb, v0, 1, 2); break;
                    default: tile256_q8(o, ld_out, xq[r], ldq, sx + r, w, sw, bias, k4, d_out, jb, v0, 1, 1); break;
                    }
                }
        }
    }
}
#endif /* SSM_X86 */

int ssm_q8_isa_supported(ssm_isa isa)
{
    if (!ssm_isa_supported(isa))
        return 0;
#ifdef SSM_X86
    if (isa == SSM_ISA_AVX512) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
    }
#endif
    return 1;
}

ssm_linear_packed_fn ssm_linear_q8_get(ssm_isa isa)
{
    if (!ssm_isa_supported(isa))
        return NULL;
#ifdef SSM_X86
    if (isa == SSM_ISA_AVX512 && ssm_q8_isa_supported(isa))
        return ssm_linear_q8_avx512;
    if (isa == SSM_ISA_AVX512 || isa == SSM_ISA_AVX2)
        return ssm_linear_q8_avx2;
#endif
    return ssm_linear_q8_scalar;
}
