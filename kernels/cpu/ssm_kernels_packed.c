/* SPDX-License-Identifier: MIT */
/* Packed linear layers (ssm_kernels.h, "packed"): out = x · wᵀ + bias with
 * the weights transposed once into {d_in, n_pad} panels (n_pad = d_out
 * rounded up to SSM_PACK_COLS, zero columns beyond d_out), in fp32 or IEEE
 * half, computed by a scalar reference, an AVX2+FMA and an AVX-512 variant.
 *
 * Summation order, the same in every variant: each output element is one
 * chain of fused multiply-adds over k = 0, 1, …, d_in−1 starting from +0,
 * then + bias[j] (separately rounded).  An FMA is correctly rounded, a half
 * converts to float exactly, and a vector lane computes exactly what the
 * scalar fmaf() chain computes, so the three variants give identical bits,
 * and a row's result depends neither on the batch nor on its position
 * (register tiles only decide which chains advance together).  That keeps
 * ssm_step's batch invariance with FMA speed, and makes results the same on
 * every x86-64 (without hardware FMA the scalar variant is exact but slow).
 *
 * Panel layout: strips of SSM_PACK_COLS columns, each contiguous over k
 * (BLIS's packed B), so a register tile reads NV sequential streams that
 * the prefetchers follow, and a strip's K block sits in consecutive lines:
 * with the {d_in, n_pad} row-major layout of before, rows k of a strip were
 * n_pad·4 bytes apart (4 or 8 KiB at d_out 1024 or 2048), all in the same
 * cache sets, so a strip fell out of L1 and L2 by associativity well before
 * their capacity (64 × 2048 → 512: 146 → 226 GFLOP/s on Zen 5).
 *
 * Cache blocking (batches of 3+ rows): the K dimension in blocks of kc
 * inputs whose weight strip fills a quarter of L2, the rows in blocks of mc
 * whose inputs fill half of L2, both from the cache sizes detected at
 * start-up (ssm_cpu_caches_get; lp_nominal).  A chain split over K blocks
 * waits in the output between blocks, stored and reloaded exactly, so the
 * bits do not depend on the block sizes (tests/kernels forces small ones).
 * Blocks sized for L1 (a strip's K block in half of L1: kc 96 for AVX-512
 * fp32 with 48 KiB) measured slower at every shape of the bench models on
 * Zen 5: the outputs' extra round trips cost more than L1 residency wins
 * once the strips are contiguous and prefetched (docs/performance.md).
 *
 * Tiling (the BLIS/OpenBLAS micro-kernel shape): a tile of MR input rows ×
 * NV vectors of output columns lives in registers; for each k, NV weight
 * vectors are loaded from the packed row k and each of the MR inputs x[r,k]
 * is broadcast into NV FMAs.  AVX-512: MR 6 × NV 4 (24 accumulators of 32
 * registers); AVX2: MR 4 × NV 3 (12 of 16).  With one or two rows (the
 * latency-bound batch-1 step) NV is 8 (AVX-512) / 6 (AVX2) so that enough
 * independent chains hide the FMA latency while the weights stream once.
 *
 * The tile loop and the blocked driver are written once, in
 * linear_packed_body.h, and instantiated below per ISA (linear_packed_isa.h:
 * f32 and f16 of each) from that ISA's load/broadcast/FMA/store primitives (STYLE.md 17); the scalar
 * reference is one body for both dtypes. */
#include "kernels/ssm_kernels.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SSM_X86 1
#include <immintrin.h>
#endif

#include "bits.h"
#include "poly.h"

/* ---- IEEE binary16 conversions ----------------------------------------- */

/* Round to nearest even (F. Giesen, "float_to_half_fast3_rtne", public
 * domain): overflow gives ±Inf, NaN a quiet NaN, tiny values subnormals
 * (rounded by adding 0.5, whose ulp is the half subnormal step 2⁻²⁴). */
unsigned short ssm_f32_to_half(float f)
{
    uint32_t u = f2u(f);
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint32_t o;
    if (u >= (127u + 16u) << 23) {
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < 113u << 23) {
        const uint32_t magic = 126u << 23; /* 0.5f */
        o = f2u(u2f(u) + u2f(magic)) - magic;
    } else {
        uint32_t odd = (u >> 13) & 1u;
        u += 0xc8000000u + 0xfffu; /* rebias the exponent (−112), round */
        u += odd;
        o = u >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

float ssm_half_to_f32(unsigned short h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* exact: m < 2¹⁰ */
        return sign ? -v : v;
    }
    if (e == 31)
        return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112u) << 23) | (m << 13));
}

/* ---- packing ------------------------------------------------------------ */

int ssm_pack_cols(int d_out)
{
    return (d_out + SSM_PACK_COLS - 1) / SSM_PACK_COLS * SSM_PACK_COLS;
}

size_t ssm_pack_elems(int d_in, int d_out)
{
    return (size_t)SSM_PACK_STRIP_ROWS(d_in) * (size_t)ssm_pack_cols(d_out);
}

/* Element (k, j) of a panel: strip j / SSM_PACK_COLS, contiguous over k,
 * strips d_in + 1 rows apart (SSM_PACK_STRIP_ROWS). */
static inline size_t pack_idx(int d_in, int k, int j)
{
    return ((size_t)(j / SSM_PACK_COLS) * (size_t)SSM_PACK_STRIP_ROWS(d_in) + (size_t)k) *
               SSM_PACK_COLS + (size_t)(j % SSM_PACK_COLS);
}

void ssm_pack_f32(float *wp, const float *w, int d_in, int d_out)
{
    int np = ssm_pack_cols(d_out);
    for (int j = 0; j < np; ++j)
        for (int k = 0; k < SSM_PACK_STRIP_ROWS(d_in); ++k)
            wp[pack_idx(d_in, k, j)] = j < d_out && k < d_in ? w[(size_t)j * d_in + k] : 0.0f;
}

void ssm_pack_f16(unsigned short *wp, const float *w, int d_in, int d_out)
{
    int np = ssm_pack_cols(d_out);
    for (int j = 0; j < np; ++j)
        for (int k = 0; k < SSM_PACK_STRIP_ROWS(d_in); ++k)
            wp[pack_idx(d_in, k, j)] =
                j < d_out && k < d_in ? ssm_f32_to_half(w[(size_t)j * d_in + k]) : 0;
}

/* ---- scalar reference ---------------------------------------------------- */

/* Weight idx of an fp32 or half panel, as a float (exact). */
__attribute__((always_inline)) static inline float packed_w(const void *w, size_t idx,
                                                            const int f16)
{
    return f16 ? ssm_half_to_f32(((const uint16_t *)w)[idx]) : ((const float *)w)[idx];
}

/* One body for both dtypes (f16 a constant at each call). */
__attribute__((always_inline)) static inline void
linear_packed_scalar(float *out, size_t ld_out, const float *x, size_t ld_x, const void *w,
                     const float *bias, int n_rows, int d_in, int d_out, const int f16)
{
    assert(out && x && w && d_in >= 1 && d_out >= 1);
    for (int i = 0; i < n_rows; ++i) {
        const float *xi = x + (size_t)i * ld_x;
        float *oi = out + (size_t)i * ld_out;
        for (int j = 0; j < d_out; ++j) {
            float acc = 0.0f;
            for (int k = 0; k < d_in; ++k)
                acc = fmaf(xi[k], packed_w(w, pack_idx(d_in, k, j), f16), acc);
            oi[j] = bias ? acc + bias[j] : acc;
        }
    }
}

void ssm_linear_packed_f32_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                                  const void *wp, const float *bias,
                                  int n_rows, int d_in, int d_out)
{
    linear_packed_scalar(out, ld_out, x, ld_x, wp, bias, n_rows, d_in, d_out, 0);
}

void ssm_linear_packed_f16_scalar(float *out, size_t ld_out, const float *x, size_t ld_x,
                                  const void *wp, const float *bias,
                                  int n_rows, int d_in, int d_out)
{
    linear_packed_scalar(out, ld_out, x, ld_x, wp, bias, n_rows, d_in, d_out, 1);
}

/* ---- cache sizes and blocking ------------------------------------------- */

/* Bytes of the data (or unified) cache of this level that cpu0 reports in
 * sysfs (/sys/devices/system/cpu/cpu0/cache/index<i>/{level,type,size}),
 * 0 when absent. */
static size_t sysfs_cache_bytes(int level)
{
    for (int i = 0; i < 8; ++i) {
        char path[96], type[32] = "";
        int lv = 0;
        unsigned long sz = 0;
        char unit = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        FILE *f = fopen(path, "r");
        if (!f)
            return 0;
        int ok = fscanf(f, "%d", &lv) == 1;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (ok && (f = fopen(path, "r")) != NULL) {
            ok = fscanf(f, "%31s", type) == 1;
            fclose(f);
        }
        if (!ok || lv != level || strcmp(type, "Instruction") == 0)
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        if ((f = fopen(path, "r")) != NULL) {
            ok = fscanf(f, "%lu%c", &sz, &unit) >= 1;
            fclose(f);
            if (ok)
                return (size_t)sz * (unit == 'K' ? 1024u : unit == 'M' ? 1024u * 1024u : 1u);
        }
    }
    return 0;
}

static size_t detect_cache(int level)
{
    long v = -1;
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
    v = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE
                                                                 : _SC_LEVEL3_CACHE_SIZE);
#endif
    return v > 0 ? (size_t)v : sysfs_cache_bytes(level);
}

/* Detected once (idempotent: threads racing here store the same values). */
static _Atomic size_t g_cache[3]; /* L1d, L2, L3; 0 = not detected yet */
static _Atomic int g_cache_done;
static _Atomic int g_block_kc, g_block_mc; /* ssm_linear_packed_set_blocking */

void ssm_cpu_caches_get(ssm_cpu_caches *out)
{
    if (!atomic_load_explicit(&g_cache_done, memory_order_acquire)) {
        for (int l = 0; l < 3; ++l)
            atomic_store_explicit(&g_cache[l], detect_cache(l + 1), memory_order_relaxed);
        atomic_store_explicit(&g_cache_done, 1, memory_order_release);
    }
    out->l1d_bytes = atomic_load_explicit(&g_cache[0], memory_order_relaxed);
    out->l2_bytes = atomic_load_explicit(&g_cache[1], memory_order_relaxed);
    out->l3_bytes = atomic_load_explicit(&g_cache[2], memory_order_relaxed);
}

void ssm_linear_packed_set_blocking(int kc, int mc)
{
    atomic_store_explicit(&g_block_kc, kc > 0 ? kc : 0, memory_order_relaxed);
    atomic_store_explicit(&g_block_mc, mc > 0 ? mc : 0, memory_order_relaxed);
}

/* The nominal blocks: kc inputs whose weight strip (strip_bytes per input,
 * contiguous in the panel) fills a quarter of L2, so a strip's K block is
 * read from L2 by every row tile while the inputs and outputs stream past
 * it; mc rows (a multiple of mr) whose kc inputs fill half of L2, so the
 * inputs of a row block stay in L2 across the column strips.  Unknown
 * caches count as 32 KiB L1 and 256 KiB L2, the smallest of x86-64 cores
 * since 2008. */
static void lp_nominal(int strip_bytes, int mr, int *kc, int *mc)
{
    ssm_cpu_caches c;
    ssm_cpu_caches_get(&c);
    size_t l2 = c.l2_bytes ? c.l2_bytes : (size_t)256 << 10;
    size_t k = l2 / 4 / (size_t)strip_bytes;
    k = k < 16 ? 16 : k > (1u << 20) ? (1u << 20) : k;
    size_t m = l2 / 2 / (k * sizeof(float)) / (size_t)mr * (size_t)mr;
    m = m < (size_t)mr ? (size_t)mr : m > (1u << 20) ? (1u << 20) : m;
    *kc = (int)k;
    *mc = (int)m;
}

/* The blocks of one call: the forced sizes (ssm_linear_packed_set_blocking)
 * as they are, else the nominal ones evened out over d_in and n_rows (no
 * small last block: ceil(d_in / ceil(d_in / kc)); mc from the K block
 * actually used, a multiple of mr). */
static _Atomic size_t g_l2_eff; /* L2 bytes as lp_nominal counts them; 0 = not yet */

static void lp_blocking(int strip_bytes, int mr, int d_in, int n_rows, int *kc, int *mc)
{
    int okc = atomic_load_explicit(&g_block_kc, memory_order_relaxed);
    int omc = atomic_load_explicit(&g_block_mc, memory_order_relaxed);
    size_t l2 = atomic_load_explicit(&g_l2_eff, memory_order_relaxed);
    if (!l2) {
        ssm_cpu_caches c;
        ssm_cpu_caches_get(&c);
        l2 = c.l2_bytes ? c.l2_bytes : (size_t)256 << 10;
        atomic_store_explicit(&g_l2_eff, l2, memory_order_relaxed);
    }
    /* the common case, one block each way, without divisions (small layers
     * take a fraction of a microsecond) */
    if (!okc && !omc && (size_t)d_in * (size_t)strip_bytes <= l2 / 4 &&
        (size_t)n_rows * (size_t)d_in * sizeof(float) <= l2 / 2) {
        *kc = d_in;
        *mc = n_rows;
        return;
    }
    int k, m;
    lp_nominal(strip_bytes, mr, &k, &m);
    if (okc) {
        k = okc;
    } else {
        int nk = (d_in + k - 1) / k;
        k = (d_in + nk - 1) / nk;
    }
    if (omc) {
        m = omc;
    } else {
        size_t mm = l2 / 2 / ((size_t)k * sizeof(float));
        mm = mm < (size_t)mr ? (size_t)mr : mm > (1u << 20) ? (1u << 20) : mm;
        int nm = (int)(((size_t)n_rows + mm - 1) / mm);
        m = (n_rows + nm - 1) / nm;
        m = (m + mr - 1) / mr * mr;
    }
    *kc = k;
    *mc = m;
}

#ifdef SSM_X86

/* ---- AVX-512: MR 6 × NV 4, one or two rows NV 8 ---------------------------- */

#define LP_TARGET "avx512f,avx512vl,f16c,fma,avx2"
#define LP_V __m512
#define LP_W 16
#define LP_ZERO() _mm512_setzero_ps()
#define LP_SET1(f) _mm512_set1_ps(f)
#define LP_LOADU(p) _mm512_loadu_ps(p)
#define LP_STOREU(p, v) _mm512_storeu_ps(p, v)
#define LP_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LP_ADD(a, b) _mm512_add_ps(a, b)
#define LP_MASK __mmask16
#define LP_MASK_N(n) ((n) >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n)) - 1u))
#define LP_MASKZ_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define LP_MASK_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define LP_MR 6
#define LP_NV 4
#define LP_NV1 8

#define LP_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define LP_ISA avx512
#include "linear_packed_isa.h"

/* ---- AVX2 + FMA: MR 4 × NV 3, one or two rows NV 6 -------------------------- */

#define LP_TARGET "avx2,fma,f16c"
#define LP_V __m256
#define LP_W 8
#define LP_ZERO() _mm256_setzero_ps()
#define LP_SET1(f) _mm256_set1_ps(f)
#define LP_LOADU(p) _mm256_loadu_ps(p)
#define LP_STOREU(p, v) _mm256_storeu_ps(p, v)
#define LP_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LP_ADD(a, b) _mm256_add_ps(a, b)
#define LP_MASK __m256i
#define LP_MASK_N(n) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define LP_MASKZ_LOAD(m, p) _mm256_maskload_ps(p, m)
#define LP_MASK_STORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define LP_MR 4
#define LP_NV 3
#define LP_NV1 6

#define LP_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define LP_ISA avx2
#include "linear_packed_isa.h"

#endif /* SSM_X86 */

/* ---- dispatch ------------------------------------------------------------- */

int ssm_isa_supported(ssm_isa isa)
{
    switch (isa) {
    case SSM_ISA_SCALAR:
        return 1;
#ifdef SSM_X86
    case SSM_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SSM_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

ssm_isa ssm_isa_best(void)
{
    if (ssm_isa_supported(SSM_ISA_AVX512))
        return SSM_ISA_AVX512;
    if (ssm_isa_supported(SSM_ISA_AVX2))
        return SSM_ISA_AVX2;
    return SSM_ISA_SCALAR;
}

const char *ssm_isa_name(ssm_isa isa)
{
    switch (isa) {
    case SSM_ISA_SCALAR: return "scalar";
    case SSM_ISA_AVX2: return "avx2";
    case SSM_ISA_AVX512: return "avx512";
    default: return "unknown";
    }
}

int ssm_isa_parse(const char *name, ssm_isa *out)
{
    static const ssm_isa all[] = {SSM_ISA_SCALAR, SSM_ISA_AVX2, SSM_ISA_AVX512};
    if (!name || !out)
        return -1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        if (strcmp(name, ssm_isa_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

void ssm_linear_packed_blocking(ssm_isa isa, int f16, int *kc, int *mc)
{
    /* the strips and tiles of linear_packed_isa.h's instantiations below */
    int strip = isa == SSM_ISA_AVX512 ? 4 * 16 : isa == SSM_ISA_AVX2 ? 3 * 8 : 1;
    int mr = isa == SSM_ISA_AVX512 ? 6 : isa == SSM_ISA_AVX2 ? 4 : 1;
    if (isa == SSM_ISA_SCALAR) { /* unblocked */
        *kc = *mc = 0;
        return;
    }
    lp_nominal(strip * (f16 ? 2 : 4), mr, kc, mc);
}

ssm_linear_packed_fn ssm_linear_packed_get(ssm_isa isa, int f16)
{
    if (!ssm_isa_supported(isa))
        return NULL;
    switch (isa) {
#ifdef SSM_X86
    case SSM_ISA_AVX512:
        return f16 ? ssm_linear_packed_f16_avx512 : ssm_linear_packed_f32_avx512;
    case SSM_ISA_AVX2:
        return f16 ? ssm_linear_packed_f16_avx2 : ssm_linear_packed_f32_avx2;
#endif
    case SSM_ISA_SCALAR:
        return f16 ? ssm_linear_packed_f16_scalar : ssm_linear_packed_f32_scalar;
    default:
        return NULL;
    }
}

/* ---- selective scan step, explicit AVX2 ------------------------------------
 * The same operations, in the same order, as ssm_scan_step_f32_vec (vexp_fma:
 * the Cephes polynomial with its reduction and Horner chain as FMAs, one
 * rounding each as fmaf; h·dA + dx·B unfused, C·h summed in eight lanes then
 * the fixed tree), written with intrinsics over blocks of eight states: the
 * compiler's vectorisation of the _vec loop was the step's hot spot (a
 * horizontal reduction per channel).  The clamps are min/max with the
 * constant first, which keep NaN as the _vec comparisons do, and the tail
 * block is masked, so the bits equal the _vec kernel's (tests/kernels). */
#ifdef SSM_X86
#define TA __attribute__((target("avx2,fma"), always_inline)) static inline

TA __m256 vexp256(__m256 x)
{
    const __m256 shifter = _mm256_set1_ps(SSM_EXP_SHIFTER);
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);  /* x > 88 ? 88 : x, NaN kept */
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x); /* x < -87 ? -87 : x */
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(SSM_LOG2E), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-SSM_LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-SSM_LN2_LO), r);
    __m256 p = _mm256_set1_ps(k_exp_p[0]);
    _Pragma("GCC unroll 8") for (int i = 1; i < SSM_EXP_P_N; ++i)
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(k_exp_p[i]));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    /* 2ⁿ as in vexp_fma: ((bits(t) − bits(shifter)) + 127) << 23, one add */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t),
                                                   _mm256_set1_epi32(127 - 0x4b400000)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* Eight channels at once for d_state 16, 8 and 4: the transpose-add of the
 * AVX-512 kernel below (see its note) in 256-bit registers; the lane sums
 * keep the _vec kernel's order, so the bits are the same. */

/* v0…v3 hold two channels each, one 128-bit lane per channel (v_j lane k is
 * channel 2j+k) with its four sums q; returns (q0+q1)+(q2+q3) of the eight
 * channels in channel order. */
TA __m256 hsum4x8_256(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 t01 = _mm256_add_ps(_mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
    __m256 t23 = _mm256_add_ps(_mm256_shuffle_ps(v2, v3, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm256_shuffle_ps(v2, v3, _MM_SHUFFLE(3, 1, 3, 1)));
    /* lane k: (q0+q1)+(q2+q3) of channels k, 2+k, 4+k, 6+k */
    __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(u, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* a0, a1: two channels' eight lane sums; returns [a_l + a_{l+4} of a0 |
 * the same of a1]. */
TA __m256 fold8x2_256(__m256 a0, __m256 a1)
{
    return _mm256_add_ps(_mm256_permute2f128_ps(a0, a1, 0x20), _mm256_permute2f128_ps(a0, a1, 0x31));
}

/* h ← h·exp(max(Δ·A, lmin)) + dx·B for one register of states; returns h·C. */
TA __m256 update256(float *h, const float *Ac, __m256 vd, __m256 vdx, __m256 vb, __m256 vc,
                    __m256 lmin)
{
    __m256 la = _mm256_max_ps(lmin, _mm256_mul_ps(vd, _mm256_loadu_ps(Ac)));
    __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(h), vexp256(la)),
                              _mm256_mul_ps(vdx, vb));
    _mm256_storeu_ps(h, hn);
    return _mm256_mul_ps(hn, vc);
}

/* Channels c … c+7 of one stream (pointers already offset to channel c),
 * d_state DS ∈ {16, 8, 4}; vb*, vc* hold the stream's B and C (DS 16: states
 * 0-7 in vb0 and 8-15 in vb1; DS 4: repeated twice). */
TA void scan8ch_256(float *ys, float *hc, const float *Ac, const float *ds, const float *xs,
                    const float *D, __m256 vb0, __m256 vb1, __m256 vc0, __m256 vc1, __m256 lmin,
                    const int DS)
{
    const __m256 d8 = _mm256_loadu_ps(ds), x8 = _mm256_loadu_ps(xs);
    const __m256 dx8 = _mm256_mul_ps(d8, x8);
    const __m256 zero = _mm256_setzero_ps();
    __m256 q[4];
    if (DS == 4) {
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
            const __m256i idx = _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j,
                                                  2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1);
            q[j] = _mm256_add_ps(zero, update256(hc + 8 * j, Ac + 8 * j,
                                                 _mm256_permutevar8x32_ps(d8, idx),
                                                 _mm256_permutevar8x32_ps(dx8, idx), vb0, vc0, lmin));
        }
    } else {
        float dxs[8];
        _mm256_storeu_ps(dxs, dx8);
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
            __m256 a[2];
            _Pragma("GCC unroll 2") for (int i = 0; i < 2; ++i) {
                const int ch = 2 * j + i;
                const __m256 vd = _mm256_set1_ps(ds[ch]), vdx = _mm256_set1_ps(dxs[ch]);
                a[i] = _mm256_add_ps(zero, update256(hc + DS * ch, Ac + DS * ch, vd, vdx, vb0, vc0, lmin));
                if (DS == 16)
                    a[i] = _mm256_add_ps(a[i], update256(hc + DS * ch + 8, Ac + DS * ch + 8, vd, vdx,
                                                         vb1, vc1, lmin));
            }
            q[j] = fold8x2_256(a[0], a[1]);
        }
    }
    __m256 v = hsum4x8_256(q[0], q[1], q[2], q[3]);
    if (D)
        v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_loadu_ps(D), x8));
    _mm256_storeu_ps(ys, v);
}

__attribute__((target("avx2,fma"))) static void
scan_step_avx2(float *y, size_t ld_y, float *const *ssm_state, const float *x, size_t ld_x,
               const float *dt, size_t ld_dt, const float *A, const float *B, const float *C,
               size_t ld_bc, const float *D, float dA_log_min, int n_streams, int d_inner,
               int d_state)
{
    assert(y && ssm_state && x && dt && A && B && C && d_state >= 1);
    const int nb = d_state / 8, rem = d_state % 8;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 lmin = _mm256_set1_ps(dA_log_min);
    for (int s = 0; s < n_streams; ++s) {
        float *h = ssm_state[s];
        const float *xs = x + (size_t)s * ld_x;
        const float *ds = dt + (size_t)s * ld_dt;
        const float *Bs = B + (size_t)s * ld_bc;
        const float *Cs = C + (size_t)s * ld_bc;
        float *ys = y + (size_t)s * ld_y;
        int c = 0;
        if (d_state == 16 || d_state == 8 || d_state == 4) {
            __m256 vb0, vb1 = _mm256_setzero_ps(), vc0, vc1 = _mm256_setzero_ps();
            if (d_state == 4) {
                vb0 = _mm256_broadcast_ps((const __m128 *)Bs);
                vc0 = _mm256_broadcast_ps((const __m128 *)Cs);
            } else {
                vb0 = _mm256_loadu_ps(Bs);
                vc0 = _mm256_loadu_ps(Cs);
                if (d_state == 16) {
                    vb1 = _mm256_loadu_ps(Bs + 8);
                    vc1 = _mm256_loadu_ps(Cs + 8);
                }
            }
            for (; c + 8 <= d_inner; c += 8) {
                float *hc = h + (size_t)c * d_state;
                const float *Ac = A + (size_t)c * d_state;
                const float *Dc = D ? D + c : NULL;
                if (d_state == 16)
                    scan8ch_256(ys + c, hc, Ac, ds + c, xs + c, Dc, vb0, vb1, vc0, vc1, lmin, 16);
                else if (d_state == 8)
                    scan8ch_256(ys + c, hc, Ac, ds + c, xs + c, Dc, vb0, vb1, vc0, vc1, lmin, 8);
                else
                    scan8ch_256(ys + c, hc, Ac, ds + c, xs + c, Dc, vb0, vb1, vc0, vc1, lmin, 4);
            }
        }
        for (; c < d_inner; ++c) {
            float *hc = h + (size_t)c * d_state;
            const float *Ac = A + (size_t)c * d_state;
            const float delta = ds[c];
            const __m256 vd = _mm256_set1_ps(delta);
            const __m256 vdx = _mm256_set1_ps(delta * xs[c]);
            __m256 acc = _mm256_setzero_ps();
            for (int b = 0; b < nb; ++b) {
                __m256 la = _mm256_max_ps(lmin, _mm256_mul_ps(vd, _mm256_loadu_ps(Ac + 8 * b)));
                __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(hc + 8 * b), vexp256(la)),
                                          _mm256_mul_ps(vdx, _mm256_loadu_ps(Bs + 8 * b)));
                _mm256_storeu_ps(hc + 8 * b, hn);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_loadu_ps(Cs + 8 * b)));
            }
            if (rem) {
                int o = 8 * nb;
                __m256 la = _mm256_max_ps(lmin, _mm256_mul_ps(vd, _mm256_maskload_ps(Ac + o, tail)));
                __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(hc + o, tail), vexp256(la)),
                                          _mm256_mul_ps(vdx, _mm256_maskload_ps(Bs + o, tail)));
                _mm256_maskstore_ps(hc + o, tail, hn);
                __m256 sum = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_maskload_ps(Cs + o, tail)));
                acc = _mm256_blendv_ps(acc, sum, _mm256_castsi256_ps(tail));
            }
            /* ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)) */
            __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            __m128 pr = _mm_add_ps(q, _mm_movehdup_ps(q));          /* q0+q1, ., q2+q3, . */
            __m128 v = _mm_add_ss(pr, _mm_movehl_ps(pr, pr));       /* (q0+q1)+(q2+q3) */
            float vs = _mm_cvtss_f32(v);
            ys[c] = D ? vs + D[c] * xs[c] : vs;
        }
    }
}

/* Mamba-2 scan per head (ssm_scan_heads_step_f32_vec's operations in its
 * order): dA = exp(Δ·A) once per head (vexp256's lane 0: vexp_fma's bits),
 * then per channel one pass over the state in blocks of 8: h·dA + dx·B
 * (two products, one add, no FMA), stored, and C·h accumulated in the
 * kernel's eight lanes (the tail masked into lanes 0 … rem−1), then the
 * same tree.  Used for the AVX2 and the AVX-512 ISA (the pass is bound by
 * the state's loads and stores, not by the vector width). */
__attribute__((target("avx2,fma"))) static void
scan_heads_avx2(float *y, size_t ld_y, float *const *ssm_state, const float *x, size_t ld_x,
                const float *dt, size_t ld_dt, const float *A, const float *B, const float *C,
                size_t ld_bc, const float *D, int n_streams, int n_heads, int head_dim,
                int n_groups, int d_state)
{
    assert(y && ssm_state && x && dt && A && B && C && d_state >= 1 && n_groups >= 1 &&
           n_heads % n_groups == 0);
    const int per_group = n_heads / n_groups, nb = d_state / 8, rem = d_state % 8;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int s = 0; s < n_streams; ++s) {
        float *S = ssm_state[s];
        const float *xs = x + (size_t)s * ld_x;
        const float *ds = dt + (size_t)s * ld_dt;
        float *ys = y + (size_t)s * ld_y;
        for (int h = 0; h < n_heads; ++h) {
            const int g = h / per_group;
            const float *Bg = B + (size_t)s * ld_bc + (size_t)g * d_state;
            const float *Cg = C + (size_t)s * ld_bc + (size_t)g * d_state;
            const float delta = ds[h];
            const __m256 vdA = _mm256_set1_ps(_mm256_cvtss_f32(vexp256(_mm256_set1_ps(delta * A[h]))));
            for (int p = 0; p < head_dim; ++p) {
                const int c = h * head_dim + p;
                float *hc = S + (size_t)c * d_state;
                const __m256 vdx = _mm256_set1_ps(delta * xs[c]);
                __m256 acc = _mm256_setzero_ps();
                for (int b = 0; b < nb; ++b) {
                    __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(hc + 8 * b), vdA),
                                              _mm256_mul_ps(vdx, _mm256_loadu_ps(Bg + 8 * b)));
                    _mm256_storeu_ps(hc + 8 * b, hn);
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_loadu_ps(Cg + 8 * b)));
                }
                if (rem) {
                    int o = 8 * nb;
                    __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(hc + o, tail), vdA),
                                              _mm256_mul_ps(vdx, _mm256_maskload_ps(Bg + o, tail)));
                    _mm256_maskstore_ps(hc + o, tail, hn);
                    __m256 sum = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_maskload_ps(Cg + o, tail)));
                    acc = _mm256_blendv_ps(acc, sum, _mm256_castsi256_ps(tail));
                }
                /* ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)) */
                __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                __m128 pr = _mm_add_ps(q, _mm_movehdup_ps(q));
                __m128 v = _mm_add_ss(pr, _mm_movehl_ps(pr, pr));
                float vs = _mm_cvtss_f32(v);
                ys[c] = D ? vs + D[h] * xs[c] : vs;
            }
        }
    }
}

/* AVX-512: blocks of 16 states in one register (two of the _vec kernel's
 * 8-lane blocks: acc ← (acc + low half) + high half, the same additions in
 * the same order), the rest of the states as in scan_step_avx2. */
#define T5 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"), always_inline)) static inline

/* exp(x) for x ≥ −87 (or NaN): vexp512 without its lower clamp, which is then
 * a no-op (NaN passes it unchanged too). */
T5 __m512 vexp512_above(__m512 x)
{
    const __m512 shifter = _mm512_set1_ps(SSM_EXP_SHIFTER);
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(SSM_LOG2E), shifter);
    __m512 n = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-SSM_LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-SSM_LN2_LO), r);
    __m512 p = _mm512_set1_ps(k_exp_p[0]);
    _Pragma("GCC unroll 8") for (int i = 1; i < SSM_EXP_P_N; ++i)
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k_exp_p[i]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_castps_si512(t),
                                                   _mm512_set1_epi32(127 - 0x4b400000)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

T5 __m512 vexp512(__m512 x)
{
    return vexp512_above(_mm512_max_ps(_mm512_set1_ps(-87.0f), x));
}

/* Sixteen channels at once for d_state 16, 8 and 4 (the models' sizes):
 * the state rows of consecutive channels are contiguous, so one register
 * holds one channel (16 states), two (8) or four (4), and the per-channel
 * sums C·h are finished by a transpose-add across the sixteen channels
 * instead of one horizontal reduction each.  Every lane still sees the _vec
 * kernel's operations in its order: acc[l] = (0 + p[l]) + p[l+8] (no p[l+8]
 * below 16 states), then ((a0+a4)+(a1+a5))+((a2+a6)+(a3+a7)).  Below 8
 * states a4…a7 are +0 and a_l = 0 + p_l is never −0, so a_l + a_{l+4} = a_l
 * and the tree is (a0+a1)+(a2+a3), bit for bit. */

/* v0…v3 hold four channels each, one 128-bit lane per channel (v_j lane k is
 * channel 4j+k) with its four sums q; returns (q0+q1)+(q2+q3) of the sixteen
 * channels in channel order. */
T5 __m512 hsum4x16_512(__m512 v0, __m512 v1, __m512 v2, __m512 v3)
{
    __m512 t01 = _mm512_add_ps(_mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 t23 = _mm512_add_ps(_mm512_shuffle_ps(v2, v3, _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_ps(v2, v3, _MM_SHUFFLE(3, 1, 3, 1)));
    /* lane k: (q0+q1)+(q2+q3) of channels k, 4+k, 8+k, 12+k */
    __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i tr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(tr, u);
}

/* w0 = [a_c | a_c+1], w1 = [a_c+2 | a_c+3] (eight lane sums per channel):
 * the four sums a_l + a_{l+4} of each channel, one 128-bit lane each. */
T5 __m512 fold8x4_512(__m512 w0, __m512 w1)
{
    return _mm512_add_ps(_mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* h ← h·exp(max(Δ·A, lmin)) + dx·B for one register of states; returns
 * 0 + h·C, the first addition of the lane sums.  in_range: lmin ≥ −87, so
 * max(Δ·A, lmin) is −87 or above (or NaN), where vexp512's clamp to [−87, 88]
 * is min(x, 88) alone: the same bits for every Δ, A and bound. */
T5 __m512 update512(float *h, const float *Ac, __m512 vd, __m512 vdx, __m512 vb, __m512 vc,
                    __m512 lmin, const int in_range)
{
    __m512 la = _mm512_max_ps(lmin, _mm512_mul_ps(vd, _mm512_loadu_ps(Ac)));
    __m512 hn = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(h), in_range ? vexp512_above(la) : vexp512(la)),
                              _mm512_mul_ps(vdx, vb));
    _mm512_storeu_ps(h, hn);
    return _mm512_add_ps(_mm512_setzero_ps(), _mm512_mul_ps(hn, vc));
}

/* Channels c … c+15 of one stream (ys, hc, Ac, ds, xs, D already offset to
 * channel c), d_state DS ∈ {16, 8, 4}; vb, vc hold the stream's B and C
 * repeated to fill a register. */
T5 void scan16ch_512(float *ys, float *hc, const float *Ac, const float *ds, const float *xs,
                     const float *D, __m512 vb, __m512 vc, __m512 lmin, const int DS, const int in_range)
{
    const __m512 d16 = _mm512_loadu_ps(ds), x16 = _mm512_loadu_ps(xs);
    const __m512 dx16 = _mm512_mul_ps(d16, x16);
    __m512 q[4];
    if (DS == 16) {
        float dxs[16];
        _mm512_storeu_ps(dxs, dx16);
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
            __m512 p[4];
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; ++i) {
                const int ch = 4 * j + i;
                p[i] = update512(hc + 16 * ch, Ac + 16 * ch, _mm512_set1_ps(ds[ch]),
                                 _mm512_set1_ps(dxs[ch]), vb, vc, lmin, in_range);
            }
            /* [a_c | a_c+1] = (0 + low halves) + high halves */
            __m512 w0 = _mm512_add_ps(_mm512_shuffle_f32x4(p[0], p[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_f32x4(p[0], p[1], _MM_SHUFFLE(3, 2, 3, 2)));
            __m512 w1 = _mm512_add_ps(_mm512_shuffle_f32x4(p[2], p[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                      _mm512_shuffle_f32x4(p[2], p[3], _MM_SHUFFLE(3, 2, 3, 2)));
            q[j] = fold8x4_512(w0, w1);
        }
    } else if (DS == 8) {
        const __m512i pair = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
            __m512 w[2];
            _Pragma("GCC unroll 2") for (int i = 0; i < 2; ++i) {
                const int ch = 4 * j + 2 * i;
                const __m512i idx = _mm512_add_epi32(pair, _mm512_set1_epi32(ch));
                w[i] = update512(hc + 8 * ch, Ac + 8 * ch, _mm512_permutexvar_ps(idx, d16),
                                 _mm512_permutexvar_ps(idx, dx16), vb, vc, lmin, in_range);
            }
            q[j] = fold8x4_512(w[0], w[1]);
        }
    } else {
        const __m512i quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; ++j) {
            const int ch = 4 * j;
            const __m512i idx = _mm512_add_epi32(quad, _mm512_set1_epi32(ch));
            q[j] = update512(hc + 4 * ch, Ac + 4 * ch, _mm512_permutexvar_ps(idx, d16),
                             _mm512_permutexvar_ps(idx, dx16), vb, vc, lmin, in_range);
        }
    }
    __m512 v = hsum4x16_512(q[0], q[1], q[2], q[3]);
    if (D)
        v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_loadu_ps(D), x16));
    _mm512_storeu_ps(ys, v);
}

__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) static void
scan_step_avx512(float *y, size_t ld_y, float *const *ssm_state, const float *x, size_t ld_x,
                 const float *dt, size_t ld_dt, const float *A, const float *B, const float *C,
                 size_t ld_bc, const float *D, float dA_log_min, int n_streams, int d_inner,
                 int d_state)
{
    assert(y && ssm_state && x && dt && A && B && C && d_state >= 1);
    const int n16 = d_state / 16, nb = (d_state % 16) / 8, rem = d_state % 8;
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(rem),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m512 lmin16 = _mm512_set1_ps(dA_log_min);
    const __m256 lmin = _mm256_set1_ps(dA_log_min);
    const int in_range = dA_log_min >= -87.0f; /* exp's lower clamp is a no-op (update512) */
    for (int s = 0; s < n_streams; ++s) {
        float *h = ssm_state[s];
        const float *xs = x + (size_t)s * ld_x;
        const float *ds = dt + (size_t)s * ld_dt;
        const float *Bs = B + (size_t)s * ld_bc;
        const float *Cs = C + (size_t)s * ld_bc;
        float *ys = y + (size_t)s * ld_y;
        int c = 0;
        if (d_state == 16 || d_state == 8 || d_state == 4) {
            /* B and C once per stream, repeated to fill a register */
            __m512 vb, vc;
            if (d_state == 16) {
                vb = _mm512_loadu_ps(Bs);
                vc = _mm512_loadu_ps(Cs);
            } else if (d_state == 8) {
                vb = _mm512_broadcast_f32x8(_mm256_loadu_ps(Bs));
                vc = _mm512_broadcast_f32x8(_mm256_loadu_ps(Cs));
            } else {
                vb = _mm512_broadcast_f32x4(_mm_loadu_ps(Bs));
                vc = _mm512_broadcast_f32x4(_mm_loadu_ps(Cs));
            }
            for (; c + 16 <= d_inner; c += 16) {
                float *hc = h + (size_t)c * d_state;
                const float *Ac = A + (size_t)c * d_state;
                const float *Dc = D ? D + c : NULL;
                if (d_state == 16 && in_range)
                    scan16ch_512(ys + c, hc, Ac, ds + c, xs + c, Dc, vb, vc, lmin16, 16, 1);
                else if (d_state == 16)
                    scan16ch_512(ys + c, hc, Ac, ds + c, xs + c, Dc, vb, vc, lmin16, 16, 0);
                else if (d_state == 8)
                    scan16ch_512(ys + c, hc, Ac, ds + c, xs + c, Dc, vb, vc, lmin16, 8, 0);
                else
                    scan16ch_512(ys + c, hc, Ac, ds + c, xs + c, Dc, vb, vc, lmin16, 4, 0);
            }
        }
        for (; c < d_inner; ++c) {
            float *hc = h + (size_t)c * d_state;
            const float *Ac = A + (size_t)c * d_state;
            const float delta = ds[c];
            const float dxs = delta * xs[c];
            const __m512 vd16 = _mm512_set1_ps(delta), vdx16 = _mm512_set1_ps(dxs);
            __m256 acc = _mm256_setzero_ps();
            for (int b = 0; b < n16; ++b) {
                __m512 la = _mm512_max_ps(lmin16, _mm512_mul_ps(vd16, _mm512_loadu_ps(Ac + 16 * b)));
                __m512 hn = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(hc + 16 * b), vexp512(la)),
                                          _mm512_mul_ps(vdx16, _mm512_loadu_ps(Bs + 16 * b)));
                _mm512_storeu_ps(hc + 16 * b, hn);
                __m512 pr = _mm512_mul_ps(hn, _mm512_loadu_ps(Cs + 16 * b));
                acc = _mm256_add_ps(acc, _mm512_castps512_ps256(pr));
                acc = _mm256_add_ps(acc, _mm512_extractf32x8_ps(pr, 1));
            }
            const __m256 vd = _mm256_set1_ps(delta), vdx = _mm256_set1_ps(dxs);
            int o = 16 * n16;
            if (nb) {
                __m256 la = _mm256_max_ps(lmin, _mm256_mul_ps(vd, _mm256_loadu_ps(Ac + o)));
                __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(hc + o), vexp256(la)),
                                          _mm256_mul_ps(vdx, _mm256_loadu_ps(Bs + o)));
                _mm256_storeu_ps(hc + o, hn);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_loadu_ps(Cs + o)));
                o += 8;
            }
            if (rem) {
                __m256 la = _mm256_max_ps(lmin, _mm256_mul_ps(vd, _mm256_maskload_ps(Ac + o, tail)));
                __m256 hn = _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(hc + o, tail), vexp256(la)),
                                          _mm256_mul_ps(vdx, _mm256_maskload_ps(Bs + o, tail)));
                _mm256_maskstore_ps(hc + o, tail, hn);
                __m256 sum = _mm256_add_ps(acc, _mm256_mul_ps(hn, _mm256_maskload_ps(Cs + o, tail)));
                acc = _mm256_blendv_ps(acc, sum, _mm256_castsi256_ps(tail));
            }
            __m128 q = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            __m128 pr = _mm_add_ps(q, _mm_movehdup_ps(q));
            __m128 v = _mm_add_ss(pr, _mm_movehl_ps(pr, pr));
            float vs = _mm_cvtss_f32(v);
            ys[c] = D ? vs + D[c] * xs[c] : vs;
        }
    }
}

/* ---- elementwise kernels, explicit AVX2 / AVX-512 ---------------------------
 * Softplus, conv step + SiLU, the SiLU gate and the sigmoid with the
 * operations of their _vec versions in the same order: the fmaf()s of
 * vexp_fma and vlog12 as vector FMAs, everything else (the conv's tap sum,
 * the divisions) separately rounded, the C ternaries as
 * ordered compares and blends (a NaN compares false and goes where the C
 * code sends it) and min/max with the constant first for the clamps.  Row
 * tails are masked, not padded, so the bits equal the _vec kernels' on any
 * size (tests/kernels/test_kernels_elem.c) and a stream's values do not
 * depend on its batch. */

/* log(w) for w in [1, 2]: vlog12 of ssm_kernels_vec.c (its fmaf()s as FMAs). */
T5 __m512 vlog12_512(__m512 w)
{
    __mmask16 big = _mm512_cmp_ps_mask(w, _mm512_set1_ps(SSM_SQRT2), _CMP_GT_OQ);
    __m512 bigf = _mm512_maskz_mov_ps(big, _mm512_set1_ps(1.0f));
    __m512 m = _mm512_mask_mul_ps(w, big, w, _mm512_set1_ps(0.5f));
    __m512 x = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));
    __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(k_log_q[0]);
    _Pragma("GCC unroll 10") for (int i = 1; i < SSM_LOG_Q_N; ++i)
        y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(k_log_q[i]));
    y = _mm512_mul_ps(_mm512_mul_ps(y, x), z);
    y = _mm512_fmadd_ps(bigf, _mm512_set1_ps(SSM_LN2_LO), y);
    y = _mm512_fmadd_ps(_mm512_set1_ps(-0.5f), z, y);
    x = _mm512_add_ps(x, y);
    return _mm512_fmadd_ps(bigf, _mm512_set1_ps(SSM_LN2_HI), x);
}

/* vsoftplus: v > 20 ? v : max(v, 0) + log1p(exp(−|v|)), Goldberg's log1p. */
T5 __m512 softplus512(__m512 v)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    __m512 na = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v),
                                                    _mm512_set1_epi32((int)0x80000000u)));
    __m512 t = vexp512(na);
    __m512 w = _mm512_add_ps(one, t);
    __m512 d = _mm512_sub_ps(w, one);
    __mmask16 d0 = _mm512_cmp_ps_mask(d, zero, _CMP_EQ_OQ);
    __m512 q = _mm512_div_ps(t, _mm512_mask_blend_ps(d0, d, one));
    __m512 l1p = _mm512_mask_blend_ps(d0, _mm512_mul_ps(vlog12_512(w), q), t);
    __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ), v);
    __m512 r = _mm512_add_ps(pos, l1p);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(20.0f), _CMP_GT_OQ), r, v);
}

T5 __m512 neg512(__m512 v)
{
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v),
                                                _mm512_set1_epi32((int)0x80000000u)));
}

/* SiLU: v / (1 + exp(−v)) */
T5 __m512 silu512(__m512 v)
{
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), vexp512(neg512(v))));
}

T5 __mmask16 tail512(int n)
{
    return (__mmask16)((1u << n) - 1u);
}

#define E_SUFFIX avx512
#define E_TARGET "avx512f,avx512vl,avx512dq,avx2,fma"
#define E_V __m512
#define E_W 16
#define E_MASK __mmask16
#define E_TAIL(n) tail512(n)
#define E_LOADU(p) _mm512_loadu_ps(p)
#define E_STOREU(p, v) _mm512_storeu_ps(p, v)
#define E_MASKZ_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define E_MASK_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define E_SET1(f) _mm512_set1_ps(f)
#define E_ADD(a, b) _mm512_add_ps(a, b)
#define E_MUL(a, b) _mm512_mul_ps(a, b)
#define E_DIV(a, b) _mm512_div_ps(a, b)
#define E_NEG(v) neg512(v)
#define E_EXP(v) vexp512(v)
#define E_SOFTPLUS(v) softplus512(v)
#define E_SILU(v) silu512(v)
#include "elem_body.h"

/* d_conv 4, sixteen channels: their states are 64 consecutive floats, four
 * registers of four channels (one 128-bit lane each).  Each register shifts
 * its lanes left by one and takes the new inputs at tap 3 (one two-source
 * permute), is multiplied by the weights (the same layout), and a 4×4
 * transpose inside the 128-bit lanes turns the products into one register
 * per tap, which are summed tap after tap like the scalar loop; the sums
 * come out with channel 4j+g in lane 4g+j and one permute puts them back. */
__attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma"))) static void
conv_step_avx512(float *out, size_t ld_out, float *const *conv_state, const float *x, size_t ld_x,
                 const float *w, const float *bias, int n_streams, int d_inner, int d_conv)
{
    assert(out && conv_state && x && w && d_conv >= 1);
    const __m512i unperm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i shift[4];
    for (int j = 0; j < 4; ++j) {
        int idx[16];
        for (int g = 0; g < 4; ++g) {
            for (int k = 0; k < 3; ++k)
                idx[4 * g + k] = 4 * g + k + 1;
            idx[4 * g + 3] = 16 + 4 * j + g;
        }
        shift[j] = _mm512_loadu_si512(idx);
    }
    for (int s = 0; s < n_streams; ++s) {
        float *st = conv_state[s];
        const float *xs = x + (size_t)s * ld_x;
        float *os = out + (size_t)s * ld_out;
        int c = 0;
        if (d_conv == 4)
            for (; c + 16 <= d_inner; c += 16) {
                float *sc = st + (size_t)c * 4;
                const float *wc = w + (size_t)c * 4;
                __m512 xv = _mm512_loadu_ps(xs + c), p[4];
                for (int j = 0; j < 4; ++j) {
                    __m512 zj = _mm512_permutex2var_ps(_mm512_loadu_ps(sc + 16 * j), shift[j], xv);
                    _mm512_storeu_ps(sc + 16 * j, zj);
                    p[j] = _mm512_mul_ps(zj, _mm512_loadu_ps(wc + 16 * j));
                }
                __m512 t0 = _mm512_unpacklo_ps(p[0], p[1]), t1 = _mm512_unpacklo_ps(p[2], p[3]);
                __m512 t2 = _mm512_unpackhi_ps(p[0], p[1]), t3 = _mm512_unpackhi_ps(p[2], p[3]);
                __m512 acc = _mm512_add_ps(_mm512_setzero_ps(),
                                           _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)));
                acc = _mm512_add_ps(acc, _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
                acc = _mm512_add_ps(acc, _mm512_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0)));
                acc = _mm512_add_ps(acc, _mm512_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2)));
                acc = _mm512_permutexvar_ps(unperm, acc);
                if (bias)
                    acc = _mm512_add_ps(acc, _mm512_loadu_ps(bias + c));
                _mm512_storeu_ps(os + c, silu512(acc));
            }
        int c0 = c;
        ssm_conv_sums_scalar(os, st, xs, w, bias, c0, d_inner, d_conv);
        for (; c + 16 <= d_inner; c += 16)
            _mm512_storeu_ps(os + c, silu512(_mm512_loadu_ps(os + c)));
        if (c < d_inner) {
            __mmask16 m = tail512(d_inner - c);
            _mm512_mask_storeu_ps(os + c, m, silu512(_mm512_maskz_loadu_ps(m, os + c)));
        }
    }
}

/* The same in 256-bit registers (AVX2+FMA): eight lanes, tails through
 * maskload/maskstore. */
TA __m256 vlog12_256(__m256 w)
{
    __m256 big = _mm256_cmp_ps(w, _mm256_set1_ps(SSM_SQRT2), _CMP_GT_OQ);
    __m256 bigf = _mm256_and_ps(big, _mm256_set1_ps(1.0f));
    __m256 m = _mm256_blendv_ps(w, _mm256_mul_ps(w, _mm256_set1_ps(0.5f)), big);
    __m256 x = _mm256_sub_ps(m, _mm256_set1_ps(1.0f));
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(k_log_q[0]);
    _Pragma("GCC unroll 10") for (int i = 1; i < SSM_LOG_Q_N; ++i)
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(k_log_q[i]));
    y = _mm256_mul_ps(_mm256_mul_ps(y, x), z);
    y = _mm256_fmadd_ps(bigf, _mm256_set1_ps(SSM_LN2_LO), y);
    y = _mm256_fmadd_ps(_mm256_set1_ps(-0.5f), z, y);
    x = _mm256_add_ps(x, y);
    return _mm256_fmadd_ps(bigf, _mm256_set1_ps(SSM_LN2_HI), x);
}

TA __m256 softplus256(__m256 v)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    __m256 t = vexp256(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
    __m256 w = _mm256_add_ps(one, t);
    __m256 d = _mm256_sub_ps(w, one);
    __m256 d0 = _mm256_cmp_ps(d, zero, _CMP_EQ_OQ);
    __m256 q = _mm256_div_ps(t, _mm256_blendv_ps(d, one, d0));
    __m256 l1p = _mm256_blendv_ps(_mm256_mul_ps(vlog12_256(w), q), t, d0);
    __m256 pos = _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ), v);
    __m256 r = _mm256_add_ps(pos, l1p);
    return _mm256_blendv_ps(r, v, _mm256_cmp_ps(v, _mm256_set1_ps(20.0f), _CMP_GT_OQ));
}

TA __m256 silu256(__m256 v)
{
    __m256 e = vexp256(_mm256_xor_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* lanes 0 … n−1 of eight (1 ≤ n ≤ 7) */
TA __m256i tail256(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define E_SUFFIX avx2
#define E_TARGET "avx2,fma"
#define E_V __m256
#define E_W 8
#define E_MASK __m256i
#define E_TAIL(n) tail256(n)
#define E_LOADU(p) _mm256_loadu_ps(p)
#define E_STOREU(p, v) _mm256_storeu_ps(p, v)
#define E_MASKZ_LOAD(m, p) _mm256_maskload_ps(p, m)
#define E_MASK_STORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define E_SET1(f) _mm256_set1_ps(f)
#define E_ADD(a, b) _mm256_add_ps(a, b)
#define E_MUL(a, b) _mm256_mul_ps(a, b)
#define E_DIV(a, b) _mm256_div_ps(a, b)
#define E_NEG(v) _mm256_xor_ps(v, _mm256_set1_ps(-0.0f))
#define E_EXP(v) vexp256(v)
#define E_SOFTPLUS(v) softplus256(v)
#define E_SILU(v) silu256(v)
#include "elem_body.h"

/* conv_step_avx512's scheme over eight channels: four registers of two
 * channels, lane shift by a permute and a blend, the in-lane transpose,
 * channel 2j+g in lane 4g+j. */
__attribute__((target("avx2,fma"))) static void
conv_step_avx2(float *out, size_t ld_out, float *const *conv_state, const float *x, size_t ld_x,
               const float *w, const float *bias, int n_streams, int d_inner, int d_conv)
{
    assert(out && conv_state && x && w && d_conv >= 1);
    const __m256i rot = _mm256_setr_epi32(1, 2, 3, 0, 5, 6, 7, 4);
    const __m256i unperm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    __m256i xin[4];
    for (int j = 0; j < 4; ++j)
        xin[j] = _mm256_setr_epi32(0, 0, 0, 2 * j, 0, 0, 0, 2 * j + 1);
    for (int s = 0; s < n_streams; ++s) {
        float *st = conv_state[s];
        const float *xs = x + (size_t)s * ld_x;
        float *os = out + (size_t)s * ld_out;
        int c = 0;
        if (d_conv == 4)
            for (; c + 8 <= d_inner; c += 8) {
                float *sc = st + (size_t)c * 4;
                const float *wc = w + (size_t)c * 4;
                __m256 xv = _mm256_loadu_ps(xs + c), p[4];
                for (int j = 0; j < 4; ++j) {
                    __m256 zj = _mm256_permutevar8x32_ps(_mm256_loadu_ps(sc + 8 * j), rot);
                    zj = _mm256_blend_ps(zj, _mm256_permutevar8x32_ps(xv, xin[j]), 0x88);
                    _mm256_storeu_ps(sc + 8 * j, zj);
                    p[j] = _mm256_mul_ps(zj, _mm256_loadu_ps(wc + 8 * j));
                }
                __m256 t0 = _mm256_unpacklo_ps(p[0], p[1]), t1 = _mm256_unpacklo_ps(p[2], p[3]);
                __m256 t2 = _mm256_unpackhi_ps(p[0], p[1]), t3 = _mm256_unpackhi_ps(p[2], p[3]);
                __m256 acc = _mm256_add_ps(_mm256_setzero_ps(),
                                           _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)));
                acc = _mm256_add_ps(acc, _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
                acc = _mm256_add_ps(acc, _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(1, 0, 1, 0)));
                acc = _mm256_add_ps(acc, _mm256_shuffle_ps(t2, t3, _MM_SHUFFLE(3, 2, 3, 2)));
                acc = _mm256_permutevar8x32_ps(acc, unperm);
                if (bias)
                    acc = _mm256_add_ps(acc, _mm256_loadu_ps(bias + c));
                _mm256_storeu_ps(os + c, silu256(acc));
            }
        int c0 = c;
        ssm_conv_sums_scalar(os, st, xs, w, bias, c0, d_inner, d_conv);
        for (; c + 8 <= d_inner; c += 8)
            _mm256_storeu_ps(os + c, silu256(_mm256_loadu_ps(os + c)));
        if (c < d_inner) {
            __m256i m = tail256(d_inner - c);
            _mm256_maskstore_ps(os + c, m, silu256(_mm256_maskload_ps(os + c, m)));
        }
    }
}
#endif /* SSM_X86 */

ssm_scan_heads_step_fn ssm_scan_heads_step_get(ssm_isa isa)
{
#ifdef SSM_X86
    __builtin_cpu_init();
    if (isa != SSM_ISA_SCALAR && ssm_isa_supported(isa))
        return scan_heads_avx2;
#else
    (void)isa;
#endif
    return ssm_scan_heads_step_f32_vec;
}

ssm_scan_step_fn ssm_scan_step_get(ssm_isa isa)
{
#ifdef SSM_X86
    __builtin_cpu_init();
    if (isa == SSM_ISA_AVX512 && ssm_isa_supported(isa) && __builtin_cpu_supports("avx512dq"))
        return scan_step_avx512;
    if (isa != SSM_ISA_SCALAR && ssm_isa_supported(isa))
        return scan_step_avx2;
#else
    (void)isa;
#endif
    return ssm_scan_step_f32_vec;
}

/* 2: the AVX-512 kernels (they share the scan's target, AVX-512 DQ
 * included), 1: AVX2+FMA, 0: the portable _vec code. */
static int elem_level(ssm_isa isa)
{
#ifdef SSM_X86
    __builtin_cpu_init();
    if (isa == SSM_ISA_AVX512 && ssm_isa_supported(isa) && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (isa != SSM_ISA_SCALAR && ssm_isa_supported(isa))
        return 1;
#else
    (void)isa;
#endif
    return 0;
}

ssm_softplus_fn ssm_softplus_get(ssm_isa isa)
{
    switch (elem_level(isa)) {
#ifdef SSM_X86
    case 2: return softplus_avx512;
    case 1: return softplus_avx2;
#endif
    default: return ssm_softplus_f32_vec;
    }
}

ssm_conv_step_fn ssm_conv_step_get(ssm_isa isa)
{
    switch (elem_level(isa)) {
#ifdef SSM_X86
    case 2: return conv_step_avx512;
    case 1: return conv_step_avx2;
#endif
    default: return ssm_conv_step_f32_vec;
    }
}

ssm_gate_silu_fn ssm_gate_silu_get(ssm_isa isa)
{
    switch (elem_level(isa)) {
#ifdef SSM_X86
    case 2: return gate_silu_avx512;
    case 1: return gate_silu_avx2;
#endif
    default: return ssm_gate_silu_f32_vec;
    }
}

ssm_sigmoid_fn ssm_sigmoid_get(ssm_isa isa)
{
    switch (elem_level(isa)) {
#ifdef SSM_X86
    case 2: return sigmoid_avx512;
    case 1: return sigmoid_avx2;
#endif
    default: return ssm_sigmoid_f32_vec;
    }
}
