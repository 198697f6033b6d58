/* SPDX-License-Identifier: MIT */
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
 * Padding inputs and columns hold zero weights.
 *
 * The register tile, its dispatch and the driver are written once, in
 * linear_q8_body.h, and included per ISA with that ISA's quantizer, byte
 * dot product and float/mask primitives (STYLE.md 17). */
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
 * sums times 128 (colq) are subtracted afterwards, which leaves Σ q·w.
 * Tiles: 6 rows × 4 vectors of 16 (one block); one row × 4 vectors, odd and
 * even input groups in two sets of accumulators (integer sums: the order
 * does not matter) so that 8 chains hide vpdpbusd's latency. */

/* quant_row_512, then q + 128 as unsigned bytes (padding included) */
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline float
quant_row_u8_512(uint8_t *xu, const float *x, int n)
{
    int8_t *q = (int8_t *)xu;
    float sx = quant_row_512(q, x, n);
    const __m512i off = _mm512_set1_epi8((char)0x80);
    const int n4 = (n + 3) / 4 * 4;
    for (int k = 0; k < n4; k += 64) {
        int left = n4 - k;
        __mmask64 m = left >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << left) - 1);
        __m512i v = _mm512_maskz_loadu_epi8(m, q + k);
        _mm512_mask_storeu_epi8(xu + k, m, _mm512_xor_si512(v, off));
    }
    return sx;
}

#define Q_SUFFIX avx512
#define Q_TARGET "avx512f,avx512bw,avx512vl,avx512vnni"
#define Q_VI __m512i
#define Q_VF __m512
#define Q_W 16
#define Q_XT uint8_t
#define Q_QUANT_ROW(q, x, n) quant_row_u8_512(q, x, n)
#define Q_ZERO_I() _mm512_setzero_si512()
#define Q_BCAST4(i) _mm512_set1_epi32(i)
#define Q_WOP __m512i
#define Q_LOAD_WOP(p) _mm512_loadu_si512((const void *)(p))
#define Q_DOT(acc, xb, wop) _mm512_dpbusd_epi32(acc, xb, wop)
#define Q_COLQ 1
#define Q_SPLIT 1
#define Q_SUB_I(a, b) _mm512_sub_epi32(a, b)
#define Q_LOADU_I(p) _mm512_loadu_si512((const void *)(p))
#define Q_CVT(v) _mm512_cvtepi32_ps(v)
#define Q_LOADU_F(p) _mm512_loadu_ps(p)
#define Q_STOREU_F(p, v) _mm512_storeu_ps(p, v)
#define Q_SET1_F(f) _mm512_set1_ps(f)
#define Q_MUL_F(a, b) _mm512_mul_ps(a, b)
#define Q_ADD_F(a, b) _mm512_add_ps(a, b)
#define Q_ZERO_F() _mm512_setzero_ps()
#define Q_MASK __mmask16
#define Q_MASK_N(n) ((n) >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n)) - 1u))
#define Q_MASKZ_LOAD_F(m, p) _mm512_maskz_loadu_ps(m, p)
#define Q_MASK_STORE_F(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define Q_MRB 6
#define Q_NVF 4
#define Q_NV1 4
#include "linear_q8_body.h"

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

/* A weight operand of vpmaddubsw: the bytes w and |w|. */
typedef struct {
    __m256i w, a;
} q8_wop_256;

T256Q q8_wop_256 q8_load_wop_256(const int8_t *p)
{
    q8_wop_256 o;
    o.w = _mm256_loadu_si256((const __m256i *)p);
    o.a = _mm256_abs_epi8(o.w);
    return o;
}

/* |w| · (sign(w)·q): q·w per byte pair, no saturation; pairs summed into
 * int32 lanes by vpmaddwd with ones */
T256Q __m256i q8_dot_256(__m256i acc, __m256i xb, q8_wop_256 w)
{
    __m256i p = _mm256_maddubs_epi16(w.a, _mm256_sign_epi8(xb, w.w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* Tiles: 3 rows × 2 vectors of 8, one row × 4 vectors. */
#define Q_SUFFIX avx2
#define Q_TARGET "avx2,fma"
#define Q_VI __m256i
#define Q_VF __m256
#define Q_W 8
#define Q_XT int8_t
#define Q_QUANT_ROW(q, x, n) quant_row_256(q, x, n)
#define Q_ZERO_I() _mm256_setzero_si256()
#define Q_BCAST4(i) _mm256_set1_epi32(i)
#define Q_WOP q8_wop_256
#define Q_LOAD_WOP(p) q8_load_wop_256(p)
#define Q_DOT(acc, xb, wop) q8_dot_256(acc, xb, wop)
#define Q_COLQ 0
#define Q_SPLIT 0
#define Q_SUB_I(a, b) _mm256_sub_epi32(a, b)
#define Q_LOADU_I(p) _mm256_loadu_si256((const __m256i *)(p))
#define Q_CVT(v) _mm256_cvtepi32_ps(v)
#define Q_LOADU_F(p) _mm256_loadu_ps(p)
#define Q_STOREU_F(p, v) _mm256_storeu_ps(p, v)
#define Q_SET1_F(f) _mm256_set1_ps(f)
#define Q_MUL_F(a, b) _mm256_mul_ps(a, b)
#define Q_ADD_F(a, b) _mm256_add_ps(a, b)
#define Q_ZERO_F() _mm256_setzero_ps()
#define Q_MASK __m256i
#define Q_MASK_N(n) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define Q_MASKZ_LOAD_F(m, p) _mm256_maskload_ps(p, m)
#define Q_MASK_STORE_F(p, m, v) _mm256_maskstore_ps(p, m, v)
#define Q_MRB 3
#define Q_NVF 2
#define Q_NV1 4
#include "linear_q8_body.h"
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
