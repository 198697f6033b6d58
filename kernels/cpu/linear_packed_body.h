/* SPDX-License-Identifier: MIT */
/* One body of the packed linear kernel (ssm_kernels_packed.c), included once
 * per ISA and weight dtype with the primitives below defined, the way
 * PipeWire's audioconvert builds its fmt-ops per ISA from one generic body
 * and ggml's simd-mappings.h maps one dot product onto each vector ISA.  A
 * fix to the tile loop or the (cache-blocked) driver lands in every
 * variant; a new ISA is a new set of primitives, not a copy.  Internal: no include guard on purpose.
 *
 * The includer defines:
 *   LP_SUFFIX          name suffix, e.g. f32_avx512 (gives tile_f32_avx512,
 *                      ssm_linear_packed_f32_avx512)
 *   LP_TARGET          the target attribute string, e.g. "avx2,fma,f16c"
 *   LP_V, LP_W         vector type of floats and its lanes
 *   LP_ZERO()          all-zero vector
 *   LP_SET1(f)         f in every lane
 *   LP_LOADU(p)        W floats from p
 *   LP_STOREU(p, v)    W floats to p
 *   LP_FMA(a, b, c)    a·b + c, one rounding
 *   LP_ADD(a, b)       a + b
 *   LP_MASK            type of a lane mask
 *   LP_MASK_N(n)       the first min(n, W) lanes (n ≥ 0)
 *   LP_MASKZ_LOAD(m, p)   lanes m from p, zero elsewhere
 *   LP_MASK_STORE(p, m, v) lanes m of v to p
 *   LP_LOAD_W(w, idx)  W weights from panel w at element idx, as floats
 *                      (exact: f32 load, or half → float conversion)
 *   LP_ELEM            bytes per weight element
 *   LP_MR, LP_NV       rows × vectors of the batch tile (LP_NV ≥ 3)
 *   LP_NV1             vectors of the one- and two-row tile (≥ LP_NV, ≤ 8)
 * and, before the first inclusion, lp_blocking(strip_bytes, mr, d_in,
 * n_rows, &kc, &mc): the K block (inputs) and row block of a batch, from
 * the cache sizes, for column strips of strip_bytes weight bytes per input
 * and mr-row tiles.
 * LP_SUFFIX, LP_LOAD_W and LP_ELEM (the dtype's) are #undef'd at the end,
 * with this file's own helpers; the ISA's primitives stay defined for the
 * next dtype (linear_packed_isa.h includes this file once per dtype and
 * #undef's them). */

#define LP_CAT2(a, b) a##b
#define LP_CAT(a, b) LP_CAT2(a, b)
#define LP_NAME(prefix) LP_CAT(prefix, LP_SUFFIX)
#define LP_INLINE __attribute__((target(LP_TARGET), always_inline)) static inline

_Static_assert(LP_NV >= 3 && LP_NV <= 4 && LP_NV <= LP_NV1 && LP_NV1 <= 8 && LP_MR >= 2 && LP_MR <= 6,
               "tile shape outside the cases of the dispatch below");

/* MR rows × NV vectors of W columns starting at column j0 (a multiple of W,
 * < n_pad), over k in [k0, k1): the chains start from +0 when k0 is 0, else
 * from the partial sums a previous block left in out (stored and reloaded
 * exactly, so a chain split into K blocks has the bits of the whole chain);
 * bias is added when k1 is d_in.  Columns at or beyond d_out are never
 * loaded nor stored.  MR and NV are constants at every call (the dispatch
 * below), so acc stays in registers. */
LP_INLINE void LP_NAME(tile_)(float *out, size_t ld_out, const float *x, size_t ld_x,
                              const void *w, size_t np, const float *bias, int d_in, int d_out,
                              int j0, int k0, int k1, const int MR, const int NV)
{
    LP_V acc[LP_MR][LP_NV1];
    if (k0 == 0) {
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) acc[r][v] = LP_ZERO();
    } else {
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) {
            int j = j0 + LP_W * v;
            if (d_out - j >= LP_W) { /* a whole vector: plain loads (AVX2's vmaskmovps is slow) */
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)
                    acc[r][v] = LP_LOADU(out + (size_t)r * ld_out + (size_t)j);
                continue;
            }
            LP_MASK m = LP_MASK_N(j < d_out ? d_out - j : 0);
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)
                acc[r][v] = LP_MASKZ_LOAD(m, out + (size_t)r * ld_out + (size_t)(j < d_out ? j : 0));
        }
    }
    /* row k of the strips: wk, SSM_PACK_COLS elements further per k; vector
     * v (column j0 + W·v) at the constant element offset wo[v] from it */
    const size_t s0 = (size_t)j0 / SSM_PACK_COLS, r0 = (size_t)j0 % SSM_PACK_COLS;
    const size_t srows = (size_t)SSM_PACK_STRIP_ROWS(d_in);
    const unsigned char *wk =
        (const unsigned char *)w + (s0 * srows + (size_t)k0) * SSM_PACK_COLS * (LP_ELEM);
    size_t wo[LP_NV1];
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) {
        size_t jj = r0 + LP_W * (size_t)v;
        wo[v] = jj / SSM_PACK_COLS * srows * SSM_PACK_COLS + jj % SSM_PACK_COLS;
    }
    (void)np;
    for (int k = k0; k < k1; ++k, wk += SSM_PACK_COLS * (LP_ELEM)) {
        LP_V wv[LP_NV1];
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v)
            wv[v] = LP_LOAD_W(wk, wo[v]);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {
            LP_V xb = LP_SET1(x[(size_t)r * ld_x + (size_t)k]);
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v)
                acc[r][v] = LP_FMA(xb, wv[v], acc[r][v]);
        }
    }
    const int add_bias = bias && k1 == d_in;
    _Pragma("GCC unroll 8") for (int v = 0; v < NV; ++v) {
        int j = j0 + LP_W * v;
        if (j >= d_out)
            break;
        if (d_out - j >= LP_W) { /* a whole vector: plain stores, the same values */
            LP_V b = add_bias ? LP_LOADU(bias + j) : LP_ZERO();
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r)
                LP_STOREU(out + (size_t)r * ld_out + (size_t)j, add_bias ? LP_ADD(acc[r][v], b) : acc[r][v]);
            continue;
        }
        LP_MASK m = LP_MASK_N(d_out - j);
        LP_V b = add_bias ? LP_MASKZ_LOAD(m, bias + j) : LP_ZERO();
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; ++r) {
            LP_V o = add_bias ? LP_ADD(acc[r][v], b) : acc[r][v];
            LP_MASK_STORE(out + (size_t)r * ld_out + (size_t)j, m, o);
        }
    }
}

/* One row × nv vectors (1 ≤ nv ≤ NVMAX ≤ LP_NV1) as a constant-shape tile;
 * inlined with NVMAX constant, so each call site holds only its cases. */
LP_INLINE void LP_NAME(tile_row_)(float *out, size_t ld_out, const float *x, size_t ld_x,
                                  const void *w, size_t np, const float *bias, int d_in,
                                  int d_out, int j0, int k0, int k1, int nv, const int NVMAX)
{
#define LP_CASE(NV)                                                                             \
    case NV:                                                                                    \
        if ((NV) <= NVMAX)                                                                      \
            LP_NAME(tile_)(out, ld_out, x, ld_x, w, np, bias, d_in, d_out, j0, k0, k1, 1, NV);  \
        return;
    switch (nv) {
    LP_CASE(1) LP_CASE(2) LP_CASE(3)
#if LP_NV1 >= 4
    LP_CASE(4)
#endif
#if LP_NV1 >= 5
    LP_CASE(5)
#endif
#if LP_NV1 >= 6
    LP_CASE(6)
#endif
#if LP_NV1 >= 7
    LP_CASE(7)
#endif
#if LP_NV1 >= 8
    LP_CASE(8)
#endif
    default:
        assert(!"tile shape without a case");
    }
#undef LP_CASE
}

/* mr rows × nv vectors, 2 ≤ mr ≤ LP_MR and 1 ≤ nv ≤ LP_NV, as a
 * constant-shape tile (every case: a remainder of rows under narrow
 * columns, e.g. 4 rows × 3 vectors of x_proj, would otherwise run row by
 * row with only nv independent FMA chains, FMA-latency-bound). */
LP_INLINE void LP_NAME(tile_rows_)(float *out, size_t ld_out, const float *x, size_t ld_x,
                                   const void *w, size_t np, const float *bias, int d_in,
                                   int d_out, int j0, int k0, int k1, int mr, int nv)
{
#define LP_CASE(MR, NV)                                                                         \
    case (MR) * 16 + (NV):                                                                      \
        LP_NAME(tile_)(out, ld_out, x, ld_x, w, np, bias, d_in, d_out, j0, k0, k1, MR, NV);     \
        return;
    switch (mr * 16 + nv) {
    LP_CASE(LP_MR, 1) LP_CASE(LP_MR, 2) LP_CASE(LP_MR, 3)
#if LP_NV >= 4
    LP_CASE(LP_MR, 4)
#endif
#define LP_ROWS(MR) LP_CASE(MR, 1) LP_CASE(MR, 2) LP_CASE(MR, 3) LP_ROWS4(MR)
#if LP_NV >= 4
#define LP_ROWS4(MR) LP_CASE(MR, 4)
#else
#define LP_ROWS4(MR)
#endif
#if LP_MR > 2
    LP_ROWS(2)
#endif
#if LP_MR > 3
    LP_ROWS(3)
#endif
#if LP_MR > 4
    LP_ROWS(4)
#endif
#if LP_MR > 5
    LP_ROWS(5)
#endif
#undef LP_ROWS
#undef LP_ROWS4
    default:
        assert(!"tile shape without a case");
    }
#undef LP_CASE
}


/* One or two rows (the latency-bound step): tiles of one row × LP_NV1
 * vectors over the whole of k (the weights are read once per row whatever
 * the blocking; LP_NV1 contiguous strips are LP_NV1 sequential streams).
 * More rows: LP_MR × LP_NV tiles, blocked for the caches (lp_blocking) as
 * BLIS/GotoBLAS do — for each block of kc inputs, for each block of mc
 * rows, every column strip of LP_NV vectors runs the block's row tiles
 * while its kc × LP_NV·LP_W weights stay in L2, and the mc × kc inputs stay
 * in L2 across the strips; the partial
 * sums wait in out between K blocks (tile_: same bits as one chain).  The
 * remainder rows of a block (or a batch smaller than LP_MR) run as one tile
 * of their own (the weights are read once for them, not once per row). */
__attribute__((target(LP_TARGET))) static void
LP_NAME(ssm_linear_packed_)(float *out, size_t ld_out, const float *x, size_t ld_x,
                            const void *wp, const float *bias, int n_rows, int d_in, int d_out)
{
    assert(out && x && wp && d_in >= 1 && d_out >= 1);
    size_t np = (size_t)ssm_pack_cols(d_out);
    int nvec = (int)(np / LP_W);
    if (n_rows <= 2) {
        for (int i = 0; i < n_rows; ++i)
            for (int v0 = 0; v0 < nvec; v0 += LP_NV1) {
                int nv = nvec - v0 >= LP_NV1 ? LP_NV1 : nvec - v0;
                LP_NAME(tile_row_)(out + (size_t)i * ld_out, ld_out, x + (size_t)i * ld_x, ld_x,
                                   wp, np, bias, d_in, d_out, LP_W * v0, 0, d_in, nv, LP_NV1);
            }
        return;
    }
    int kc, mc;
    lp_blocking(LP_NV * LP_W * (LP_ELEM), LP_MR, d_in, n_rows, &kc, &mc);
    for (int k0 = 0; k0 < d_in; k0 += kc) {
        int k1 = d_in - k0 > kc ? k0 + kc : d_in;
        for (int i0 = 0; i0 < n_rows; i0 += mc) {
            int i1 = n_rows - i0 > mc ? i0 + mc : n_rows;
            for (int v0 = 0; v0 < nvec; v0 += LP_NV) {
                int nv = nvec - v0 >= LP_NV ? LP_NV : nvec - v0;
                int j0 = LP_W * v0;
                for (int i = i0; i < i1; i += LP_MR) {
                    int mr = i1 - i >= LP_MR ? LP_MR : i1 - i;
                    const float *xi = x + (size_t)i * ld_x;
                    float *oi = out + (size_t)i * ld_out;
                    if (mr > 1) {
                        LP_NAME(tile_rows_)(oi, ld_out, xi, ld_x, wp, np, bias, d_in, d_out, j0,
                                            k0, k1, mr, nv);
                        continue;
                    }
                    for (int r = 0; r < mr; ++r)
                        LP_NAME(tile_row_)(oi + (size_t)r * ld_out, ld_out, xi + (size_t)r * ld_x,
                                           ld_x, wp, np, bias, d_in, d_out, j0, k0, k1, nv, LP_NV);
                }
            }
        }
    }
}

#undef LP_CAT2
#undef LP_CAT
#undef LP_NAME
#undef LP_INLINE
#undef LP_SUFFIX
#undef LP_LOAD_W
#undef LP_ELEM
