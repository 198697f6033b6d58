/* SPDX-License-Identifier: MIT */
/* One body of the int8 linear kernel (ssm_kernels_q8.c), included once per
 * ISA with the primitives below defined (as linear_packed_body.h does for
 * the fp32/f16 kernels): the register tile over a panel block, its
 * dispatch and the driver over rows and blocks are written here once; an
 * ISA supplies how a row is quantized, how four byte products enter an
 * int32 lane, and its float/mask operations.  Internal: no include guard on
 * purpose.
 *
 * The includer defines:
 *   Q_SUFFIX           name suffix (avx512 gives tile_q8_avx512,
 *                      ssm_linear_q8_avx512)
 *   Q_TARGET           the target attribute string
 *   Q_VI, Q_VF, Q_W    int32 and float vector types, lanes of each
 *   Q_XT               byte type of a quantized row as the dot product
 *                      takes it (uint8_t q + 128 for VNNI, int8_t q else)
 *   Q_QUANT_ROW(q, x, n)  quantizes row x {n} into q {⌈n/4⌉·4}, returns sx
 *   Q_ZERO_I()         all-zero int vector
 *   Q_BCAST4(i32)      four bytes (one int32) in every lane
 *   Q_WOP, Q_LOAD_WOP(p)  a weight operand (4·Q_W bytes from p) and its load
 *   Q_DOT(acc, xb, wop)   acc + the four byte products of each lane (exact)
 *   Q_COLQ             1: the dot product gives Σ (q+128)·w and the panel's
 *                      colq is subtracted; 0: it gives Σ q·w
 *   Q_SPLIT            1: a one-row tile sums odd and even input groups in
 *                      two sets of accumulators (more chains in flight)
 *   Q_SUB_I(a, b)      a − b, int32 lanes
 *   Q_LOADU_I(p)       Q_W int32 from p
 *   Q_CVT(v)           int32 lanes to float (exact below 2²⁴, else rounded)
 *   Q_LOADU_F(p), Q_STOREU_F(p, v), Q_SET1_F(f), Q_MUL_F(a, b), Q_ADD_F(a, b), Q_ZERO_F()
 *   Q_MASK, Q_MASK_N(n), Q_MASKZ_LOAD_F(m, p), Q_MASK_STORE_F(p, m, v)
 *                      as LP_* in linear_packed_body.h
 *   Q_MRB              rows quantized and tiled together
 *   Q_NVF              vectors of a Q_MRB-row tile
 *   Q_NV1              vectors of a one-row tile (≤ 4)
 * which this file #undef's at its end, with its own helpers, ready for the
 * next ISA. */

#define Q_CAT2(a, b) a##b
#define Q_CAT(a, b) Q_CAT2(a, b)
#define Q_NAME(prefix) Q_CAT(prefix, Q_SUFFIX)

_Static_assert(Q_NVF >= 1 && Q_NVF <= 4 && Q_NV1 >= 1 && Q_NV1 <= 4 && Q_MRB <= 6 &&
                   Q_NVF * Q_W <= QB && Q_NV1 * Q_W <= QB,
               "tile shape outside the cases of the dispatch below");

/* MR rows × NV vectors of Q_W columns from column QB·jb + Q_W·v0, rows of
 * xq ld_xq bytes apart, sx their scales.  MR and NV are constants at every
 * call (the dispatch below). */
__attribute__((target(Q_TARGET), always_inline)) static inline void
Q_NAME(tile_q8_)(float *out, size_t ld_out, const Q_XT *xq, size_t ld_xq, const float *sx,
                 const int8_t *w, const int32_t *colq, const float *sw, const float *bias,
                 int k4, int d_out, int jb, int v0, const int MR, const int NV)
{
    Q_VI acc[Q_MRB][4];
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r)
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc[r][v] = Q_ZERO_I();
    const int8_t *wb = w + (size_t)jb * (size_t)k4 * QB * 4 + 4 * Q_W * (size_t)v0;
    int g = 0;
#if Q_SPLIT
    Q_VI acc2[4];
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) acc2[v] = Q_ZERO_I();
    if (MR == 1) {
        for (; g + 2 <= k4; g += 2) {
            int32_t b0, b1;
            memcpy(&b0, xq + 4 * (size_t)g, 4);
            memcpy(&b1, xq + 4 * (size_t)g + 4, 4);
            const Q_VI x0 = Q_BCAST4(b0), x1 = Q_BCAST4(b1);
            const int8_t *wg = wb + (size_t)g * QB * 4;
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
                acc[0][v] = Q_DOT(acc[0][v], x0, Q_LOAD_WOP(wg + 4 * Q_W * v));
                acc2[v] = Q_DOT(acc2[v], x1, Q_LOAD_WOP(wg + QB * 4 + 4 * Q_W * v));
            }
        }
    }
#endif
    for (; g < k4; ++g) {
        Q_WOP wv[4];
        const int8_t *wg = wb + (size_t)g * QB * 4;
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)
            wv[v] = Q_LOAD_WOP(wg + 4 * Q_W * v);
        _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r) {
            int32_t xb4;
            memcpy(&xb4, xq + (size_t)r * ld_xq + 4 * (size_t)g, 4);
            Q_VI xb = Q_BCAST4(xb4);
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v)
                acc[r][v] = Q_DOT(acc[r][v], xb, wv[v]);
        }
    }
#if !Q_COLQ
    (void)colq;
#endif
    _Pragma("GCC unroll 4") for (int v = 0; v < NV; ++v) {
        int j = QB * jb + Q_W * (v0 + v);
        if (j >= d_out)
            break;
        /* a whole vector: plain loads and stores (AVX2's vmaskmovps is slow), the same values */
        const int whole = d_out - j >= Q_W;
        Q_MASK m = Q_MASK_N(d_out - j);
#if Q_COLQ
        Q_VI cq = Q_LOADU_I(colq + j);
#if Q_SPLIT
        if (MR == 1)
            cq = Q_SUB_I(cq, acc2[v]);
#endif
#endif
        Q_VF s = Q_LOADU_F(sw + j);
        Q_VF b = !bias ? Q_ZERO_F() : whole ? Q_LOADU_F(bias + j) : Q_MASKZ_LOAD_F(m, bias + j);
        _Pragma("GCC unroll 6") for (int r = 0; r < MR; ++r) {
#if Q_COLQ
            Q_VF f = Q_CVT(Q_SUB_I(acc[r][v], cq));
#else
            Q_VF f = Q_CVT(acc[r][v]);
#endif
            f = Q_MUL_F(Q_MUL_F(f, Q_SET1_F(sx[r])), s);
            if (bias)
                f = Q_ADD_F(f, b);
            if (whole)
                Q_STOREU_F(out + (size_t)r * ld_out + (size_t)j, f);
            else
                Q_MASK_STORE_F(out + (size_t)r * ld_out + (size_t)j, m, f);
        }
    }
}

/* The tile of mr rows × nv vectors with constant shape: Q_MRB × 1…Q_NVF
 * and 1 × 1…Q_NV1, the shapes the driver asks for. */
__attribute__((target(Q_TARGET))) static void
Q_NAME(tile_q8_any_)(float *out, size_t ld_out, const Q_XT *xq, size_t ld_xq, const float *sx,
                     const int8_t *w, const int32_t *colq, const float *sw, const float *bias,
                     int k4, int d_out, int jb, int v0, int mr, int nv)
{
#define Q_CASE(MR, NV)                                                                          \
    case (MR) * 8 + (NV):                                                                       \
        Q_NAME(tile_q8_)(out, ld_out, xq, ld_xq, sx, w, colq, sw, bias, k4, d_out, jb, v0, MR,   \
                         NV);                                                                   \
        return;
    switch (mr * 8 + nv) {
    Q_CASE(1, 1)
#if Q_NV1 >= 2
    Q_CASE(1, 2)
#endif
#if Q_NV1 >= 3
    Q_CASE(1, 3)
#endif
#if Q_NV1 >= 4
    Q_CASE(1, 4)
#endif
#if Q_MRB > 1
    Q_CASE(Q_MRB, 1)
#if Q_NVF >= 2
    Q_CASE(Q_MRB, 2)
#endif
#if Q_NVF >= 3
    Q_CASE(Q_MRB, 3)
#endif
#if Q_NVF >= 4
    Q_CASE(Q_MRB, 4)
#endif
#endif
    default:
        assert(!"tile shape without a case");
    }
#undef Q_CASE
}

/* Rows in groups of Q_MRB, quantized once per group; a full group takes
 * Q_MRB × Q_NVF tiles across each block, the rows of a smaller one
 * 1 × Q_NV1 tiles each. */
__attribute__((target(Q_TARGET))) static void
Q_NAME(ssm_linear_q8_)(float *out, size_t ld_out, const float *x, size_t ld_x, const void *wp,
                       const float *bias, int n_rows, int d_in, int d_out)
{
    assert(out && x && wp && d_in >= 1 && d_out >= 1 && d_in <= SSM_Q8_MAX_D_IN);
    if (d_in > SSM_Q8_MAX_D_IN) { /* refused by ssm_pack_q8; never overflow the stack */
        q8_refuse(out, ld_out, n_rows, d_out);
        return;
    }
    Q_XT xq[Q_MRB][SSM_Q8_MAX_D_IN + 4];
    float sx[Q_MRB];
    const int nblk = (int)(q8_cols(d_out) / QB), k4 = (d_in + 3) / 4;
    const int8_t *w = q8_w(wp);
    const int32_t *colq = q8_colq(wp, d_in, d_out);
    const float *sw = q8_sw(wp, d_in, d_out);
    const size_t ldq = sizeof xq[0];
    for (int i0 = 0; i0 < n_rows; i0 += Q_MRB) {
        int mr = n_rows - i0 >= Q_MRB ? Q_MRB : n_rows - i0;
        for (int r = 0; r < mr; ++r)
            sx[r] = Q_QUANT_ROW(xq[r], x + (size_t)(i0 + r) * ld_x, d_in);
        float *oi = out + (size_t)i0 * ld_out;
        for (int jb = 0; jb < nblk; ++jb) {
            /* vectors of this block holding columns < d_out */
            int nvb = (d_out - QB * jb + Q_W - 1) / Q_W;
            nvb = nvb > QB / Q_W ? QB / Q_W : nvb;
            if (mr == Q_MRB) {
                for (int v0 = 0; v0 < nvb; v0 += Q_NVF)
                    Q_NAME(tile_q8_any_)(oi, ld_out, xq[0], ldq, sx, w, colq, sw, bias, k4, d_out,
                                         jb, v0, Q_MRB, nvb - v0 >= Q_NVF ? Q_NVF : nvb - v0);
                continue;
            }
            for (int r = 0; r < mr; ++r)
                for (int v0 = 0; v0 < nvb; v0 += Q_NV1)
                    Q_NAME(tile_q8_any_)(oi + (size_t)r * ld_out, ld_out, xq[r], ldq, sx + r, w,
                                         colq, sw, bias, k4, d_out, jb, v0, 1,
                                         nvb - v0 >= Q_NV1 ? Q_NV1 : nvb - v0);
        }
    }
}

#undef Q_CAT2
#undef Q_CAT
#undef Q_NAME
#undef Q_SUFFIX
#undef Q_TARGET
#undef Q_VI
#undef Q_VF
#undef Q_W
#undef Q_XT
#undef Q_QUANT_ROW
#undef Q_ZERO_I
#undef Q_BCAST4
#undef Q_WOP
#undef Q_LOAD_WOP
#undef Q_DOT
#undef Q_COLQ
#undef Q_SPLIT
#undef Q_SUB_I
#undef Q_LOADU_I
#undef Q_CVT
#undef Q_LOADU_F
#undef Q_SET1_F
#undef Q_MUL_F
#undef Q_ADD_F
#undef Q_ZERO_F
#undef Q_MASK
#undef Q_MASK_N
#undef Q_MASKZ_LOAD_F
#undef Q_MASK_STORE_F
#undef Q_STOREU_F
#undef Q_MRB
#undef Q_NVF
#undef Q_NV1
